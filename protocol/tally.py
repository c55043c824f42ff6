"""A task's reward table, computed in integers once every item is final.

Per item the pot is ``task.reward_per_item``:

* the validators' part, ``pot * validator_share_bps // 10_000``, is split
  equally (floor) among the distinct validators of the item's certificate;
* the rest is split equally (floor) among the annotators whose label equals
  the final value;
* every remainder, the non-validator part of an :data:`EXPIRED` item and of an
  item nobody agreed with, goes back to the requester.

So the amounts always sum to ``reward_per_item * len(task.items)`` (the
tally's ``total``), which the requester pays. Agreement counts: on a non-
EXPIRED item an annotator *agreed* if its label equals the final value, else
*disagreed*; annotations on EXPIRED items count neither way.

Hidden gold (:mod:`protocol.gold`): when the task's gold reveal is checked,
``compute_tally`` takes the gold answers, scores every annotator on the gold
items (``gold``: sorted ``[account, correct, total]``) and, if the task sets
``min_gold_bps``, an annotator whose gold accuracy is below it is not paid: its
share of each item it won goes back to the requester (agreement counts stay).

Entries are sorted by account key; accounts whose amount and counts are all
zero are left out. The tally's canonical encoding is a msgpack map
``{"entries": [[account, amount, agreed, disagreed], …], "requester", "task",
"total"}``, plus ``"gold": [[account, correct, total], …]`` only when the tally
scored gold (so tallies without gold encode as before), and its root is
``sha256(TALLY_TAG + encoding)``; validators sign tally votes over that root,
so every validator must pass the same ``finals`` (in particular the same
certificate validator sets) to get the same root.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol.encoding import Limits, decode_canonical, encode_canonical
from protocol.errors import FieldTypeError, MissingFieldError, TallyError, UnknownFieldError
from protocol.gold import GoldScore, gated_out, gold_scores
from protocol.records import EXPIRED, Task

BPS = 10_000
TALLY_TAG = b"annot/v1/tally\x00"
TALLY_LIMITS = Limits(max_bytes=8 << 20, max_bin=64, max_array=1 << 17, max_map=8)
_FIELDS = ("entries", "requester", "task", "total")
_MAX_INT = 2**63 - 1

Final = tuple[str, tuple[bytes, ...]]  # (final value, certificate validators)


@dataclass(frozen=True, slots=True)
class TallyEntry:
    """One account's line in a tally."""

    account: bytes
    amount: int
    agreed: int
    disagreed: int


@dataclass(frozen=True, slots=True)
class Tally:
    """A task's reward table: ``total`` paid by ``requester``, split over ``entries``."""

    task: bytes
    requester: bytes
    total: int
    entries: tuple[TallyEntry, ...]
    gold: tuple[GoldScore, ...] = ()  # sorted by account; empty when no gold was scored


def compute_tally(task: Task, task_id: bytes, requester: bytes, finals: Mapping[bytes, Final],
                  annotations: Iterable[tuple[bytes, bytes, str]],
                  gold: Mapping[bytes, str] | None = None) -> Tally:
    """The tally of ``task`` given every item's final value and certificate validators,
    and the gold answers of its checked reveal (``None``: no gold scored)."""
    annotations = list(annotations)
    items = set(task.items)
    if set(finals) != items:
        missing = sorted(items - set(finals))
        extra = sorted(set(finals) - items)
        raise TallyError(f"finals must cover exactly the task's items: "
                         f"{len(missing)} missing, {len(extra)} not in the task")
    by_item: dict[bytes, dict[bytes, str]] = {}
    for item, author, label in annotations:
        if item not in items:
            raise TallyError(f"annotation for item {item.hex()}, which the task lacks")
        seen = by_item.setdefault(item, {})
        if author in seen:
            raise TallyError(f"author {author.hex()} annotated item {item.hex()} twice")
        seen[author] = label
    scores = gold_scores(gold, annotations) if gold else ()
    gated = gated_out(task, scores)
    amount: dict[bytes, int] = {requester: 0}
    agreed: dict[bytes, int] = {}
    disagreed: dict[bytes, int] = {}
    pot = task.reward_per_item
    validators_part = pot * task.validator_share_bps // BPS
    for item in sorted(items):
        value, validators = finals[item]
        if value != EXPIRED and value not in task.labels:
            raise TallyError(f"final value {value!r} of item {item.hex()} is not a task label")
        if not validators or len(set(validators)) != len(validators):
            raise TallyError(f"certificate of item {item.hex()} needs distinct validators")
        share = validators_part // len(validators)
        for v in validators:
            amount[v] = amount.get(v, 0) + share
        amount[requester] += validators_part - share * len(validators)
        rest = pot - validators_part
        labelled = by_item.get(item, {})
        winners = [a for a, label in labelled.items() if label == value]
        if value == EXPIRED or not winners:
            amount[requester] += rest
        else:
            each = rest // len(winners)
            for a in winners:
                payee = requester if a in gated else a  # below the gold bar: not paid
                amount[payee] = amount.get(payee, 0) + each
            amount[requester] += rest - each * len(winners)
        if value != EXPIRED:
            for a, label in labelled.items():
                counts = agreed if label == value else disagreed
                counts[a] = counts.get(a, 0) + 1
    accounts = sorted(set(amount) | set(agreed) | set(disagreed))
    entries = tuple(
        TallyEntry(a, amount.get(a, 0), agreed.get(a, 0), disagreed.get(a, 0))
        for a in accounts
        if amount.get(a, 0) or agreed.get(a, 0) or disagreed.get(a, 0)
    )
    return Tally(task_id, requester, pot * len(task.items), entries, scores)


