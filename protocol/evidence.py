"""Equivocation evidence: two signed vote records that convict one validator.

Evidence is a pair of vote records by the same validator, for the same round and
phase, that both carry an entry for one (task, item) with different values. Each
record verifies on its own, so the pair is checkable offline from the genesis and
can be stored and gossiped. The pair is kept in canonical order (``a < b``
bytewise), so one equivocation has one encoding::

    {"a": record bytes, "b": record bytes}
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.encoding import DEFAULT_LIMITS, Limits, decode_canonical, encode_canonical
from protocol.errors import (
    ConflictingVoteError,
    FieldTypeError,
    InvalidEvidenceError,
    MissingFieldError,
    NotValidatorError,
    ProtocolError,
    UnknownFieldError,
)
from protocol.genesis import Genesis
from protocol.keys import peer_id_from_public_key
from protocol.records import Record, Vote, decode_record


@dataclass(frozen=True, slots=True)
class EvidencePair:
    """Two vote records' exact bytes, ``a < b``."""

    a: bytes
    b: bytes


@dataclass(frozen=True, slots=True)
class Equivocation:
    """What a verified evidence pair proves."""

    validator: bytes
    task: bytes
    item: bytes
    round: int
    phase: int
    value_a: str | None
    value_b: str | None

    def error(self) -> ConflictingVoteError:
        """The same fact as an exception, for callers that refuse the second vote."""
        return ConflictingVoteError(self.value_a, self.value_b)


def make_evidence(a: bytes, b: bytes) -> EvidencePair:
    """The canonical pair for two vote records (order does not matter)."""
    return EvidencePair(a, b) if a < b else EvidencePair(b, a)


def encode_evidence(pair: EvidencePair) -> bytes:
    return encode_canonical({"a": pair.a, "b": pair.b})


def decode_evidence(data: bytes, limits: Limits = DEFAULT_LIMITS) -> EvidencePair:
    """Decode strictly (no verification); ``DecodeError`` subclasses name the fault."""
    m = decode_canonical(data, limits)
    if not isinstance(m, dict):
        raise FieldTypeError("evidence: expected a map")
    for k in m:
        if k not in ("a", "b"):
            raise UnknownFieldError("evidence", k)
    for k in ("a", "b"):
        if k not in m:
            raise MissingFieldError("evidence", k)
        if not isinstance(m[k], bytes):
            raise FieldTypeError(f"evidence.{k}: expected record bytes")
    if not m["a"] < m["b"]:
        raise FieldTypeError("evidence: records not in canonical order (a < b)")
    return EvidencePair(m["a"], m["b"])


def _vote(data: bytes, which: str, genesis: Genesis) -> tuple[Record, Vote]:
    try:
        rec = decode_record(data, genesis.network_id, genesis.params.limits())
    except ProtocolError as exc:
        raise InvalidEvidenceError(f"record {which}: {exc}") from None
    if not isinstance(rec.body, Vote):
        raise InvalidEvidenceError(f"record {which}: a {rec.kind} record, not a vote")
    return rec, rec.body


def verify_evidence(pair: EvidencePair, genesis: Genesis) -> Equivocation:
    """Check the pair convicts a validator; raise a ``VoteError`` subclass saying why not.

    ``InvalidEvidenceError`` when the pair proves nothing; ``NotValidatorError`` when
    the author is outside the validator set (its votes never counted, so no fault).
    """
    if pair.a == pair.b:
        raise InvalidEvidenceError("the two records are the same record")
    ra, va = _vote(pair.a, "a", genesis)
    rb, vb = _vote(pair.b, "b", genesis)
    if ra.author != rb.author:
        raise InvalidEvidenceError("the records have different authors")
    if ra.author not in genesis.weights():
        raise NotValidatorError(peer_id_from_public_key(ra.author))
    if va.round != vb.round or va.phase != vb.phase:
        raise InvalidEvidenceError(
            f"different rounds/phases: ({va.round}, {va.phase}) and ({vb.round}, {vb.phase})")
    values_b = {(e.task, e.item): e.value for e in vb.entries}
    for e in va.entries:
        key = (e.task, e.item)
        if key in values_b and values_b[key] != e.value:
            return Equivocation(ra.author, e.task, e.item, va.round, va.phase,
                                e.value, values_b[key])
    raise InvalidEvidenceError("no item carries different values in the two records")


__all__ = [
    "Equivocation", "EvidencePair", "decode_evidence", "encode_evidence", "make_evidence",
    "verify_evidence",
]
