"""Task lifecycle on one real running node (a subprocess daemon, real signatures).

- A close time fires by itself: with no record arriving after it, items short of
  labels become EXPIRED and the tally is final; ``annot task status --watch``
  follows it and exits on its own. An item whose only label is outside the
  schema does not block the tally (it expires too). A label after the close is
  refused with an error that says so.
- ``annot task close|extend|cancel --key``: a non-owner is refused by name, the
  owner's extend moves the close time, close expires the short items, an update
  after the close is refused; cancel expires every item not final and the
  tally refunds their annotators' part to the requester.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import ANNOT, ROOT, Cluster

from node.cli.task_status import read_status
from node.core.home import write_key
from node.rpc.client import ClientError
from protocol.cid import cid_bytes, cid_from_str, cid_to_str
from protocol.keys import SigningKey
from protocol.records import EXPIRED, Annotation, Task, sign_record

REQUESTER = SigningKey(b"\x21" * 32)
OTHER = SigningKey(b"\x22" * 32)
ANNOTATORS = [SigningKey(bytes([0x30 + k]) * 32) for k in range(4)]


class Node:
    """One running node and the requester's key files."""

    def __init__(self, cluster: Cluster, tmp: Path) -> None:
        self.c, self.home = cluster, cluster.home(0)
        self.nid = bytes.fromhex(cluster.status(0)["network_id"])
        self.keys: dict[str, Path] = {}
        for name, key in (("requester", REQUESTER), ("other", OTHER)):
            self.keys[name] = tmp / f"{name}.key"
            write_key(self.keys[name], key)

    def sign(self, key: SigningKey, body: Any) -> bytes:
        # the CLI signs updates with the requester's key too: ask the node for the seq
        seq = self.c.rpc(0, "account.get", author=key.peer_id)["next_seq"]
        return sign_record(self.nid, key, seq, body).data

    def task(self, tag: str, n: int, close_time: int = 0) -> tuple[str, list[bytes]]:
        items = [cid_bytes(f"{tag} item {k}".encode()) for k in range(n)]
        body = Task(title=tag, labels=("a", "b"), items=tuple(items), redundancy=2,
                    reward_per_item=1000, validator_share_bps=1000, close_time=close_time)
        return self.c.submit(0, self.sign(REQUESTER, body))["cid"], items

    def label(self, task: str, item: bytes, k: int, label: str = "a") -> dict[str, Any]:
        body = Annotation(task=cid_from_str(task), item=item, label=label)
        return self.c.submit(0, self.sign(ANNOTATORS[k], body))

    def cli(self, *args: str, ok: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("ANNOT_HOME", "ANNOT_DEBUG")}
        out = subprocess.run([*ANNOT, *args[:2], "--home", str(self.home), *args[2:]], cwd=ROOT,
                             capture_output=True, text=True, timeout=timeout, env=env)
        if ok:
            assert out.returncode == 0, out.stderr
        return out

    def status(self, task: str, cli: bool = False) -> dict[str, Any]:
        """``annot task status --json`` (in-process unless ``cli``: one interpreter less)."""
        if cli:
            result: dict[str, Any] = json.loads(self.cli("task", "status", "--json", task).stdout)
            return result
        return read_status(self.c.client(0).call, task).as_json()

    def finals(self, task: str, items: list[bytes]) -> list[str | None]:
        return [self.c.rpc(0, "item.get", task=task, item=cid_to_str(i))["final"] for i in items]


def one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    cluster = Cluster(tmp / "cluster", n=1)
    try:
        cluster.start()
        yield Node(cluster, tmp)
    finally:
        cluster.close()


