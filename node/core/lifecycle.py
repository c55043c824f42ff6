"""Task lifecycle rules at the node's edge: who may update a task, and what a closed
task still takes.

Two kinds of check (the rules themselves are :mod:`protocol.lifecycle`):

- **the same on every node** (:meth:`TaskRules.check_owner`): a task update signed
  by anyone but the task's requester is refused, from any source;
- **on this node's clock** (:meth:`TaskRules.check_now`), for records a client
  submits: a label for a task that is closed (its close time passed, or its
  requester closed or cancelled it) and an update of a closed task are refused
  with an error that says so. Records from peers are not refused on the clock
  here (admission control gives a late label a grace period and never charges the
  peer): clocks differ, and consensus settles what each node saw.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from node.store.db import Store
from protocol.lifecycle import Lifecycle, NotTaskOwnerError, check_open, check_update, lifecycle_of
from protocol.records import Annotation, Record, Task, TaskUpdate, decode_record

TASK_CACHE = 256


class TaskRules:
    """Lifecycle checks over the tasks and task updates in ``store``."""

    def __init__(self, store: Store, network_id: bytes,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.network_id = network_id
        self.clock = wall_clock
        self._tasks: OrderedDict[bytes, tuple[bytes, Task]] = OrderedDict()

    def task(self, tid: bytes) -> tuple[bytes, Task] | None:
        """(requester, task) of a stored task, or None."""
        hit = self._tasks.get(tid)
        if hit is None:
            data = self.store.get(tid)
            if data is None:
                return None
            rec = decode_record(data, self.network_id, verify=False)  # stored: verified
            if not isinstance(rec.body, Task):
                return None
            hit = self._tasks[tid] = (rec.author, rec.body)
            if len(self._tasks) > TASK_CACHE:
                self._tasks.popitem(last=False)
        return hit

    def lifecycle(self, tid: bytes) -> tuple[bytes, Lifecycle] | None:
        """(requester, lifecycle) of a stored task from the updates stored for it."""
        entry = self.task(tid)
        if entry is None:
            return None
        updates = []
        for data in self.store.records_for_task(tid, "task_update"):
            rec = decode_record(data, self.network_id, verify=False)
            if isinstance(rec.body, TaskUpdate):
                updates.append((rec.author, rec.seq, rec.body))
        return entry[0], lifecycle_of(entry[1], entry[0], updates)

    def check_owner(self, record: Record) -> None:
        """Refuse a task update not signed by its task's requester (``NotTaskOwnerError``).
        An update of a task not here yet passes (admission decides what waits)."""
        body = record.body
        if isinstance(body, TaskUpdate):
            entry = self.task(body.task)
            if entry is not None and record.author != entry[0]:
                raise NotTaskOwnerError(body.task, record.author, entry[0])

    def check_open_now(self, task: bytes) -> None:
        """Before the node signs a label for ``task`` (``annotation.create``): refuse it
        if the task is closed on our clock (``TaskClosedError``)."""
        found = self.lifecycle(task)
        if found is not None:
            check_open(task, found[1], int(self.clock()))

    def check_now(self, record: Record) -> None:
        """Refuse, on this node's clock, a label for a closed task and an update that
        cannot apply (``TaskClosedError``, ``TaskUpdateError``)."""
        body = record.body
        if not isinstance(body, (Annotation, TaskUpdate)):
            return
        found = self.lifecycle(body.task)
        if found is None:
            return
        requester, life = found
        now = int(self.clock())
        if isinstance(body, Annotation):
            check_open(body.task, life, now)
        else:
            check_update(body.task, requester, life, record.author, body, now)
