"""Task lifecycle: when a task closes, whether it was cancelled, who may change it.

A task is open until its close time (``Task.close_time``, unix seconds; 0 =
never). Its requester — the author of the task record, and nobody else — may
change that with :class:`~protocol.records.TaskUpdate` records, which apply in
the requester's seq order (one author, so the order is the same on every node):

``close``
    The task is closed from the moment a node holds the update, as if its close
    time had been reached: items short of annotations are voted EXPIRED, items
    with enough annotations finish as usual, and the tally follows.
``extend``
    The close time moves to the update's ``close_time``, which must be later than
    the current one (a task that never closes has nothing to extend).
``cancel``
    The task is closed, and every item not final yet is voted EXPIRED whatever
    its annotations: the annotators' part of those items goes back to the
    requester in the tally (:mod:`protocol.tally`; the validators' share pays for
    the certificate, as for any EXPIRED item).

Close and cancel are final: a later update of a closed or cancelled task is
refused. :func:`lifecycle_of` folds the updates a node holds into a
:class:`Lifecycle` and ignores the ones that could not apply, the same way on
every node; :func:`check_update` and :func:`check_open` are the admission checks
(they take the node's clock as an argument: this module reads no clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from protocol import keys
from protocol.cid import cid_to_str
from protocol.errors import ProtocolError
from protocol.records import Task, TaskUpdate


class TaskUpdateError(ProtocolError):
    """A task update that cannot apply to its task as this node holds it."""


class NotTaskOwnerError(TaskUpdateError):
    """A task update signed by someone other than the task's author."""

    def __init__(self, task: bytes, author: bytes, requester: bytes) -> None:
        super().__init__(
            f"only the requester of task {cid_to_str(task)} ({_name(requester)}) may close, "
            f"extend or cancel it; this update is signed by {_name(author)}")
        self.task, self.author, self.requester = task, author, requester


class TaskClosedError(ProtocolError):
    """A record for a task that is already closed or cancelled."""

    def __init__(self, task: bytes, why: str) -> None:
        super().__init__(f"task {cid_to_str(task)} {why}")
        self.task = task


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """A task's state as its updates leave it (the clock decides the rest)."""

    close_time: int = 0  # effective close time, unix seconds; 0 = never by time
    closed: bool = False  # closed by an update (close or cancel)
    cancelled: bool = False

    def is_closed(self, now: int) -> bool:
        """Whether the task is closed at unix time ``now``."""
        return self.closed or 0 < self.close_time <= now

    def closes_at(self) -> int | None:
        """When a timer must close the task (``None``: already closed by an update,
        or never closes)."""
        return None if self.closed or not self.close_time else self.close_time

    def describe(self, now: int) -> str:
        if self.cancelled:
            return "was cancelled by its requester"
        if self.closed:
            return "was closed by its requester"
        if self.is_closed(now):
            return f"closed at {_when(self.close_time)}"
        return "is open"


def lifecycle_of(task: Task, requester: bytes,
                 updates: Iterable[tuple[bytes, int, TaskUpdate]]) -> Lifecycle:
    """Fold ``(author, seq, update)`` triples of one task into its lifecycle; updates
    by others or that cannot apply (after a close, an extend that is not later)
    are ignored, so every node holding the same updates gets the same state."""
    state = Lifecycle(close_time=task.close_time)
    for author, _, update in sorted(updates, key=lambda u: (u[0], u[1])):
        if author == requester:
            try:
                state = apply_update(state, update)
            except TaskUpdateError:
                continue
    return state


def apply_update(state: Lifecycle, update: TaskUpdate) -> Lifecycle:
    """The state after ``update``; raise ``TaskUpdateError`` if it cannot apply."""
    if state.closed:
        raise TaskUpdateError(f"task {cid_to_str(update.task)} "
                              f"{state.describe(0)}; it cannot be changed any more")
    if update.action == "close":
        return replace(state, closed=True)
    if update.action == "cancel":
        return replace(state, closed=True, cancelled=True)
    if not state.close_time:
        raise TaskUpdateError(f"task {cid_to_str(update.task)} has no close time, so "
                              "there is nothing to extend (close or cancel it instead)")
    if update.close_time <= state.close_time:
        raise TaskUpdateError(
            f"extend must move the close time of task {cid_to_str(update.task)} later than "
            f"{_when(state.close_time)}; {_when(update.close_time)} is not later")
    return replace(state, close_time=update.close_time)


def check_update(task_id: bytes, requester: bytes, state: Lifecycle, author: bytes,
                 update: TaskUpdate, now: int) -> Lifecycle:
    """Admission of a task update at unix time ``now``: the author must be the task's
    requester, the task still open, the update applicable. Return the new state."""
    if author != requester:
        raise NotTaskOwnerError(task_id, author, requester)
    if state.is_closed(now):
        raise TaskClosedError(task_id, f"{state.describe(now)}; it cannot be "
                                       f"{_past(update.action)} any more")
    return apply_update(state, update)  # an open task's later close time is in the future


def check_open(task_id: bytes, state: Lifecycle, now: int) -> None:
    """Admission of an annotation at unix time ``now``: refused once the task closed."""
    if state.is_closed(now):
        raise TaskClosedError(task_id, f"{state.describe(now)}; labels after the close "
                                       "are refused")


def _past(action: str) -> str:
    return {"close": "closed", "extend": "extended", "cancel": "cancelled"}[action]


def _when(t: int) -> str:
    """Unix seconds as ISO 8601 UTC, in integers (days to civil date, H. Hinnant's
    algorithm): protocol/ never imports datetime."""
    days, secs = divmod(t, 86_400)
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    hh, rest = divmod(secs, 3_600)
    return f"{year:04d}-{month:02d}-{day:02d}T{hh:02d}:{rest // 60:02d}:{rest % 60:02d}Z ({t})"


def _name(public_key: bytes) -> str:
    try:
        return keys.peer_id_from_public_key(public_key)
    except ProtocolError:
        return public_key.hex()


__all__ = ["Lifecycle", "NotTaskOwnerError", "TaskClosedError", "TaskUpdateError",
           "apply_update", "check_open", "check_update", "lifecycle_of"]
