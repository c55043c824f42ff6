"""The proposer's side of the task lifecycle, in-process over a real SQLite store and a
clock the test sets: the close time due for the timer, EXPIRED proposals at the close
for short items only, extend moving the timer, cancel expiring items that have enough
labels, and updates by anyone but the requester changing nothing."""

from __future__ import annotations

from pathlib import Path

from node.consensus.proposals import Proposer
from node.store.db import open_store
from protocol.cid import cid_bytes
from protocol.keys import SigningKey
from protocol.records import EXPIRED, Annotation, Task, TaskUpdate, sign_record

NET = bytes(32)
REQ = SigningKey(b"\x81" * 32)
T0 = 1_800_000_000


def setup(tmp: Path, close_time: int) -> tuple[Proposer, list[float], bytes, list[bytes]]:
    store = open_store(tmp / "store.db")
    now = [float(T0)]
    items = [cid_bytes(f"p{k}".encode()) for k in range(3)]
    task = Task(title="t", labels=("a", "b"), items=tuple(items), redundancy=2,
                reward_per_item=0, validator_share_bps=0, close_time=close_time)
    rec = sign_record(NET, REQ, 1, task)
    anns = [sign_record(NET, SigningKey(bytes([0x90 + k]) * 32), 1,
                        Annotation(rec.cid, items[0], "a")) for k in range(2)]
    anns.append(sign_record(NET, SigningKey(b"\x99" * 32), 1, Annotation(rec.cid, items[1], "b")))
    store.save_records([rec, *anns])
    p = Proposer(store, lambda: now[0])
    p.add_task(rec.cid, REQ.public_key, task)
    return p, now, rec.cid, items


def proposals(p: Proposer) -> dict[bytes, str | None]:
    return {c.key[1]: c.value for c in p.flush()}


def test_close_time_is_due_and_expires_only_short_items(tmp_path: Path) -> None:
    p, now, tid, items = setup(tmp_path, T0 + 60)
    # item 1 is short (no proposal yet, so no state), item 2 has no label at all
    assert proposals(p) == {items[0]: "a"}
    assert p.next_close() == (T0 + 60, tid)
    now[0] = T0 + 60
    p.close_due(tid, T0 + 60)
    assert p.next_close() is None  # fired once
    assert proposals(p) == {items[1]: EXPIRED, items[2]: EXPIRED}  # item 0 unchanged: "a"


def test_extend_moves_the_timer_and_others_change_nothing(tmp_path: Path) -> None:
    p, now, tid, _ = setup(tmp_path, T0 + 60)
    proposals(p)
    p.task_updated(SigningKey(b"\x82" * 32).public_key, 1, TaskUpdate(tid, "cancel"))
    assert not p.life[tid].cancelled and proposals(p) == {}
    p.task_updated(REQ.public_key, 2, TaskUpdate(tid, "extend", T0 + 600))
    assert p.next_close() == (T0 + 600, tid)
    now[0] = T0 + 120  # past the old close time: still open
    assert not p.is_closed(tid) and proposals(p) == {}


def test_cancel_expires_everything_not_final(tmp_path: Path) -> None:
    p, _, tid, items = setup(tmp_path, 0)
    proposals(p)
    p.task_updated(REQ.public_key, 2, TaskUpdate(tid, "cancel"))
    assert p.is_closed(tid) and p.next_close() is None
    # even item 0, which has its two labels: what is not final yet is refunded
    assert proposals(p) == {items[0]: EXPIRED, items[1]: EXPIRED, items[2]: EXPIRED}
