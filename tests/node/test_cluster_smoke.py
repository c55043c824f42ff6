"""Three real node processes: a record written at one node reaches all, and a
label signed with an annotator's own key (`annot label --key`) reaches every node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness import ROOT

from protocol.cid import cid_str
from protocol.keys import SigningKey
from protocol.records import Annotation, sign_record


def test_records_reach_every_node(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory(3)
    c.start().wait_connected()
    items = [cid_str(f"item {i}".encode()) for i in range(5)]
    task = c.rpc(0, "task.create", title="t", labels=["a", "b"], items=items, redundancy=1,
                 reward_per_item=10, validator_share_bps=1000)["task"]
    nid = bytes.fromhex(c.status(0)["network_id"])
    annotator = SigningKey(b"\x42" * 32)
    from protocol.cid import cid_from_str
    for seq, item in enumerate(items, start=1):
        rec = sign_record(nid, annotator, seq, Annotation(cid_from_str(task),
                                                           cid_from_str(item), "a"))
        assert c.submit(seq % 3, rec.data)["new"] is True
    c.wait(lambda: all(c.rpc(i, "account.get", author=annotator.peer_id)["clock"] == 5
                       for i in range(3)), 20, "annotations on every node")
    c.wait(lambda: all(c.status(i)["final_items"] == 5 for i in range(3)), 30, "finality")
    c.wait(lambda: all(c.rpc(i, "tally.get", task=task)["final"] for i in range(3)), 30,
           "the tally final on every node")
    assert len({c.rpc(i, "tally.get", task=task)["root"] for i in range(3)}) == 1
    assert len({c.status(i)["ledger_root"] for i in range(3)}) == 1


def test_label_with_own_key_reaches_all(cluster_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory(3)
    c.start().wait_connected()
    item = cid_str(b"only item")
    task = c.rpc(0, "task.create", title="t", labels=["x", "y"], items=[item], redundancy=1,
                 reward_per_item=0, validator_share_bps=0)["task"]
    key = tmp_path / "me.key"
    cli = [sys.executable, "-m", "node.cli"]
    me = subprocess.run([*cli, "keygen", "-o", str(key)], cwd=ROOT, check=True,
                        capture_output=True, text=True).stdout.strip()
    c.wait(lambda: c.rpc(2, "task.list")["tasks"], 10, "task on node2")
    out = subprocess.run([*cli, "--home", str(c.home(2)), "label", task, item, "y", "--key",
                          str(key)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    c.wait(lambda: all(any(a["author"] == me for a in
                           c.rpc(i, "annotation.list", task=task)["annotations"])
                       for i in range(3)), 20, "the label on every node")
