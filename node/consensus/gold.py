"""Gold reveals for the tally: a task with gold waits for a valid reveal.

A ``gold_reveal`` is checked at ingest (every source, :meth:`node.core.ingest.Ingest.check_rules`):
refused unless the task's author signed it, the task has closed on this node's
clock (its close time passed, or its requester closed it early), and it opens the
task's commitments exactly (:func:`protocol.gold.check_reveal` says precisely what
does not match); one whose task is not here yet waits in
admission. Here, :func:`gold_answers` gives the tally the answers of the task's
first valid reveal (every reveal is checked again before use), and raises
:class:`GoldPending` until one is stored or :func:`protocol.gold.reveal_deadline`
has passed, after which the task is tallied without gold.
"""

from __future__ import annotations

import logging
from typing import Protocol

from node.errors import NodeError
from protocol.gold import GoldError, check_reveal, reveal_deadline
from protocol.lifecycle import lifecycle_of
from protocol.records import GoldReveal, Task, TaskUpdate, decode_record

log = logging.getLogger("annot.gold")


class RevealStore(Protocol):
    def records_for_task(self, task: bytes, kind: str) -> list[bytes]: ...


class GoldPending(NodeError, LookupError):
    """A task with gold whose reveal is not here yet and whose deadline has not passed."""


def gold_answers(store: RevealStore, network_id: bytes, task_id: bytes, requester: bytes,
                 task: Task, now: float) -> dict[bytes, str] | None:
    """The gold answers to tally ``task`` with; ``None`` for a task without gold or
    past its reveal deadline with no valid reveal; :class:`GoldPending` before then."""
    if not task.gold:
        return None
    for data in store.records_for_task(task_id, "gold_reveal"):
        rec = decode_record(data, network_id, verify=False)  # stored: verified on ingest
        if isinstance(rec.body, GoldReveal) and rec.body.task == task_id:
            try:
                return check_reveal(task, task_id, requester, rec.body, rec.author)
            except GoldError as exc:
                log.warning("ignoring gold reveal %s: %s", rec.cid_str, exc)
    updates = []
    for data in store.records_for_task(task_id, "task_update"):
        rec = decode_record(data, network_id, verify=False)
        if isinstance(rec.body, TaskUpdate):
            updates.append((rec.author, rec.seq, rec.body))
    # an extend moves the deadline with the close: the reveal could not come earlier
    deadline = reveal_deadline(task, lifecycle_of(task, requester, updates))
    if now < deadline:
        raise GoldPending(f"waiting for the gold reveal of task {task_id.hex()[:16]} "
                          f"(or its deadline, {deadline - int(now)} s from now)")
    return None
