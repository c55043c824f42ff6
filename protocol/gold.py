"""Hidden gold (honeypot) items, by commit and reveal.

Every record is public, so a requester cannot tell the network which items are
gold without telling the annotators too. Instead a task carries, in
``Task.gold``, one salted commitment per gold item::

    commitment = sha256(GOLD_TAG + canonical([salt (32 B), item CID, label]))

sorted, so neither their order nor their content says which items they are
(a 32-byte random salt per item keeps a guess "item X is gold with label L"
from being checked against the list). After the task closes the requester
signs a ``gold_reveal`` record opening every commitment (the task closes at its
close time, or earlier by the requester's ``close`` update: :func:`check_reveal_time`);
every validator checks it with :func:`check_reveal` (only the task's author may
reveal; a reveal must open *every* commitment, each exactly once, with an item and a label of the
task) and then scores each annotator on the gold items with
:func:`gold_scores`, in integers. Accuracy is in basis points, floored.

A task with gold is tallied only once its reveal is stored, or once
:func:`reveal_deadline` has passed without one (then the tally has no gold).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from protocol.encoding import encode_canonical
from protocol.errors import ProtocolError
from protocol.lifecycle import Lifecycle
from protocol.records import GOLD_SALT_LEN, GoldEntry, GoldReveal, Task

GOLD_TAG = b"annot/v1/gold\x00"
BPS = 10_000
DEFAULT_REVEAL_WINDOW = 86_400  # seconds after close_time when reveal_window is unset


class GoldError(ProtocolError):
    """A gold reveal that cannot be accepted."""


class NotTaskAuthorError(GoldError):
    """A gold reveal signed by someone other than the task's requester."""


class RevealTooEarlyError(GoldError):
    """A gold reveal before the task closed (it would show annotators the answers)."""


class RevealMismatchError(GoldError):
    """A gold reveal that does not open the task's commitments exactly."""


@dataclass(frozen=True, slots=True)
class GoldScore:
    """One annotator's answers on the revealed gold items."""

    account: bytes
    correct: int
    total: int

    @property
    def accuracy_bps(self) -> int:
        return gold_accuracy_bps(self.correct, self.total)


def gold_commitment(salt: bytes, item: bytes, label: str) -> bytes:
    """The 32-byte commitment to ``item``'s gold ``label`` under ``salt``."""
    if len(salt) != GOLD_SALT_LEN:
        raise GoldError(f"a gold salt is {GOLD_SALT_LEN} bytes, got {len(salt)}")
    return hashlib.sha256(GOLD_TAG + encode_canonical([salt, item, label])).digest()


def commit_gold(answers: Mapping[bytes, str], salts: Mapping[bytes, bytes]
                ) -> tuple[tuple[bytes, ...], tuple[GoldEntry, ...]]:
    """(sorted commitments for ``Task.gold``, the entries of the later reveal:
    ``GoldReveal(task_id, entries)``). The caller draws each salt at random
    (32 bytes; protocol has no randomness) and keeps the entries secret until
    the task closes."""
    if set(salts) != set(answers):
        raise GoldError("need exactly one salt per gold item")
    entries = tuple(GoldEntry(salts[i], i, answers[i]) for i in sorted(answers))
    commitments = tuple(sorted(gold_commitment(e.salt, e.item, e.label) for e in entries))
    return commitments, entries


def reveal_deadline(task: Task, life: Lifecycle | None = None) -> int:
    """Unix seconds after which a task with gold is tallied even without a reveal:
    ``reveal_window`` after its close time, or after the later one an extend set
    (``life``; an early close leaves the requester the whole window)."""
    close = max(task.close_time, life.close_time if life is not None else 0)
    return close + (task.reveal_window or DEFAULT_REVEAL_WINDOW)


