"""Admission control: a record is stored only if it can matter.

Ingest asks :meth:`Admission.check` about every verified record before it is
saved. The verdict is one of:

``ADMIT``
    store it.
``PENDING``
    it names a task this node has not seen yet (a label, a vote, a tally vote, a
    task update: close, extend or cancel): it waits in a bounded pool
    (``pending_max`` records, ``pending_max_age_s`` seconds) and is checked
    again when the task arrives (:meth:`Admission.release`), then admitted or
    dropped. Nobody is penalized for it.
``LATER``
    not now, but an honest peer may send it: a seq far beyond the author's
    contiguous seq (sync brings records in order), a rate limit, a label after
    the task's close time (plus ``close_grace_s``). Dropped, not penalized.
``INVALID``
    it can never be valid on any node: an item outside its task, a label
    outside the schema, an author outside the allow-list, a vote with more than
    ``max_vote_entries`` entries, past the round window, or for items that do
    not exist, a task update not signed by its task's requester, a task whose
    folder claims more than the genesis ``max_dir_items`` files. Dropped, and the
    sending peer is charged for it.

The rules that need only the record and the genesis are the same on every
node; task membership comes from the task record (or, for a task whose items
are a UnixFS directory, from the store's ``task_items`` once the directory is
resolved — before that, annotations of a directory task are admitted by task
only). Counts go to ``annot_admission_total{verdict,reason}``; the pool size
and the configured limits are gauges.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from node.core.config import AdmissionConfig  # the [admission] section of config.toml
from node.store.db import Store
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.records import (
    EXPIRED,
    Annotation,
    Record,
    TallyVote,
    Task,
    TaskUpdate,
    Vote,
    decode_record,
)


class Verdict(Enum):
    ADMIT = "admit"
    PENDING = "pending"
    LATER = "later"
    INVALID = "invalid"


class AdmissionError(ProtocolError):
    """A record refused by admission control; ``verdict`` says whether it can ever pass."""

    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _TaskInfo:
    labels: frozenset[str]
    allow: frozenset[bytes]
    items: frozenset[bytes] | None  # None: a directory task (membership from the store)
    close_time: int
    requester: bytes


class _Buckets:
    """Token buckets by key, at most ``cap`` keys (least recently used dropped)."""

    def __init__(self, rate: float, burst: int, cap: int) -> None:
        self.rate, self.burst, self.cap = rate, float(burst), cap
        self._b: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def take(self, key: object, now: float) -> bool:
        tokens, last = self._b.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        self._b[key] = (tokens - 1.0 if ok else tokens, now)
        if len(self._b) > self.cap:
            self._b.popitem(last=False)
        return ok


class Admission:
    """Decides which verified records this node stores (see the module docstring)."""

    def __init__(self, store: Store, genesis: Genesis, registry: CollectorRegistry | None,
                 config: AdmissionConfig | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.genesis = genesis
        self.config = c = config or AdmissionConfig()
        self.clock, self.mono = wall_clock, monotonic
        self._validators = frozenset(genesis.weights())
        self._tasks: dict[bytes, _TaskInfo] = {}
        self._pool: OrderedDict[bytes, tuple[bytes, Record, str, float]] = OrderedDict()
        self._authors = _Buckets(c.author_rate, c.author_burst, c.tracked)
        self._peers = _Buckets(c.peer_rate, c.peer_burst, c.tracked)
        reg = registry or CollectorRegistry()
        self.counts = Counter("annot_admission", "Records by admission verdict and reason.",
                              ["verdict", "reason"], registry=reg)
        self._children: dict[tuple[Verdict, str], Any] = {}
        self.pending_gauge = Gauge("annot_admission_pending",
                                   "Records waiting for their task.", registry=reg)
        limits = Gauge("annot_admission_limit", "Configured admission limits.", ["name"],
                       registry=reg)
        for name in ("pending_max", "pending_max_age_s", "author_rate", "author_burst",
                     "peer_rate", "peer_burst", "seq_window", "close_grace_s",
                     "max_vote_round"):
            limits.labels(name=name).set(float(getattr(c, name)))
        self.max_entries = genesis.params.max_vote_entries

    # ------------------------------------------------------------ tasks
    def task_info(self, tid: bytes) -> _TaskInfo | None:
        info = self._tasks.get(tid)
        if info is not None:
            return info
        data = self.store.get(tid)
        if data is None:
            return None
        rec = decode_record(data, self.genesis.network_id, verify=False)  # stored: verified
        if not isinstance(rec.body, Task):
            return None
        return self._remember(tid, rec.author, rec.body)

    def _remember(self, tid: bytes, requester: bytes, t: Task) -> _TaskInfo:
        items = frozenset(t.items) if (t.items or t.items_dir is None) else None
        info = self._tasks[tid] = _TaskInfo(frozenset(t.labels), frozenset(t.allow), items,
                                            t.close_time, requester)
        return info

    def _has_item(self, tid: bytes, info: _TaskInfo, item: bytes) -> bool | None:
        """Whether ``item`` belongs to the task; None while a directory is unresolved."""
        if info.items is not None:
            return item in info.items
        state = self.store.task_dir(tid)
        if state is None:
            return None
        return state[0] == "resolved" and self.store.has_task_item(tid, item)

    # ------------------------------------------------------------ verdicts
    def check(self, r: Record, source: str) -> tuple[Verdict, str]:
        """The verdict on one verified record from ``source`` (a peer id, "rpc", "self")."""
        verdict, reason = self._check(r, source)
        child = self._children.get((verdict, reason))
        if child is None:  # labels() costs more than the check itself on the hot path
            child = self._children[(verdict, reason)] = self.counts.labels(
                verdict=verdict.value, reason=reason)
        child.inc()
        if verdict is Verdict.PENDING:
            self._pend(r, source)
        return verdict, reason

    def verdict(self, r: Record) -> tuple[Verdict, str]:
        """The record's verdict on its content alone (no rate limits, pool or counters)."""
        return self._check(r, "pool")

    def _check(self, r: Record, source: str) -> tuple[Verdict, str]:
        body = r.body
        if isinstance(body, Task):
            if body.item_count > self.genesis.params.max_dir_items:
                return Verdict.INVALID, "task_too_many_items"
            self._remember(r.cid, r.author, body)
        if source == "self":  # our own records: the RPC checked them before signing
            return Verdict.ADMIT, "own"
        if source != "pool":  # "pool": a pooled record checked again when its task came
            have = self.store.clock_of(r.author)
            if r.seq > have + self.config.seq_window:
                return Verdict.LATER, "seq_ahead"
            now = self.mono()
            if source != "rpc" and not self._peers.take(source, now):
                return Verdict.LATER, "peer_rate"
            if not self._authors.take(r.author, now):
                return Verdict.LATER, "author_rate"
        if isinstance(body, Annotation):
            return self._annotation(r.author, body)
        if isinstance(body, Vote):
            return self._vote(body)
        if isinstance(body, TallyVote):
            return ((Verdict.ADMIT, "ok") if self.task_info(body.task) is not None
                    else (Verdict.PENDING, "unknown_task"))
        if isinstance(body, TaskUpdate):
            return self._task_update(r.author, body)
        return Verdict.ADMIT, "ok"

    def _annotation(self, author: bytes, a: Annotation) -> tuple[Verdict, str]:
        info = self.task_info(a.task)
        if info is None:
            return Verdict.PENDING, "unknown_task"
        if a.label not in info.labels:
            return Verdict.INVALID, "label_not_in_schema"
        if info.allow and author not in info.allow:
            return Verdict.INVALID, "author_not_allowed"
        member = self._has_item(a.task, info, a.item)
        if member is False:
            return Verdict.INVALID, "item_not_in_task"
        if info.close_time and self.clock() > info.close_time + self.config.close_grace_s \
                and not self.store.records_for_task(a.task, "task_update"):
            return Verdict.LATER, "task_closed"
        return Verdict.ADMIT, "ok"

    def _task_update(self, author: bytes, u: TaskUpdate) -> tuple[Verdict, str]:
        """An update waits for its task; once the task is here only its requester's counts
        (ingest checks the owner too, but a pooled update comes back through here only)."""
        info = self.task_info(u.task)
        if info is None:
            return Verdict.PENDING, "unknown_task"
        if author != info.requester:
            return Verdict.INVALID, "not_task_owner"
        return Verdict.ADMIT, "ok"

    def _vote(self, v: Vote) -> tuple[Verdict, str]:
        if len(v.entries) > self.max_entries:
            return Verdict.INVALID, "vote_too_many_entries"
        if v.round > self.config.max_vote_round:
            return Verdict.INVALID, "vote_round_out_of_window"
        for e in v.entries:
            info = self.task_info(e.task)
            if info is None:
                return Verdict.PENDING, "unknown_task"
            if self._has_item(e.task, info, e.item) is False:
                return Verdict.INVALID, "vote_item_not_in_task"
            if e.value is not None and e.value != EXPIRED and e.value not in info.labels:
                return Verdict.INVALID, "vote_value_not_a_label"
        return Verdict.ADMIT, "ok"

    # ------------------------------------------------------------ the pending pool
    def _pend(self, r: Record, source: str) -> None:
        task = self._waiting_for(r)
        if task is None or r.cid in self._pool:
            return
        self.expire()
        while len(self._pool) >= self.config.pending_max:
            self._pool.popitem(last=False)
            self.counts.labels(verdict="dropped", reason="pending_full").inc()
        self._pool[r.cid] = (task, r, source, self.mono())
        self.pending_gauge.set(len(self._pool))

    def expire(self) -> None:
        """Drop pooled records older than ``pending_max_age_s``."""
        horizon = self.mono() - self.config.pending_max_age_s
        while self._pool:
            cid, (_, _, _, added) = next(iter(self._pool.items()))
            if added > horizon:
                break
            del self._pool[cid]
            self.counts.labels(verdict="dropped", reason="pending_expired").inc()
        self.pending_gauge.set(len(self._pool))

    def release(self, tid: bytes) -> list[tuple[Record, str]]:
        """Pooled records waiting for task ``tid`` (now stored), to be checked again."""
        self.expire()
        out = [(r, src) for cid, (t, r, src, _) in self._pool.items() if t == tid]
        for r, _ in out:
            del self._pool[r.cid]
        self.pending_gauge.set(len(self._pool))
        return out

    def holds(self, cid: bytes) -> bool:
        """Whether the record ``cid`` waits in the pool."""
        return cid in self._pool

    def pooled_seqs(self, limit: int) -> dict[bytes, list[int]]:
        """Author → seqs of pooled records (at most ``limit``), for sync's "have" list."""
        out: dict[bytes, list[int]] = {}
        for _, r, _, _ in itertools.islice(self._pool.values(), limit):
            out.setdefault(r.author, []).append(r.seq)
        return out

    @property
    def pending(self) -> int:
        return len(self._pool)


    def _waiting_for(self, r: Record) -> bytes | None:
        """The (first) unknown task a pending record waits for."""
        b = r.body
        if isinstance(b, Annotation | TallyVote | TaskUpdate):
            return b.task
        if isinstance(b, Vote):
            return next((e.task for e in b.entries if self.task_info(e.task) is None), None)
        return None
