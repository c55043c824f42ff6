"""This node's proposals: what it would prevote for each item, from what it holds.

A proposal is a pure function (:func:`protocol.aggregate.propose`) of the
task, the annotations in the store, reputation weights from the final tallies
the task names, and whether the task's close time has passed on this node's
clock. Annotations that the task does not admit (author outside its allow-list,
label outside its schema) are ignored the same way on every node, and so are all
annotations of an author who forked (signed two records with one seq): once the
evidence reaches a node, that author's labels leave its proposals and the tally
(:meth:`Proposer.admitted`), on every node alike (docs/protocol.md, "Forks").

Memory follows live work: an item gets a proposal (and so consensus state) only
once it has an annotation; a task's other items cost nothing until then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from node.consensus.ports import ConsensusStore
from protocol.aggregate import majority, propose
from protocol.consensus_events import Key, ProposalChanged
from protocol.errors import ProtocolError
from protocol.ledger import reputation_weights
from protocol.lifecycle import Lifecycle, lifecycle_of
from protocol.records import EXPIRED, Task, TaskUpdate
from protocol.tally import Tally, decode_tally

log = logging.getLogger("annot.proposals")
_Inputs = tuple[bool, list[tuple[bytes, int]] | None, list[tuple[bytes, bytes, str]]]


class Proposer:
    def __init__(self, store: ConsensusStore, wall_clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = wall_clock
        self.tasks: dict[bytes, tuple[bytes, Task]] = {}  # task id → (requester, task)
        # task id → (allow-list, labels, items) as sets, built once: rebuilding them per
        # item was most of a joining node's CPU (a task may list 100,000 items)
        self._rules: dict[bytes, tuple[frozenset[bytes], frozenset[str], frozenset[bytes]]] = {}
        self._current: dict[Key, str | None] = {}
        self._dirty: set[Key] = set()
        # task id -> (inputs, proposals) of the last computation: a task-wide rule
        # (dawid-skene) costs a second or more per call on a large task, and syncs
        # ask for fresh proposals far more often than the annotations change
        self._last: dict[bytes, tuple[_Inputs, dict[bytes, str | None]]] = {}
        self.forkers: set[bytes] = set(store.forked_authors())
        # task lifecycles (protocol.lifecycle): close time and requester updates
        self.life: dict[bytes, Lifecycle] = {}
        self._updates: dict[bytes, list[tuple[bytes, int, TaskUpdate]]] = {}
        self._fired: dict[bytes, int] = {}  # task → close time already fired

    def add_task(self, tid: bytes, requester: bytes, task: Task) -> None:
        if tid not in self.tasks:
            self.tasks[tid] = (requester, task)
            # only items that already have annotations: the rest wait for theirs
            # (marking all 4,096 items of a task kept state for every one of them)
            self._dirty.update((tid, a.item) for a in self.store.annotations(tid))
            self.life[tid] = lifecycle_of(task, requester, self._updates.get(tid, ()))
            if self.is_closed(tid):
                # a closed task proposes EXPIRED for items short of annotations
                self._dirty.update((tid, item) for item in task.items)

    def is_closed(self, tid: bytes) -> bool:
        return self.life[tid].is_closed(int(self.clock()))

    def task_updated(self, author: bytes, seq: int, update: TaskUpdate) -> None:
        """A requester's close/extend/cancel: every item of the task is proposed again."""
        self._updates.setdefault(update.task, []).append((author, seq, update))
        entry = self.tasks.get(update.task)
        if entry is not None:
            self.life[update.task] = lifecycle_of(entry[1], entry[0], self._updates[update.task])
            self._dirty.update((update.task, item) for item in entry[1].items)

    def next_close(self) -> tuple[int, bytes] | None:
        """(close time, task) of the next task a timer must close, if any."""
        due = [(t, tid) for tid, life in self.life.items()
               if (t := life.closes_at()) is not None and self._fired.get(tid) != t]
        return min(due) if due else None

    def close_due(self, tid: bytes, close_time: int) -> None:
        """The close time of ``tid`` has come: propose again (EXPIRED where short)."""
        self._fired[tid] = close_time
        self._dirty.update((tid, item) for item in self.tasks[tid][1].items)

    def author_forked(self, author: bytes) -> bool:
        """Apply the fork rule to ``author``; True if it is new here (proposals move)."""
        if author in self.forkers:
            return False
        self.forkers.add(author)
        for tid in self.tasks:
            self._dirty.update((tid, a.item) for a in self.store.annotations(tid)
                               if a.author == author)
        return True

    def annotation_added(self, task: bytes, item: bytes) -> None:
        if task in self.tasks:
            self._dirty.add((task, item))

    def current(self, key: Key) -> str | None:
        return self._current.get(key)

    def admitted(self, tid: bytes, item: bytes | None = None) -> list[tuple[bytes, bytes, str]]:
        """The task's (or one item's) annotations as (item, author, label), filtered by
        the task's rules."""
        rules = self._rules.get(tid)
        if rules is None:
            _, task = self.tasks[tid]
            rules = self._rules[tid] = (frozenset(task.allow), frozenset(task.labels),
                                        frozenset(task.items))
        allow, labels, items = rules
        forkers = self.forkers
        return [(a.item, a.author, a.label) for a in self.store.annotations(tid, item)
                if a.label in labels and a.item in items and (not allow or a.author in allow)
                and a.author not in forkers]

    def _weights(self, task: Task) -> dict[bytes, int] | None:
        if not task.weights_from:
            return None
        finals: dict[bytes, Tally] = {t: decode_tally(d) for t, _, d in self.store.tallies()}
        return reputation_weights(finals, task.weights_from)

    def _compute_items(self, tid: bytes, items: set[bytes]) -> dict[bytes, str | None]:
        """Majority is per item: recompute only the items asked for, not the whole task."""
        _, task = self.tasks[tid]
        closed = self.is_closed(tid)
        if self.life[tid].cancelled:  # cancelled: whatever is not final expires
            return dict.fromkeys(items, EXPIRED)
        try:
            weights = self._weights(task)
            return {item: majority(self.admitted(tid, item), task.labels, weights,
                                   redundancy=task.redundancy, closed=closed)
                    for item in items}
        except ProtocolError as exc:
            log.info("no proposal for task %s yet: %s", tid.hex()[:16], exc)
            return dict.fromkeys(items)

    def _compute(self, tid: bytes) -> dict[bytes, str | None]:
        _, task = self.tasks[tid]
        closed = self.is_closed(tid)
        if self.life[tid].cancelled:
            return dict.fromkeys(task.items, EXPIRED)
        try:
            weights = self._weights(task)
            anns = self.admitted(tid)
            inputs = (closed, sorted(weights.items()) if weights is not None else None, anns)
            last = self._last.get(tid)
            if last is not None and last[0] == inputs:  # a pure function of exactly these
                return dict(last[1])
            values = propose(task, anns, closed=closed, weights=weights)
            self._last[tid] = (inputs, dict(values))
            return values
        except ProtocolError as exc:
            log.info("no proposal for task %s yet: %s", tid.hex()[:16], exc)
            return dict.fromkeys(task.items)

    def _changes(self, keys: Iterable[Key], always: bool) -> list[ProposalChanged]:
        by_task: dict[bytes, set[bytes]] = {}
        for tid, item in keys:
            if tid in self.tasks:
                by_task.setdefault(tid, set()).add(item)
        out = []
        for tid, items in by_task.items():
            if self.tasks[tid][1].rule == "majority":
                values = self._compute_items(tid, items)
            else:
                values = self._compute(tid)
                items = set(values)  # a task-wide rule can move every item
            for item in items:
                v = values.get(item)
                key = (tid, item)
                if v is None and key not in self._current and not always:
                    continue  # nothing to say about an item nobody labelled: no state
                if always or key not in self._current or self._current[key] != v:
                    self._current[key] = v
                    out.append(ProposalChanged(key, v))
        return out

    def flush(self) -> list[ProposalChanged]:
        """Proposals that changed since the last flush."""
        dirty, self._dirty = self._dirty, set()
        return self._changes(dirty, always=False)

    def refresh(self, keys: Iterable[Key]) -> list[ProposalChanged]:
        """Fresh proposals for ``keys`` after a sync (sent even when unchanged)."""
        return self._changes(keys, always=True)
