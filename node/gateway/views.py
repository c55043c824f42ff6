"""Read views over the store for the gateway: a task's progress, the next item a key
should label, and one key's work ("my work"). Pure functions of the store's
contents (and, for a closed task, the wall clock).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass

from node.errors import SeqError
from node.gateway.api import (
    Account,
    ItemProgress,
    NextItem,
    NotFoundError,
    RejectedError,
    TaskProgress,
)
from node.store.db import Store
from protocol import cid as cidlib
from protocol.keys import peer_id_from_public_key
from protocol.ledger import build_ledger
from protocol.records import EXPIRED, Annotation, Task, decode_record
from protocol.tally import decode_tally

TASKS_HELD = 64
ITEMS_HELD = 1_000_000  # items of the tasks held (a folder task's list is its files)
MAX_OWN_ANNOTATIONS = 100_000  # "my work" reads at most this many of one key's labels
TOP = 10


@dataclass(frozen=True, slots=True)
class TaskEntry:
    """A decoded task record (tasks are immutable, so it is decoded once)."""

    tid: bytes
    requester: bytes
    task: Task
    items: frozenset[bytes]
    # the items in task order: inline, or a folder task's files once its directory is
    # resolved (empty before)
    item_list: tuple[bytes, ...] = ()

    @property
    def item_count(self) -> int:
        """How many items the task has: a folder task's ``item_count``, else its list."""
        return self.task.item_count if self.task.items_dir is not None else len(self.task.items)

    @property
    def closed(self) -> bool:
        return 0 < self.task.close_time <= time.time()

    def to_json(self) -> dict[str, object]:
        t = self.task
        return {"task": cidlib.cid_to_str(self.tid),
                "requester": peer_id_from_public_key(self.requester), "title": t.title,
                "labels": list(t.labels), "items": [cidlib.cid_to_str(i) for i in t.items],
                "item_count": self.item_count,
                "items_dir": cidlib.cid_to_str(t.items_dir) if t.items_dir else None,
                "redundancy": t.redundancy, "reward_per_item": t.reward_per_item,
                "validator_share_bps": t.validator_share_bps,
                "close_time": t.close_time or None, "rule": t.rule,
                "allow": [peer_id_from_public_key(a) for a in t.allow],
                "instructions": cidlib.cid_to_str(t.instructions) if t.instructions else None}

    def check_annotation(self, author: bytes, a: Annotation) -> None:
        """Say why an annotation could never count, before it is admitted."""
        unresolved = self.task.items_dir is not None and not self.item_list
        if not unresolved and a.item not in self.items:
            raise RejectedError(f"item {cidlib.cid_to_str(a.item)} is not an item of this task")
        if a.label not in self.task.labels:
            raise RejectedError(f"label {a.label!r} is not one of {', '.join(self.task.labels)}")
        if self.task.allow and author not in self.task.allow:
            raise RejectedError("this task only takes labels from the keys it allows")
        if self.closed:
            raise RejectedError("this task is closed")


class TaskCache:
    """Decoded tasks by id, the most recently used ``TASKS_HELD`` of them."""

    def __init__(self, store: Store, network_id: bytes) -> None:
        self.store = store
        self.network_id = network_id
        self._held: OrderedDict[bytes, TaskEntry] = OrderedDict()
        self._items = 0  # items listed by the held entries

    def get(self, tid: bytes) -> TaskEntry:
        hit = self._held.get(tid)
        if hit is not None:
            self._held.move_to_end(tid)
            return hit
        data = self.store.get(tid)
        rec = decode_record(data, self.network_id, verify=False) if data is not None else None
        if rec is None or not isinstance(rec.body, Task):
            raise NotFoundError(f"task {cidlib.cid_to_str(tid)} is not known to this node")
        t = rec.body
        if t.items_dir is None:
            entry = TaskEntry(tid, rec.author, t, frozenset(t.items), t.items)
        else:
            listed = tuple(self.store.task_item_cids(tid))
            entry = TaskEntry(tid, rec.author, t, frozenset(listed), listed)
            state = self.store.task_dir(tid)
            if state is None or state[0] != "resolved":
                return entry  # not held: its files are listed once the folder resolves
        self._held[tid] = entry
        self._items += len(entry.item_list)
        while len(self._held) > 1 and (len(self._held) > TASKS_HELD
                                       or self._items > ITEMS_HELD):
            _, old = self._held.popitem(last=False)
            self._items -= len(old.item_list)
        return entry


