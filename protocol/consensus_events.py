"""The vote state machine's vocabulary: events in, actions out, and the glue to records.

:mod:`protocol.consensus` consumes these events and emits these actions; the node
turns actions into signed vote records, timers and syncs, and turns received vote
records back into events. All are frozen values, so a test can compare whole lists.

An item is named by its key ``(task CID, item CID)``. A vote value is a label,
``EXPIRED``, or ``None`` (nil). ``ref`` is the id (CID bytes) of the signed vote
record that carried a vote; certificates and evidence are built from refs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from protocol.errors import VoteError
from protocol.records import PRECOMMIT, PREVOTE, Record, Vote, VoteEntry

Key = tuple[bytes, bytes]
PROPOSE = 0  # the timer step before prevoting; PREVOTE and PRECOMMIT name the other two


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ProposalChanged:
    """The node's own proposal for an item, derived from the annotations it holds.

    Sent whenever the derived value changes, and after every ``StartSync`` completes
    (even if unchanged: that tells the machine its view is fresh for this round)."""

    key: Key
    value: str | None


@dataclass(frozen=True, slots=True)
class VoteReceived:
    """One entry of a verified vote record, by ``validator`` (a public key)."""

    validator: bytes
    key: Key
    phase: int
    round: int
    value: str | None
    ref: bytes


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    """A timer set by ``SetTimer`` expired."""

    key: Key
    round: int
    step: int


Event = ProposalChanged | VoteReceived | TimeoutFired


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class CastVote:
    """Sign, persist, broadcast, then feed back as ``VoteReceived`` (that counts it)."""

    key: Key
    phase: int
    round: int
    value: str | None


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire ``TimeoutFired(key, round, step)`` after ``delay_ms``."""

    key: Key
    round: int
    step: int
    delay_ms: int


@dataclass(frozen=True, slots=True)
class StartSync:
    """Sync this item's annotations and votes with peers, then send ``ProposalChanged``."""

    key: Key


@dataclass(frozen=True, slots=True)
class Finalized:
    """More than the quorum of weight precommitted ``value`` in ``round``."""

    key: Key
    value: str
    round: int
    precommit_refs: tuple[tuple[bytes, bytes], ...]  # (validator, ref), sorted


@dataclass(frozen=True, slots=True)
class Evidence:
    """``validator`` cast two different votes for one item, round and phase."""

    key: Key
    validator: bytes
    round: int
    phase: int
    ref_a: bytes
    ref_b: bytes


Action = CastVote | SetTimer | StartSync | Finalized | Evidence


@dataclass(frozen=True, slots=True)
class ItemStatus:
    """What the machine knows about one item, for RPC and logs."""

    round: int
    step: int
    proposal: str | None
    locked_value: str | None
    locked_round: int  # -1 when not locked
    final: Finalized | None = None


# ---------------------------------------------------------------- record glue


def vote_events(record: Record) -> list[VoteReceived]:
    """The events a verified vote record carries, one per entry.

    A record naming one (task, item) twice is malformed: it cannot be told apart from
    an equivocation inside one signature, so it is refused whole.
    """
    body = record.body
    if not isinstance(body, Vote):
        raise VoteError(f"a {record.kind} record carries no votes")
    if body.phase not in (PREVOTE, PRECOMMIT):
        raise VoteError(f"unknown vote phase {body.phase}")
    seen: set[Key] = set()
    out = []
    for e in body.entries:
        key = (e.task, e.item)
        if key in seen:
            raise VoteError("a vote record names one item twice")
        seen.add(key)
        out.append(VoteReceived(record.author, key, body.phase, body.round, e.value, record.cid))
    return out


def vote_bodies(actions: Iterable[Action]) -> list[Vote]:
    """Batch the ``CastVote`` actions into one vote body per (phase, round), in order."""
    groups: dict[tuple[int, int], list[VoteEntry]] = {}
    for a in actions:
        if isinstance(a, CastVote):
            groups.setdefault((a.phase, a.round), []).append(
                VoteEntry(a.key[0], a.key[1], a.value))
    return [Vote(phase, rnd, tuple(entries)) for (phase, rnd), entries in groups.items()]


__all__ = [
    "PROPOSE", "Action", "CastVote", "Event", "Evidence", "Finalized", "ItemStatus", "Key",
    "ProposalChanged", "SetTimer", "StartSync", "TimeoutFired", "VoteReceived", "vote_bodies",
    "vote_events",
]