def test_close_time_fires_without_new_records(node: Node) -> None:
    close = int(time.time()) + 15
    task, items = node.task("timer", 3, close_time=close)
    node.label(task, items[0], 0)
    node.label(task, items[0], 1)  # item 0: redundancy reached, final "a"
    node.label(task, items[1], 0)  # item 1: one label of two, short
    try:  # item 2: its only label is outside the schema (refused at admission, or ignored)
        node.label(task, items[2], 2, label="zebra")
    except ClientError:
        pass
    early = node.finals(task, items)
    assert time.time() < close, "the node took the whole 15 s window to answer"
    assert early[1:] == [None, None]
    # nothing is submitted from here on: the node's own timer closes the task
    watch = node.cli("task", "status", "--watch", "--interval", "0.3", task, timeout=60)
    assert time.time() >= close
    assert "expired   2" in watch.stdout and "final     1" in watch.stdout, watch.stdout
    assert node.finals(task, items) == ["a", EXPIRED, EXPIRED]
    node.c.wait(lambda: node.c.rpc(0, "tally.get", task=task)["final"], 20, "tally final")
    with pytest.raises(ClientError, match="labels after the close are refused"):
        node.label(task, items[1], 3)


def test_owner_extends_and_closes_others_are_refused(node: Node) -> None:
    close = int(time.time()) + 600
    task, items = node.task("updates", 2, close_time=close)
    node.label(task, items[0], 0)
    st = node.status(task, cli=True)
    assert (st["final"], st["expired"], st["pending"], st["short"]) == (0, 0, 0, 2)
    assert [(s["item"], s["annotations"]) for s in st["stuck"]] == [
        (cid_to_str(items[0]), 1), (cid_to_str(items[1]), 0)]
    refused = node.cli("task", "extend", "--key", str(node.keys["other"]),
                       "--close-time", str(close + 600), task, ok=False)
    one_line_error(refused, "only the requester of task", REQUESTER.peer_id, OTHER.peer_id)
    node.cli("task", "extend", "--key", str(node.keys["requester"]),
             "--close-time", str(close + 600), task)
    one_line_error(node.cli("task", "extend", "--key", str(node.keys["requester"]),
                            "--close-time", str(close + 60), task, ok=False), "is not later")
    assert node.finals(task, items) == [None, None]
    node.cli("task", "close", "--key", str(node.keys["requester"]), task)
    node.c.wait(lambda: node.finals(task, items) == [EXPIRED, EXPIRED], 20, "items expired")
    one_line_error(node.cli("task", "cancel", "--key", str(node.keys["requester"]), task,
                            ok=False), "was closed by its requester", "cannot be cancelled")
    with pytest.raises(ClientError, match="closed by its requester; labels after the close"):
        node.label(task, items[1], 1)


def test_cancel_expires_what_is_not_final_and_refunds_it(node: Node) -> None:
    task, items = node.task("cancel", 3)
    for k in (0, 1):
        node.label(task, items[0], k)
    node.label(task, items[1], 2)
    node.c.wait(lambda: node.finals(task, items)[0] == "a", 20, "item 0 final")
    refused = node.cli("task", "cancel", "--key", str(node.keys["other"]), task, ok=False)
    one_line_error(refused, "only the requester")
    node.cli("task", "cancel", "--key", str(node.keys["requester"]), task)
    node.c.wait(lambda: node.status(task)["done"], 20, "every item final or expired")
    st = node.status(task)
    assert (st["final"], st["expired"], st["pending"], st["short"]) == (1, 2, 0, 0)
    assert node.finals(task, items) == ["a", EXPIRED, EXPIRED]
    node.c.wait(lambda: node.c.rpc(0, "tally.get", task=task)["final"], 20, "tally final")
    tally = node.c.rpc(0, "tally.get", task=task)
    paid = {e["account"]: e["amount"] for e in tally["entries"]}
    # item 0: 900 to its two annotators; items 1 and 2 expired: 900 each back to the
    # requester (the validator's 100 per item pays for the certificate)
    assert paid[ANNOTATORS[0].peer_id] == paid[ANNOTATORS[1].peer_id] == 450
    assert ANNOTATORS[2].peer_id not in paid
    assert paid[REQUESTER.peer_id] == 1800
    assert tally["total"] == 3000