def encode_tally(tally: Tally) -> bytes:
    """The canonical bytes of ``tally``."""
    m: dict[str, Any] = {
        "entries": [[e.account, e.amount, e.agreed, e.disagreed] for e in tally.entries],
        "requester": tally.requester, "task": tally.task, "total": tally.total,
    }
    if tally.gold:
        m["gold"] = [[g.account, g.correct, g.total] for g in tally.gold]
    return encode_canonical(m)


def tally_root(tally: Tally) -> bytes:
    """The 32-byte root validators sign tally votes over."""
    return hashlib.sha256(TALLY_TAG + encode_tally(tally)).digest()


def _int(where: str, v: object) -> int:
    if type(v) is not int or not 0 <= v <= _MAX_INT:
        raise FieldTypeError(f"{where}: expected an integer 0..2**63-1, got {v!r}")
    return v


def _key(where: str, v: object) -> bytes:
    if not isinstance(v, bytes) or not 1 <= len(v) <= 64:
        raise FieldTypeError(f"{where}: expected 1..64 bytes, got {v!r}")
    return v


def decode_tally(data: bytes) -> Tally:
    """Decode canonical tally bytes; raise a ``DecodeError`` for a malformed
    encoding and :class:`TallyError` for unsorted entries or a wrong sum."""
    m: Any = decode_canonical(data, TALLY_LIMITS)
    if not isinstance(m, dict):
        raise FieldTypeError(f"tally: expected a map, got {type(m).__name__}")
    for k in m:
        if k not in _FIELDS and k != "gold":
            raise UnknownFieldError("tally", k)
    for k in _FIELDS:
        if k not in m:
            raise MissingFieldError("tally", k)
    if not isinstance(m["entries"], list):
        raise FieldTypeError("tally.entries: expected a list")
    entries = []
    for e in m["entries"]:
        if not isinstance(e, list) or len(e) != 4:
            raise FieldTypeError("tally.entries[]: expected [account, amount, agreed, disagreed]")
        entry = TallyEntry(_key("tally.entries[].account", e[0]),
                           _int("tally.entries[].amount", e[1]),
                           _int("tally.entries[].agreed", e[2]),
                           _int("tally.entries[].disagreed", e[3]))
        if not (entry.amount or entry.agreed or entry.disagreed):
            raise TallyError(f"tally entry for {entry.account.hex()} is all zero")
        entries.append(entry)
    for a, b in itertools.pairwise(entries):
        if a.account >= b.account:
            raise TallyError("tally entries are not sorted by account, or repeat one")
    tally = Tally(_key("tally.task", m["task"]), _key("tally.requester", m["requester"]),
                  _int("tally.total", m["total"]), tuple(entries), _decode_gold(m.get("gold")))
    paid = sum(e.amount for e in entries)
    if paid != tally.total:
        raise TallyError(f"tally amounts sum to {paid}, not the total {tally.total}")
    return tally


def _decode_gold(v: object) -> tuple[GoldScore, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not v:
        raise FieldTypeError("tally.gold: expected a non-empty list (absent when no gold)")
    scores = []
    for g in v:
        if not isinstance(g, list) or len(g) != 3:
            raise FieldTypeError("tally.gold[]: expected [account, correct, total]")
        s = GoldScore(_key("tally.gold[].account", g[0]), _int("tally.gold[].correct", g[1]),
                      _int("tally.gold[].total", g[2]))
        if not 0 <= s.correct <= s.total or s.total == 0:
            raise TallyError(f"tally gold score of {s.account.hex()}: {s.correct} of "
                             f"{s.total} gold answers")
        scores.append(s)
    if any(a.account >= b.account for a, b in itertools.pairwise(scores)):
        raise TallyError("tally gold scores are not sorted by account, or repeat one")
    return tuple(scores)


__all__ = [
    "BPS", "TALLY_TAG", "Final", "Tally", "TallyEntry", "compute_tally", "decode_tally",
    "encode_tally", "tally_root",
]
