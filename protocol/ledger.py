"""The ledger: the sum of final tallies, identical on every node.

For each account the ledger holds what it ``earned`` (tally amounts), what it
``paid`` (the ``total`` of every tally where it is the requester), and its
``agreed`` / ``disagreed`` counts. ``balance = earned - paid`` may be
negative: there are no deposits in this version, so a requester's balance is
what it owes. Every tally's amounts sum to its total, so **balances always sum
to zero**.

Tallies are applied in canonical order, sorted by task id. Since integer
addition commutes, the ledger a node builds does not depend on the order in
which it saw tallies finalize; the sorted task list makes the canonical
encoding, and so :func:`ledger_root`, identical too.

Reputation is an integer in basis points, Laplace smoothed:
``max(1, (agreed + 1) * 10_000 // (agreed + disagreed + 2))`` — 5,000 for a
newcomer, always in 1..9,999, so it is a valid (positive) aggregation weight.
Gold answers (:mod:`protocol.gold`) are ground truth, agreement only a proxy
that a colluding majority can earn: an account with any scored gold answers
has the same smoothing over its gold answers instead,
``max(1, (gold_correct + 1) * 10_000 // (gold_total + 2))``.
:func:`reputation_weights` derives weights for a task only from the final
tallies that task names in ``weights_from``, never from whatever else a node
has finalized locally, so every validator uses the same weights.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from protocol.encoding import encode_canonical
from protocol.errors import MissingTallyError, TallyError
from protocol.tally import BPS, Tally

LEDGER_TAG = b"annot/v1/ledger\x00"
NEUTRAL_REPUTATION = BPS // 2


def reputation(agreed: int, disagreed: int, gold_correct: int = 0, gold_total: int = 0) -> int:
    """Laplace-smoothed gold accuracy if there are gold answers, else agreement
    rate, in basis points, floored at 1 (1..9,999)."""
    if gold_total:
        return max(1, (gold_correct + 1) * BPS // (gold_total + 2))
    return max(1, (agreed + 1) * BPS // (agreed + disagreed + 2))


@dataclass(frozen=True, slots=True)
class Account:
    """One account's standing: money in and out, and agreement counts."""

    key: bytes
    earned: int = 0
    paid: int = 0
    agreed: int = 0
    disagreed: int = 0
    gold_correct: int = 0
    gold_total: int = 0

    @property
    def balance(self) -> int:
        return self.earned - self.paid

    @property
    def reputation(self) -> int:
        return reputation(self.agreed, self.disagreed, self.gold_correct, self.gold_total)


@dataclass(frozen=True, slots=True)
class Ledger:
    """Accounts sorted by key and the sorted ids of the tasks whose tallies are in."""

    tasks: tuple[bytes, ...] = ()
    accounts: tuple[Account, ...] = ()

    def account(self, key: bytes) -> Account:
        """The account of ``key`` (all zero if it never appeared)."""
        i = bisect.bisect_left(self.accounts, key, key=lambda a: a.key)
        if i < len(self.accounts) and self.accounts[i].key == key:
            return self.accounts[i]
        return Account(key)

    def balance(self, key: bytes) -> int:
        return self.account(key).balance

    def reputation(self, key: bytes) -> int:
        return self.account(key).reputation


EMPTY_LEDGER = Ledger()


def apply_tallies(ledger: Ledger, tallies: Iterable[Tally]) -> Ledger:
    """``ledger`` plus ``tallies`` (applied sorted by task id); a task already
    in the ledger, or given twice, raises :class:`TallyError`."""
    new = sorted(tallies, key=lambda t: t.task)
    ids = [t.task for t in new]
    if len(set(ids)) != len(ids) or set(ids) & set(ledger.tasks):
        raise TallyError("a task's tally can enter the ledger only once")
    acc: dict[bytes, list[int]] = {
        a.key: [a.earned, a.paid, a.agreed, a.disagreed, a.gold_correct, a.gold_total]
        for a in ledger.accounts
    }
    for tally in new:
        total = sum(e.amount for e in tally.entries)
        if total != tally.total:
            raise TallyError(f"tally of {tally.task.hex()} pays {total}, not its total "
                             f"{tally.total}")
        acc.setdefault(tally.requester, [0] * 6)[1] += tally.total
        for e in tally.entries:
            row = acc.setdefault(e.account, [0] * 6)
            row[0] += e.amount
            row[2] += e.agreed
            row[3] += e.disagreed
        for g in tally.gold:
            row = acc.setdefault(g.account, [0] * 6)
            row[4] += g.correct
            row[5] += g.total
    accounts = tuple(Account(k, *acc[k]) for k in sorted(acc))
    return Ledger(tuple(sorted((*ledger.tasks, *ids))), accounts)


def apply_tally(ledger: Ledger, tally: Tally) -> Ledger:
    """``ledger`` plus one final tally."""
    return apply_tallies(ledger, (tally,))


def build_ledger(tallies: Iterable[Tally]) -> Ledger:
    """The ledger of a set of final tallies."""
    return apply_tallies(EMPTY_LEDGER, tallies)


def encode_ledger(ledger: Ledger) -> bytes:
    """Canonical bytes: ``{"accounts": [[key, earned, paid, agreed, disagreed], …],
    "tasks": [task id, …]}``; an account with gold answers has two more columns,
    ``gold_correct, gold_total`` (so ledgers without gold encode as before)."""
    return encode_canonical({
        "accounts": [[a.key, a.earned, a.paid, a.agreed, a.disagreed]
                     + ([a.gold_correct, a.gold_total] if a.gold_total else [])
                     for a in ledger.accounts],
        "tasks": list(ledger.tasks),
    })


def ledger_root(ledger: Ledger) -> bytes:
    """sha256 over a domain tag and :func:`encode_ledger`."""
    return hashlib.sha256(LEDGER_TAG + encode_ledger(ledger)).digest()


def reputation_weights(final_tallies: Mapping[bytes, Tally], weights_from: Sequence[bytes],
                       authors: Iterable[bytes] = ()) -> dict[bytes, int]:
    """Aggregation weights for a task: reputation from only the tallies it names.

    ``final_tallies`` maps task id → final tally held here; ``weights_from`` is
    the task's list. Raises :class:`MissingTallyError` if a named tally is not
    final here yet (the validator must wait: proposing with partial weights
    would differ from its peers). The result holds every account with
    agreement counts in those tallies, and every one of ``authors``
    (:data:`NEUTRAL_REPUTATION` if unknown); pass the annotation authors so the
    mapping is complete, or pass ``default_weight=NEUTRAL_REPUTATION`` to the
    aggregation rule.
    """
    wanted = sorted(set(weights_from))
    missing = tuple(t for t in wanted if t not in final_tallies)
    if missing:
        raise MissingTallyError(missing)
    for t in wanted:
        if final_tallies[t].task != t:
            raise TallyError(f"tally filed under {t.hex()} is for {final_tallies[t].task.hex()}")
    ledger = build_ledger(final_tallies[t] for t in wanted)
    weights = {a.key: a.reputation for a in ledger.accounts
               if a.agreed or a.disagreed or a.gold_total}
    for author in authors:
        weights.setdefault(author, NEUTRAL_REPUTATION)
    return weights


__all__ = [
    "EMPTY_LEDGER",
    "LEDGER_TAG",
    "NEUTRAL_REPUTATION",
    "Account",
    "Ledger",
    "apply_tallies",
    "apply_tally",
    "build_ledger",
    "encode_ledger",
    "ledger_root",
    "reputation",
    "reputation_weights",
]
