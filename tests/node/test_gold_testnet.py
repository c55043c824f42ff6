"""Hidden gold on a 4-validator testnet (real processes): a colluding pair outvotes the
honest annotator on every item, so it wins every label; the tally waits for the
requester's reveal, ignores a reveal that does not match the commitments, and with the
true one every node computes the same tally in which the colluders are not paid and
score 0 on gold (so their reputation drops)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from node.rpc.client import RPCClientError
from node.store.db import open_store
from protocol.cid import cid_from_str, cid_str
from protocol.gold import commit_gold
from protocol.keys import SigningKey
from protocol.ledger import build_ledger
from protocol.records import Annotation, GoldEntry, GoldReveal, Task, sign_record
from protocol.tally import decode_tally

REQ = SigningKey(b"\x31" * 32)
HONEST = SigningKey(b"\x32" * 32)
BLOC = [SigningKey(b"\x33" * 32), SigningKey(b"\x34" * 32)]


def _tally(home: Path, task: bytes) -> tuple[bytes, bytes] | None:
    store = open_store(home / "store.db", readonly=True)
    try:
        return store.tally(task)
    finally:
        store.close()


def _final(home: Path) -> int:
    store = open_store(home / "store.db", readonly=True)
    try:
        return store.final_count()
    finally:
        store.close()


def test_gold_catches_colluders_on_a_testnet(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory(4)
    c.start().wait_connected()
    nid = bytes.fromhex(c.status(0)["network_id"])
    items = [cid_from_str(cid_str(f"gold item {i}".encode())) for i in range(6)]
    gold = {items[0]: "a", items[3]: "a"}
    commitments, entries = commit_gold(gold, {i: bytes([n + 1]) * 32 for n, i in
                                              enumerate(sorted(gold))})
    close = int(time.time()) + 20
    task = Task(title="gold", labels=("a", "b"), items=tuple(items), redundancy=3,
                reward_per_item=1_000, validator_share_bps=1_000, close_time=close,
                gold=commitments, min_gold_bps=5_000, reveal_window=600)
    task_rec = sign_record(nid, REQ, 1, task)
    assert c.submit(0, task_rec.data)["new"] is True
    c.wait(lambda: all(c.rpc(i, "task.list")["tasks"] for i in range(4)), 30, "the task")
    for n, (who, label) in enumerate([(HONEST, "a"), (BLOC[0], "b"), (BLOC[1], "b")]):
        recs = [sign_record(nid, who, s, Annotation(task_rec.cid, item, label)).data
                for s, item in enumerate(items, start=1)]
        c.submit_many(n % 4, recs)
    c.wait(lambda: all(_final(c.home(i)) == 6 for i in range(4)), 60, "every item final")
    # the tally waits for the reveal: a reveal that opens no commitment is not one
    wrong = GoldReveal(task_rec.cid, tuple(GoldEntry(e.salt, e.item, "b") for e in entries))
    while time.time() < close + 1:
        time.sleep(0.5)
    # ingest refuses it outright (RPC, gateway, gossip and sync alike), saying why
    with pytest.raises(RPCClientError, match="opens none of the task's commitments"):
        c.submit(1, sign_record(nid, REQ, 2, wrong).data)
    time.sleep(4)  # several tally rounds (tally_settle_s 0.5) on every node
    assert all(_tally(c.home(i), task_rec.cid) is None for i in range(4))
    c.submit(2, sign_record(nid, REQ, 2, GoldReveal(task_rec.cid, entries)).data)
    c.wait(lambda: all(_tally(c.home(i), task_rec.cid) for i in range(4)), 60,
           "the tally on every node after the reveal")
    tallies = [_tally(c.home(i), task_rec.cid) for i in range(4)]
    assert len({t[0] for t in tallies if t}) == 1, "nodes disagree on the tally"
    first = tallies[0]
    assert first is not None
    tally = decode_tally(first[1])
    paid = {e.account: e.amount for e in tally.entries}
    scores = {g.account: (g.correct, g.total) for g in tally.gold}
    assert scores == {HONEST.public_key: (2, 2), BLOC[0].public_key: (0, 2),
                      BLOC[1].public_key: (0, 2)}
    # the bloc won every item (2 of 3 labels) but is below the 50% gold bar: not paid;
    # what it forwent (900 per item) went back to the requester
    assert paid.get(BLOC[0].public_key, 0) == paid.get(BLOC[1].public_key, 0) == 0
    assert paid[REQ.public_key] == 6 * 900
    ledger = build_ledger([tally])
    assert ledger.reputation(BLOC[0].public_key) == 2_500  # (0 + 1) / (2 + 2)
    assert ledger.reputation(HONEST.public_key) == 7_500  # (2 + 1) / (2 + 2)
