"""Issue 16's done-when on real processes: a 4-validator testnet pays a task; the payout
export is byte-identical on every node, its root carries a quorum of validator
signatures (checked here from the signed payout-vote records), and the reference
@openzeppelin/merkle-tree under Node verifies every proof in it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import ROOT

from node.store.db import open_store
from protocol.cid import cid_from_str, cid_str
from protocol.keys import SigningKey
from protocol.merkle import parse_address
from protocol.payout import sign_binding
from protocol.records import Annotation, PayoutVote, decode_record, sign_record

ANNOT = [sys.executable, "-m", "node.cli"]
JS = ROOT / "tests" / "js"
ANNOTATORS = [SigningKey(bytes([0x60 + i]) * 32) for i in range(3)]
EVM_KEYS = [bytes([0x11 + i]) * 32 for i in range(3)]


def _epochs(home: Path) -> list[tuple[int, bytes, list[bytes], bytes]]:
    store = open_store(home / "store.db", readonly=True)
    try:
        return store.payout_epochs()
    finally:
        store.close()


def _tally(home: Path, task: str) -> bool:
    store = open_store(home / "store.db", readonly=True)
    try:
        return store.tally(cid_from_str(task)) is not None
    finally:
        store.close()


def test_payout_export_is_identical_on_every_node_and_quorum_signed(  # type: ignore[no-untyped-def]
        cluster_factory, tmp_path: Path) -> None:
    c = cluster_factory(4)
    c.start().wait_connected()
    nid = bytes.fromhex(c.status(0)["network_id"])
    items = [cid_str(f"payout item {i}".encode()) for i in range(6)]
    task = c.rpc(0, "task.create", title="paid", labels=["a", "b"], items=items, redundancy=3,
                 reward_per_item=1_000, validator_share_bps=1_000)["task"]
    c.wait(lambda: all(c.rpc(i, "task.list")["tasks"] for i in range(4)), 20, "the task")
    # annotator 0 binds through the CLI (its own key file, an EVM key file), the others
    # sign their bindings the same way in-process; then every annotator labels every item
    key0, eth0 = tmp_path / "a0.key", tmp_path / "a0.eth"
    subprocess.run([*ANNOT, "keygen", "-o", str(key0)], cwd=ROOT, check=True,
                   capture_output=True, timeout=60)
    eth0.write_text("0x" + EVM_KEYS[0].hex() + "\n")
    out = subprocess.run([*ANNOT, "payout", "bind", "--home", str(c.home(1)), "--key", str(key0),
                          "--eth-key", str(eth0), "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    bound0 = json.loads(out.stdout)
    from node.core.home import load_key
    annotators = [load_key(key0), *ANNOTATORS[1:]]
    seqs = {a.public_key: 1 for a in annotators}
    seqs[annotators[0].public_key] = 2
    for i, a in enumerate(annotators[1:], start=1):
        rec = sign_record(nid, a, 1, sign_binding(EVM_KEYS[i], a.peer_id, nid))
        assert c.submit(i % 4, rec.data)["new"] is True
        seqs[a.public_key] = 2
    for i, a in enumerate(annotators):
        recs = []
        for item in items:
            label = "a" if i < 2 else "b"
            recs.append(sign_record(nid, a, seqs[a.public_key],
                                    Annotation(cid_from_str(task), cid_from_str(item), label)).data)
            seqs[a.public_key] += 1
        c.submit_many(i % 4, recs)
    c.wait(lambda: all(_tally(c.home(i), task) for i in range(4)), 60,
           "the tally final on every node")
    c.wait(lambda: all(_epochs(c.home(i)) for i in range(4)), 60,
           "a certified payout epoch on every node")
    # the export, through the CLI, on every node
    files, infos = [], []
    for i in range(4):
        path = tmp_path / f"payouts{i}.json"
        out = subprocess.run([*ANNOT, "payout", "export", "--home", str(c.home(i)), "--task",
                              task, "-o", str(path), "--json"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        infos.append(json.loads(out.stdout))
        files.append(path.read_bytes())
    assert all(f == files[0] for f in files), "payout exports differ between nodes"
    doc = json.loads(files[0])
    assert infos[0]["file"] == str((tmp_path / "payouts0.json").resolve())
    assert {i["root"] for i in infos} == {doc["root"]} and all(i["quorum"] for i in infos)
    # what was paid: annotators 0 and 1 won every item (2 of 3 labels), 900 each split
    # in two; annotator 2 agreed with nothing; everyone of them is bound
    amounts = {parse_address(cl["address"]): int(cl["amount"]) for cl in doc["claims"]}
    assert amounts == {parse_address(bound0["address"]): 2_700,
                       sign_binding(EVM_KEYS[1], annotators[1].peer_id, nid).address: 2_700}
    # the root's quorum, from the signed payout votes themselves
    genesis = c.genesis
    root = bytes.fromhex(doc["root"][2:])
    store = open_store(c.home(3) / "store.db", readonly=True)
    try:
        votes = [decode_record(d, nid) for d in store.records_of_kind("payout_vote")]
    finally:
        store.close()
    signers = {r.author for r in votes
               if isinstance(r.body, PayoutVote) and r.body.root == root and r.body.epoch == 1}
    weights = genesis.weights()
    assert signers <= set(weights)
    assert genesis.quorum(sum(weights[a] for a in signers)), len(signers)
    # and the reference implementation verifies every proof against that root
    check = subprocess.run(["node", str(JS / "payout_check.mjs"), str(tmp_path / "payouts0.json")],
                           cwd=JS, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    result = json.loads(check.stdout)
    assert result["root"] == doc["root"] and result["verified"] == len(doc["claims"]) == 2
    assert result["failed"] == [] and result["same_dump"] and result["proofs_match"]
