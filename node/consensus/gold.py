"""Gold reveals on the node: the ingest rule and the tally's wait.

* :func:`check_gold_record` — for ingest (every source): a ``gold_reveal`` is
  refused unless its task is here, the task's author signed it, the task has
  closed on this node's clock, and it opens the task's commitments exactly
  (:func:`protocol.gold.check_reveal` says precisely what does not match). A
  reveal for a task not here yet passes to admission, which holds it until the
  task comes; the tally checks every reveal again before using it.
* :func:`gold_answers` — for the tally: a task with gold is tallied with the
  answers of its first valid reveal, and waits (:class:`GoldPending`) until one
  is stored or :func:`protocol.gold.reveal_deadline` has passed, after which it
  is tallied without gold.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Protocol

from node.errors import NodeError
from protocol.gold import GoldError, check_reveal, check_reveal_time, reveal_deadline
from protocol.records import GoldReveal, Record, Task, decode_record

log = logging.getLogger("annot.gold")


class RevealStore(Protocol):
    def records_of_kind(self, kind: str) -> Iterator[bytes]: ...


class GoldPending(NodeError, LookupError):
    """A task with gold whose reveal is not here yet and whose deadline has not passed."""


def check_gold_record(record: Record, task_of: Callable[[bytes], tuple[bytes, Task] | None],
                      now: float) -> None:
    """Refuse an invalid gold reveal with a :class:`protocol.gold.GoldError`;
    ``task_of(task id)`` gives (requester, task) of a stored task, or ``None``."""
    body = record.body
    if not isinstance(body, GoldReveal):
        return
    entry = task_of(body.task)
    if entry is None:
        return  # admission holds it until its task arrives
    requester, task = entry
    check_reveal(task, body.task, requester, body, record.author)
    check_reveal_time(task, now)


def gold_answers(store: RevealStore, network_id: bytes, task_id: bytes, requester: bytes,
                 task: Task, now: float) -> dict[bytes, str] | None:
    """The gold answers to tally ``task`` with; ``None`` for a task without gold or
    past its reveal deadline with no valid reveal; :class:`GoldPending` before then."""
    if not task.gold:
        return None
    for data in store.records_of_kind("gold_reveal"):
        rec = decode_record(data, network_id, verify=False)  # stored: verified on ingest
        if isinstance(rec.body, GoldReveal) and rec.body.task == task_id:
            try:
                return check_reveal(task, task_id, requester, rec.body, rec.author)
            except GoldError as exc:
                log.warning("ignoring gold reveal %s: %s", rec.cid_str, exc)
    deadline = reveal_deadline(task)
    if now < deadline:
        raise GoldPending(f"waiting for the gold reveal of task {task_id.hex()[:16]} "
                          f"(or its deadline, {deadline - int(now)} s from now)")
    return None
