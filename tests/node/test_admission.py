"""Issue 13, finding 6: a record is stored only if it can matter.

Before, 5,000 annotations from 5,000 fresh keys for a task that did not exist,
annotations from keys outside a task's allow-list, labels outside the schema and
records at seq 10^12 were all stored, and the sender stayed connected. Now each
gets a verdict: never valid (refused, the sending peer charged), not yet (a
bounded pool until the task arrives), or not now (seq far ahead, rate limits,
after the close time: dropped without a charge).
"""

from __future__ import annotations

from pathlib import Path

from node.core.admission import Admission, AdmissionConfig, Verdict
from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.store.db import Saved, open_store
from protocol import cid as cidlib
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.records import Annotation, Record, Task, sign_record

V = SigningKey(b"\x41" * 32)
G = Genesis(name="admission", validators=(Validator(V.peer_id, 1),))
REQ = SigningKey(b"\x42" * 32)
ALICE, BOB = SigningKey(b"\x43" * 32), SigningKey(b"\x44" * 32)
ITEMS = tuple(cidlib.cid_bytes(f"a{k}".encode()) for k in range(4))
PEER = "12D3KooWpeer"


class Clock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def _setup(tmp_path: Path, **cfg: float) -> tuple[Ingest, Clock, list[tuple[str, str]]]:
    store = open_store(tmp_path / "a.db", durable=False)
    clock = Clock()
    metrics = Metrics()
    adm = Admission(store, G, metrics.registry, AdmissionConfig(**cfg),  # type: ignore[arg-type]
                    wall_clock=clock, monotonic=clock)
    ing = Ingest(store, G, metrics, publish=lambda d: None, admission=adm)
    charged: list[tuple[str, str]] = []
    ing.on_invalid = lambda peer, reason: charged.append((peer, reason))
    return ing, clock, charged


def _task(seq: int = 1, **kw: object) -> Record:
    return sign_record(G.network_id, REQ, seq, Task("t", ("cat", "dog"), kw.pop("items", ITEMS),  # type: ignore[arg-type]
                                                    2, 10, 0, **kw))  # type: ignore[arg-type]


def _ann(key: SigningKey, seq: int, task: bytes, item: bytes = ITEMS[0],
         label: str = "cat") -> Record:
    return sign_record(G.network_id, key, seq, Annotation(task, item, label))


def test_sybil_volume_for_a_missing_task_stays_in_a_bounded_pool(tmp_path: Path) -> None:
    ing, clock, charged = _setup(tmp_path, pending_max=100, pending_max_age_s=60)
    task = _task()
    keys = [SigningKey(k.to_bytes(4, "big") * 8) for k in range(1, 1001)]  # fresh keys
    sybil = [_ann(k, 1, task.cid) for k in keys]
    out = ing.accept(sybil, source=PEER)
    assert out == [Verdict.PENDING] * len(sybil)
    assert ing.store.count() == 0 and ing.admission.pending == 100  # the cap holds
    assert charged == []  # "not yet" is nobody's fault
    body = ing.metrics.render().decode()
    assert "annot_admission_pending 100.0" in body
    assert 'annot_admission_limit{name="pending_max"} 100.0' in body
    assert 'annot_admission_total{reason="pending_full",verdict="dropped"} 900.0' in body
    # the task comes: the 100 pooled labels are checked again and stored
    assert ing.accept([task], source=PEER) == [Saved.NEW]
    assert ing.store.count("annotation") == 100 and ing.admission.pending == 0
    # pooled records past the age cap are dropped, not stored
    other = _task(2, items=ITEMS[:2])
    ing.accept([_ann(ALICE, 1, other.cid)], source=PEER)
    clock.t += 61
    ing.admission.expire()
    assert ing.admission.pending == 0
    ing.accept([other], source=PEER)
    assert ing.store.annotations(other.cid) == []


def test_records_that_can_never_matter_are_refused_and_charged(tmp_path: Path) -> None:
    ing, _, charged = _setup(tmp_path)
    task = _task(allow=(ALICE.public_key,))
    ing.accept([task], source=PEER)
    cases = {
        "author_not_allowed": _ann(BOB, 1, task.cid),
        "label_not_in_schema": _ann(ALICE, 1, task.cid, label="bird"),
        "item_not_in_task": _ann(ALICE, 2, task.cid, item=cidlib.cid_bytes(b"nope")),
    }
    for reason, rec in cases.items():
        assert ing.accept([rec], source=PEER) == [Verdict.INVALID]
        assert charged[-1] == (PEER, reason)
    # a seq far past the author's contiguous seq: not now (sync brings records in order)
    assert ing.accept([_ann(ALICE, 10**12, task.cid)], source=PEER) == [Verdict.LATER]
    assert len(charged) == 3
    assert ing.store.count() == 1  # only the task
    assert ing.accept([_ann(ALICE, 1, task.cid)], source=PEER) == [Saved.NEW]


def test_rate_limits_per_peer_and_per_author(tmp_path: Path) -> None:
    ing, clock, charged = _setup(tmp_path, peer_rate=10, peer_burst=5, author_rate=1,
                                 author_burst=3)
    task = _task()
    assert ing.accept([task], source="rpc") == [Saved.NEW]
    keys = [SigningKey(bytes([k]) * 32) for k in range(100, 110)]
    out = ing.accept([_ann(k, 1, task.cid) for k in keys], source=PEER)
    assert out == [Saved.NEW] * 5 + [Verdict.LATER] * 5  # the peer's burst is 5
    clock.t += 1.0  # 10 more tokens for the peer
    out = ing.accept([_ann(ALICE, s, task.cid, item=ITEMS[s % 4]) for s in range(1, 6)],
                     source="rpc")
    assert out == [Saved.NEW] * 3 + [Verdict.LATER] * 2  # the author's burst is 3
    assert charged == []
    assert 'annot_admission_total{reason="author_rate",verdict="later"} 2.0' in \
        ing.metrics.render().decode()


def test_labels_after_the_close_time_are_dropped(tmp_path: Path) -> None:
    ing, clock, _ = _setup(tmp_path, close_grace_s=300)
    task = _task(close_time=2_000)
    ing.accept([task], source=PEER)
    clock.t = 2_200.0  # closed, within the grace period: still stored
    assert ing.accept([_ann(ALICE, 1, task.cid)], source=PEER) == [Saved.NEW]
    clock.t = 2_301.0
    assert ing.accept([_ann(BOB, 1, task.cid)], source=PEER) == [Verdict.LATER]


def test_directory_tasks_admit_by_task_then_by_their_items(tmp_path: Path) -> None:
    ing, _, _ = _setup(tmp_path)
    task = _task(items=(), items_dir=cidlib.cid_bytes(b"a directory", cidlib.DAG_PB), item_count=2)
    ing.accept([task], source=PEER)
    # unresolved directory: admitted by task (the items are not known yet)
    assert ing.accept([_ann(ALICE, 1, task.cid, item=ITEMS[3])], source=PEER) == [Saved.NEW]
    ing.store.save_task_items(task.cid, [("a.png", ITEMS[0]), ("b.png", ITEMS[1])], 2)
    assert ing.accept([_ann(BOB, 1, task.cid, item=ITEMS[1])], source=PEER) == [Saved.NEW]
    assert ing.accept([_ann(BOB, 2, task.cid, item=ITEMS[3])], source=PEER) == [Verdict.INVALID]
