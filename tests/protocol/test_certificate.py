"""Certificates: build, encode/decode, and offline verification from the genesis."""

from __future__ import annotations

import pytest

from protocol.certificate import (
    Certificate,
    build_certificate,
    decode_certificate,
    encode_certificate,
    verify_certificate,
)
from protocol.cid import cid_bytes
from protocol.encoding import encode_canonical
from protocol.errors import CertificateError, DecodeError
from protocol.genesis import Genesis, Validator
from protocol.keys import Signer, SigningKey
from protocol.records import PRECOMMIT, PREVOTE, Annotation, Vote, VoteEntry, sign_record

SIGNERS = [Signer(SigningKey(bytes([i]) * 32)) for i in range(1, 6)]
VALIDATORS = SIGNERS[:4]  # weights 1, 1, 1, 2: total 5, quorum needs 4
OUTSIDER = SIGNERS[4]
GENESIS = Genesis("cert", tuple(Validator(s.peer_id, w)
                                for s, w in zip(VALIDATORS, (1, 1, 1, 2), strict=True)))
NET = GENESIS.network_id
TASK, ITEM = cid_bytes(b"task"), cid_bytes(b"item")


def precommit(signer: Signer, value: str | None = "cat", rnd: int = 2, phase: int = PRECOMMIT,
              net: bytes = NET, extra: bool = True) -> bytes:
    entries = [VoteEntry(TASK, ITEM, value)]
    if extra:  # a batch: another item's entry rides along
        entries.insert(0, VoteEntry(TASK, cid_bytes(b"other"), "dog"))
    return sign_record(net, signer, 7, Vote(phase, rnd, tuple(entries))).data


def cert(votes: list[bytes], value: str = "cat", rnd: int = 2) -> Certificate:
    return build_certificate(TASK, ITEM, value, rnd, votes)


GOOD = [precommit(s) for s in VALIDATORS[1:]]  # weight 1 + 1 + 2 = 4 of 5


def test_good_certificate_verifies_and_round_trips() -> None:
    c = cert(GOOD)
    verify_certificate(c, GENESIS)
    data = encode_certificate(c)
    assert decode_certificate(data, GENESIS.params.limits()) == c
    assert build_certificate(TASK, ITEM, "cat", 2, reversed(GOOD + GOOD[:1])) == c


def test_insufficient_weight() -> None:
    with pytest.raises(CertificateError, match="weight 3 of 5 is not more than 2/3"):
        verify_certificate(cert([precommit(s) for s in VALIDATORS[:3]]), GENESIS)


def test_tampered_vote() -> None:
    bad = bytearray(GOOD[0])
    bad[-5] ^= 1  # inside the signature
    with pytest.raises(CertificateError, match="vote 0: signature does not verify"):
        verify_certificate(Certificate(TASK, ITEM, "cat", 2, (bytes(bad), *GOOD[1:])), GENESIS)


def test_value_not_in_votes() -> None:
    with pytest.raises(CertificateError, match="no entry for this item with value 'dog'"):
        verify_certificate(cert(GOOD, value="dog"), GENESIS)


def test_non_validator() -> None:
    with pytest.raises(CertificateError, match="is not a validator"):
        verify_certificate(cert([*GOOD[:2], precommit(OUTSIDER)]), GENESIS)


def test_wrong_round_and_prevote() -> None:
    with pytest.raises(CertificateError, match="round 3, certificate round 2"):
        verify_certificate(cert([*GOOD[:2], precommit(VALIDATORS[3], rnd=3)]), GENESIS)
    with pytest.raises(CertificateError, match="a prevote, not a precommit"):
        verify_certificate(cert([*GOOD[:2], precommit(VALIDATORS[3], phase=PREVOTE)]), GENESIS)


def test_wrong_network() -> None:
    other = bytes(32)
    with pytest.raises(CertificateError, match="vote 0: record is for network"):
        verify_certificate(cert([precommit(s, net=other) for s in VALIDATORS[1:]]), GENESIS)


def test_validator_counted_twice() -> None:
    twice = [*GOOD[:2], precommit(VALIDATORS[1], extra=False)]
    with pytest.raises(CertificateError, match="counted twice"):
        verify_certificate(cert(twice), GENESIS)


def test_not_a_vote_record() -> None:
    ann = sign_record(NET, VALIDATORS[0], 1, Annotation(TASK, ITEM, "cat")).data
    with pytest.raises(CertificateError, match="not a vote"):
        verify_certificate(cert([ann, *GOOD]), GENESIS)


def test_strict_decoder() -> None:
    good = {"item": ITEM, "round": 2, "task": TASK, "value": "cat", "votes": sorted(GOOD)}
    for change, err in (({"extra": 1}, "unknown field"), ({"round": -1}, "round"),
                        ({"task": b"nope"}, "not a CID"), ({"value": None}, "value"),
                        ({"votes": list(reversed(sorted(GOOD)))}, "sorted")):
        with pytest.raises(DecodeError, match=err):
            decode_certificate(encode_canonical({**good, **change}))
    missing = dict(good)
    del missing["votes"]
    with pytest.raises(DecodeError, match="missing field 'votes'"):
        decode_certificate(encode_canonical(missing))
