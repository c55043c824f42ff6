"""Gold reveals on the node (node.consensus.gold) over a real SQLite store: the ingest
rule refuses a wrong, early or foreign reveal with a precise error; the tally of a task
with gold waits for a valid reveal, or for its deadline."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.consensus.gold import GoldPending, gold_answers
from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.store.db import Saved, open_store
from protocol.cid import cid_bytes
from protocol.genesis import Genesis, Validator
from protocol.gold import NotTaskAuthorError, RevealMismatchError, RevealTooEarlyError, commit_gold
from protocol.keys import SigningKey
from protocol.records import GoldEntry, GoldReveal, Task, TaskUpdate, sign_record

REQ, OTHER = SigningKey(b"\x21" * 32), SigningKey(b"\x22" * 32)
GENESIS = Genesis(name="gold node", validators=(Validator(SigningKey(b"\x23" * 32).peer_id, 1),))
NET = GENESIS.network_id
ITEMS = tuple(cid_bytes(b"item %d" % i) for i in range(4))


def setup() -> tuple[bytes, Task, tuple[GoldEntry, ...]]:
    commitments, entries = commit_gold({ITEMS[1]: "yes", ITEMS[2]: "no"},
                                       {ITEMS[1]: b"\x01" * 32, ITEMS[2]: b"\x02" * 32})
    task = Task(title="t", labels=("yes", "no"), items=ITEMS, redundancy=1, reward_per_item=10,
                validator_share_bps=0, close_time=1_000, gold=commitments, reveal_window=100)
    tid = sign_record(NET, REQ, 1, task).cid
    return tid, task, entries


def flipped(e: GoldEntry) -> GoldEntry:
    return GoldEntry(e.salt, e.item, "no" if e.label == "yes" else "yes")


def test_ingest_refuses_bad_reveals_precisely(tmp_path: Path) -> None:
    """Through the node's one entry point (RPC, gateway, gossip and sync all use it)."""
    tid, task, entries = setup()
    store = open_store(tmp_path / "store.db")
    ingest = Ingest(store, GENESIS, Metrics(), lambda data: None)
    try:
        good = sign_record(NET, REQ, 2, GoldReveal(tid, entries))
        # a reveal whose task is not here yet passes the rule: admission holds it
        ingest.check_rules(good)
        assert ingest.accept([sign_record(NET, REQ, 1, task)], "test")[0] is Saved.NEW
        ingest.task_rules.clock = lambda: 1_000
        ingest.check_rules(good)
        wrong = sign_record(NET, REQ, 2, GoldReveal(tid, (entries[0], flipped(entries[1]))))
        with pytest.raises(RevealMismatchError, match=r"\(label '(yes|no)'\) opens none"):
            ingest.decode(wrong.data)
        with pytest.raises(NotTaskAuthorError):
            ingest.decode(sign_record(NET, OTHER, 1, GoldReveal(tid, entries)).data)
        ingest.task_rules.clock = lambda: 999
        with pytest.raises(RevealTooEarlyError, match="before the task closes"):
            ingest.decode(good.data)
        assert store.get(wrong.cid) is None and store.get(good.cid) is None
    finally:
        store.close()


def test_the_tally_waits_for_a_valid_reveal_or_the_deadline(tmp_path: Path) -> None:
    tid, task, entries = setup()
    store = open_store(tmp_path / "store.db")
    try:
        with pytest.raises(GoldPending, match="waiting for the gold reveal"):
            gold_answers(store, NET, tid, REQ.public_key, task, now=1_050)
        assert gold_answers(store, NET, tid, REQ.public_key, task, now=1_100) is None
        # a wrong reveal that got stored anyway (an older node) is never used
        bad = GoldReveal(tid, (entries[0], flipped(entries[1])))
        store.save_records([sign_record(NET, REQ, 2, bad)])
        with pytest.raises(GoldPending):
            gold_answers(store, NET, tid, REQ.public_key, task, now=1_050)
        store.save_records([sign_record(NET, REQ, 3, GoldReveal(tid, entries))])
        assert gold_answers(store, NET, tid, REQ.public_key, task, now=1_050) == {
            ITEMS[1]: "yes", ITEMS[2]: "no"}
        plain = Task(title="t", labels=("yes", "no"), items=ITEMS, redundancy=1,
                     reward_per_item=10, validator_share_bps=0)
        assert gold_answers(store, NET, tid, REQ.public_key, plain, now=0) is None
    finally:
        store.close()


def test_an_extend_moves_the_reveal_deadline_with_the_close(tmp_path: Path) -> None:
    tid, task, _ = setup()  # close 1_000, reveal window 100
    store = open_store(tmp_path / "store.db")
    try:
        assert gold_answers(store, NET, tid, REQ.public_key, task, now=1_150) is None
        # an extend by someone else is no extend; the requester's moves the close to 2_000
        store.save_records([sign_record(NET, OTHER, 1, TaskUpdate(tid, "extend", 3_000)),
                            sign_record(NET, REQ, 2, TaskUpdate(tid, "extend", 2_000))])
        with pytest.raises(GoldPending, match="waiting for the gold reveal"):
            gold_answers(store, NET, tid, REQ.public_key, task, now=1_150)
        assert gold_answers(store, NET, tid, REQ.public_key, task, now=2_100) is None
    finally:
        store.close()
