"""Equivocation evidence: a real conflict verifies; everything else says why not."""

from __future__ import annotations

import pytest

from protocol.cid import cid_bytes
from protocol.encoding import encode_canonical
from protocol.errors import (
    ConflictingVoteError,
    DecodeError,
    InvalidEvidenceError,
    NotValidatorError,
    VoteError,
)
from protocol.evidence import decode_evidence, encode_evidence, make_evidence, verify_evidence
from protocol.genesis import Genesis, Validator
from protocol.keys import Signer, SigningKey
from protocol.records import PRECOMMIT, PREVOTE, Annotation, Vote, VoteEntry, sign_record

A, B, OUT = (Signer(SigningKey(bytes([i]) * 32)) for i in (1, 2, 9))
GENESIS = Genesis("ev", (Validator(A.peer_id, 1), Validator(B.peer_id, 1)))
NET = GENESIS.network_id
TASK, ITEM, OTHER = cid_bytes(b"task"), cid_bytes(b"item"), cid_bytes(b"other")


def vote(signer: Signer, value: str | None, seq: int, rnd: int = 0, phase: int = PREVOTE,
         item: bytes = ITEM) -> bytes:
    entries = (VoteEntry(TASK, OTHER, "same"), VoteEntry(TASK, item, value))
    return sign_record(NET, signer, seq, Vote(phase, rnd, entries)).data


def test_real_equivocation() -> None:
    a, b = vote(A, "cat", 1), vote(A, None, 2)
    pair = make_evidence(b, a)
    assert pair == make_evidence(a, b) and pair.a < pair.b
    eq = verify_evidence(pair, GENESIS)
    assert (eq.validator, eq.item, eq.round, eq.phase) == (A.public_key, ITEM, 0, PREVOTE)
    assert {eq.value_a, eq.value_b} == {"cat", None}
    assert isinstance(eq.error(), ConflictingVoteError)
    assert decode_evidence(encode_evidence(pair)) == pair


@pytest.mark.parametrize(("a", "b", "why"), [
    (vote(A, "cat", 1), vote(B, "dog", 1), "different authors"),
    (vote(A, "cat", 1), vote(A, "dog", 2, rnd=1), "different rounds/phases"),
    (vote(A, "cat", 1), vote(A, "dog", 2, phase=PRECOMMIT), "different rounds/phases"),
    (vote(A, "cat", 1), vote(A, "cat", 2), "no item carries different values"),
    (vote(A, "cat", 1), vote(A, "dog", 2, item=cid_bytes(b"x")), "no item carries"),
    (vote(A, "cat", 1), vote(A, "cat", 1), "the same record"),
    (vote(A, "cat", 1), sign_record(NET, A, 2, Annotation(TASK, ITEM, "dog")).data,
     "not a vote"),
    (vote(A, "cat", 1), b"\x80", "record a: record: missing field"),
])
def test_not_evidence(a: bytes, b: bytes, why: str) -> None:
    with pytest.raises(InvalidEvidenceError, match=why) as info:
        verify_evidence(make_evidence(a, b), GENESIS)
    assert isinstance(info.value, VoteError)


def test_outsider_is_not_a_validator() -> None:
    with pytest.raises(NotValidatorError):
        verify_evidence(make_evidence(vote(OUT, "cat", 1), vote(OUT, "dog", 2)), GENESIS)


def test_wrong_network() -> None:
    other = Genesis("other", GENESIS.validators)
    with pytest.raises(InvalidEvidenceError, match="network"):
        verify_evidence(make_evidence(vote(A, "cat", 1), vote(A, "dog", 2)), other)


def test_strict_decoder() -> None:
    a, b = sorted((vote(A, "cat", 1), vote(A, "dog", 2)))
    with pytest.raises(DecodeError, match="canonical order"):
        decode_evidence(encode_canonical({"a": b, "b": a}))
    with pytest.raises(DecodeError, match="unknown field"):
        decode_evidence(encode_canonical({"a": a, "b": b, "c": b""}))
    with pytest.raises(DecodeError, match="missing field"):
        decode_evidence(encode_canonical({"a": a}))