def task_progress(store: Store, entry: TaskEntry, with_items: bool,
                  types: dict[bytes, str | None], rows_from: int = 0,
                  rows_limit: int | None = None) -> TaskProgress:
    """Counts of final / pending / short / expired items, label distribution, top
    annotators (by labels given, with their agreement with final values)."""
    by_item: dict[bytes, list[tuple[bytes, str]]] = defaultdict(list)
    for a in store.annotations(entry.tid):
        by_item[a.item].append((a.author, a.label))
    counts = {"final": 0, "pending": 0, "short": 0, "expired": 0}
    labels: Counter[str] = Counter()
    given: Counter[bytes] = Counter()
    agreed: Counter[bytes] = Counter()
    rows = []
    r = entry.task.redundancy
    last = len(entry.item_list) if rows_limit is None else rows_from + rows_limit
    for n, iid in enumerate(entry.item_list):
        anns = by_item.get(iid, [])
        cert = store.certificate(entry.tid, iid)
        final = cert[0] if cert else None
        status = ("expired" if final == EXPIRED else "final" if final is not None
                  else "pending" if len(anns) >= r else "short")
        counts[status] += 1
        dist = Counter(label for _, label in anns)
        labels.update(dist)
        for author, label in anns:
            given[author] += 1
            if final is not None and label == final:
                agreed[author] += 1
        agreement = (dist[final] * 10_000 // len(anns)
                     if final is not None and final != EXPIRED and anns else None)
        if with_items and rows_from <= n < last:
            rows.append(ItemProgress(cidlib.cid_to_str(iid), types.get(iid), len(anns),
                                     dict(dist), final, agreement, status))
    top = tuple({"author": peer_id_from_public_key(a), "labels": n, "agreed": agreed[a]}
                for a, n in sorted(given.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP])
    return TaskProgress(entry.to_json(), counts["final"], counts["pending"], counts["short"],
                        counts["expired"], dict(labels), top, tuple(rows))


def next_item(store: Store, entry: TaskEntry, author: bytes,
              skip: frozenset[bytes]) -> NextItem:
    """The first item, in task order, that needs labels and that ``author`` has not
    labelled (nor skipped); ``item`` is None when there is none."""
    task = cidlib.cid_to_str(entry.tid)
    r = entry.task.redundancy
    if entry.closed or (entry.task.allow and author not in entry.task.allow):
        return NextItem(task, None, None, 0, r, 0)
    counts: Counter[bytes] = Counter()
    mine: set[bytes] = set()
    for a in store.annotations(entry.tid):
        counts[a.item] += 1
        if a.author == author:
            mine.add(a.item)
    open_items = [i for i in entry.item_list if counts[i] < r and i not in mine]
    for iid in open_items:
        if iid not in skip and store.certificate(entry.tid, iid) is None:
            return NextItem(task, cidlib.cid_to_str(iid), None, counts[iid], r,
                            len(open_items))
    return NextItem(task, None, None, 0, r, 0)


def account_view(store: Store, author: bytes, author_id: str) -> Account:
    """Labels given, items final among them and agreement, ledger standing, highest seq."""
    own = store.annotations_by_author(author, 0, MAX_OWN_ANNOTATIONS)
    final = agreed = 0
    for a in own:
        cert = store.certificate(a.task, a.item)
        if cert is not None and cert[0] != EXPIRED:
            final += 1
            agreed += cert[0] == a.label
    acct = build_ledger(decode_tally(d) for _, _, d in store.tallies()).account(author)
    try:
        highest = store.next_seq(author) - 1
    except SeqError:
        highest = 0
    return Account(author_id, len(own), final, agreed, final - agreed, acct.reputation,
                   acct.balance, highest)
