"""Finality certificates: an item's final value, proven by the signed precommits.

A certificate carries the exact bytes of the PRECOMMIT vote records that finalized
``value`` for ``(task, item)`` in ``round``; each record is a signed batch that holds
the entry ``(task, item, value)``. Anyone holding the genesis can check it offline:
every vote decodes and verifies for this network, is a precommit of that round by a
validator, names the entry, no validator counts twice, and the signers' weight passes
the genesis quorum. Wire form (canonical msgpack map)::

    {"item": CID, "round": int, "task": CID, "value": str, "votes": [record bytes, …]}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from protocol import cid as cidlib
from protocol.encoding import DEFAULT_LIMITS, Limits, decode_canonical, encode_canonical
from protocol.errors import (
    CertificateError,
    FieldTypeError,
    MissingFieldError,
    ProtocolError,
    UnknownFieldError,
)
from protocol.genesis import Genesis
from protocol.keys import peer_id_from_public_key
from protocol.records import MAX_LABEL_LEN, PRECOMMIT, Vote, VoteEntry, decode_record

_FIELDS = ("item", "round", "task", "value", "votes")


@dataclass(frozen=True, slots=True)
class Certificate:
    """Proof that more than the quorum of weight precommitted ``value`` in ``round``."""

    task: bytes
    item: bytes
    value: str
    round: int
    votes: tuple[bytes, ...]  # signed PRECOMMIT vote records, exact bytes, sorted


def build_certificate(task: bytes, item: bytes, value: str, round: int,
                      votes: Iterable[bytes]) -> Certificate:
    """A certificate over these vote records, in canonical (sorted, unique) order."""
    return Certificate(task, item, value, round, tuple(sorted(set(votes))))


def encode_certificate(cert: Certificate) -> bytes:
    return encode_canonical({
        "item": cert.item, "round": cert.round, "task": cert.task,
        "value": cert.value, "votes": list(cert.votes),
    })


def decode_certificate(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Certificate:
    """Decode strictly; ``DecodeError`` subclasses name what is wrong (no verification)."""
    m = decode_canonical(data, limits)
    if not isinstance(m, dict):
        raise FieldTypeError("certificate: expected a map")
    for k in m:
        if k not in _FIELDS:
            raise UnknownFieldError("certificate", k)
    for k in _FIELDS:
        if k not in m:
            raise MissingFieldError("certificate", k)
    task, item, value, rnd, votes = m["task"], m["item"], m["value"], m["round"], m["votes"]
    for name, c in (("task", task), ("item", item)):
        if not isinstance(c, bytes):
            raise FieldTypeError(f"certificate.{name}: expected CID bytes")
        try:
            cidlib.decode_cid(c)
        except ProtocolError as exc:
            raise FieldTypeError(f"certificate.{name}: not a CID: {exc}") from None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LABEL_LEN:
        raise FieldTypeError(f"certificate.value: a label of 1..{MAX_LABEL_LEN} characters")
    if type(rnd) is not int or not 0 <= rnd <= 2**31:
        raise FieldTypeError("certificate.round: expected an integer 0..2^31")
    if not isinstance(votes, list) or not all(isinstance(v, bytes) for v in votes):
        raise FieldTypeError("certificate.votes: expected a list of vote record bytes")
    if votes != sorted(set(votes)):
        raise FieldTypeError("certificate.votes: not sorted and unique")
    return Certificate(task, item, value, rnd, tuple(votes))


def verify_certificate(cert: Certificate, genesis: Genesis) -> None:
    """Raise ``CertificateError`` saying exactly what fails, or return if it proves finality."""
    weights = genesis.weights()
    limits = genesis.params.limits()
    if len(cert.votes) > len(weights):
        raise CertificateError(f"{len(cert.votes)} votes, but only {len(weights)} validators")
    want = VoteEntry(cert.task, cert.item, cert.value)
    counted: set[bytes] = set()
    weight = 0
    for i, data in enumerate(cert.votes):
        try:
            rec = decode_record(data, genesis.network_id, limits)
        except ProtocolError as exc:
            raise CertificateError(f"vote {i}: {exc}") from None
        body = rec.body
        if not isinstance(body, Vote):
            raise CertificateError(f"vote {i}: a {rec.kind} record, not a vote")
        who = peer_id_from_public_key(rec.author)
        if body.phase != PRECOMMIT:
            raise CertificateError(f"vote {i} by {who}: a prevote, not a precommit")
        if body.round != cert.round:
            raise CertificateError(
                f"vote {i} by {who}: round {body.round}, certificate round {cert.round}")
        w = weights.get(rec.author)
        if w is None:
            raise CertificateError(f"vote {i}: {who} is not a validator of this network")
        if rec.author in counted:
            raise CertificateError(f"vote {i}: {who} is counted twice")
        if want not in body.entries:
            raise CertificateError(f"vote {i} by {who}: no entry for this item with value "
                                   f"{cert.value!r}")
        counted.add(rec.author)
        weight += w
    if not genesis.quorum(weight):
        p = genesis.params
        raise CertificateError(
            f"signers' weight {weight} of {genesis.total_weight} is not more than "
            f"{p.quorum_num}/{p.quorum_den}")


__all__ = [
    "Certificate", "build_certificate", "decode_certificate", "encode_certificate",
    "verify_certificate",
]