def check_reveal_time(task: Task, now: float, life: Lifecycle | None = None) -> None:
    """Refuse a reveal while the task is open at ``now`` (the caller's clock): before
    its close time, unless its requester closed or cancelled it early, and before a
    later close time an extend set. ``life`` is the task's lifecycle folded from the
    updates the caller holds (:func:`protocol.lifecycle.lifecycle_of`; default: none),
    so every node holding the same updates decides alike."""
    state = Lifecycle(close_time=task.close_time) if life is None else life
    if not state.is_closed(int(now)):
        raise RevealTooEarlyError(f"gold reveal before the task closes (close_time "
                                  f"{state.close_time}, now {int(now)}, not closed by its "
                                  "requester)")


def check_reveal(task: Task, task_id: bytes, requester: bytes, reveal: GoldReveal,
                 author: bytes, items: Iterable[bytes] | None = None) -> dict[bytes, str]:
    """Check ``reveal`` (signed by ``author``) against the commitments of ``task``
    (id ``task_id``, signed by ``requester``); return item → gold label. ``items``
    are the task's items when it names them by ``items_dir`` (default: ``task.items``)."""
    if reveal.task != task_id:
        raise RevealMismatchError(f"reveal is for task {reveal.task.hex()}, not {task_id.hex()}")
    if author != requester:
        raise NotTaskAuthorError("only the task's author may reveal its gold: signed by "
                                 f"{author.hex()[:16]}…, task by {requester.hex()[:16]}…")
    if not task.gold:
        raise RevealMismatchError("the task has no gold commitments to reveal")
    items = frozenset(task.items if items is None else items)
    labels, wanted = frozenset(task.labels), set(task.gold)
    gold: dict[bytes, str] = {}
    for e in reveal.entries:
        if e.item not in items:
            raise RevealMismatchError(f"gold entry for item {e.item.hex()}, not an item of "
                                      "the task")
        if e.label not in labels:
            raise RevealMismatchError(f"gold entry for item {e.item.hex()}: label {e.label!r} "
                                      "is not a label of the task")
        c = gold_commitment(e.salt, e.item, e.label)
        if c not in wanted:
            raise RevealMismatchError(f"gold entry for item {e.item.hex()} (label {e.label!r}) "
                                      "opens none of the task's commitments: wrong salt, "
                                      "item or label")
        wanted.discard(c)
        gold[e.item] = e.label
    if wanted:
        raise RevealMismatchError(f"reveal opens {len(gold)} of {len(task.gold)} gold "
                                  f"commitments; a reveal must open all of them")
    return gold


def gold_accuracy_bps(correct: int, total: int) -> int:
    """Gold accuracy in basis points, floored; 0 for no gold answers."""
    return correct * BPS // total if total else 0


def gold_scores(gold: Mapping[bytes, str], annotations: Iterable[tuple[bytes, bytes, str]]
                ) -> tuple[GoldScore, ...]:
    """Each annotator's (correct, total) on the gold items, sorted by account;
    ``annotations`` are (item, author, label), one per author and item."""
    counts: dict[bytes, list[int]] = {}
    for item, author, label in annotations:
        answer = gold.get(item)
        if answer is not None:
            row = counts.setdefault(author, [0, 0])
            row[0] += label == answer
            row[1] += 1
    return tuple(GoldScore(a, c, t) for a, (c, t) in sorted(counts.items()))


def gated_out(task: Task, scores: Iterable[GoldScore]) -> frozenset[bytes]:
    """Annotators whose gold accuracy is below ``task.min_gold_bps`` (they are not
    paid for the task). Annotators who answered no gold item are not gated."""
    if not task.min_gold_bps:
        return frozenset()
    return frozenset(s.account for s in scores
                     if s.total and s.accuracy_bps < task.min_gold_bps)


__all__ = [
    "DEFAULT_REVEAL_WINDOW", "GOLD_TAG", "GoldError", "GoldScore", "NotTaskAuthorError",
    "RevealMismatchError", "RevealTooEarlyError", "check_reveal", "check_reveal_time",
    "commit_gold", "gated_out", "gold_accuracy_bps", "gold_commitment", "gold_scores",
    "reveal_deadline",
]
