"""Tests for protocol.cid: known CIDs, round trips, and malformed input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.cid import (
    DAG_PB,
    RAW,
    SHA2_256,
    cid_bytes,
    cid_from_str,
    cid_str,
    cid_to_str,
    decode_cid,
    normalize_cid,
    verify_block,
)
from protocol.errors import BlockMismatchError, CidError, ProtocolError

HELLO = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
# `echo -n "hello world" | ipfs add --cid-version=0` style CIDv0 and its CIDv1 form
HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
HELLO_V0_AS_V1 = "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby"


def test_known_cids() -> None:
    assert cid_str(b"hello world") == HELLO
    assert cid_str(b"") == EMPTY
    assert cid_to_str(cid_bytes(b"hello world")) == HELLO


def test_binary_layout() -> None:
    cid = cid_bytes(b"x", DAG_PB)
    assert cid[:4] == bytes([1, DAG_PB, SHA2_256, 32])
    assert cid[4:] == hashlib.sha256(b"x").digest()
    assert decode_cid(cid) == (DAG_PB, SHA2_256, hashlib.sha256(b"x").digest())


def test_multibyte_codec_varint() -> None:
    cid = cid_bytes(b"x", 0x0129)  # dag-json: two-byte varint
    assert cid[1:3] == b"\xa9\x02"
    assert decode_cid(cid)[0] == 0x0129
    assert cid_from_str(cid_to_str(cid)) == cid


def test_cidv0_is_converted_to_v1() -> None:
    cid = cid_from_str(HELLO_V0)
    assert cid_to_str(cid) == HELLO_V0_AS_V1
    assert decode_cid(cid)[0] == DAG_PB


def test_normalize_binary_v0() -> None:
    v1 = cid_from_str(HELLO_V0)
    assert normalize_cid(v1[2:]) == v1
    assert normalize_cid(v1) == v1


def test_uppercase_base32_accepted() -> None:
    assert cid_from_str("B" + HELLO[1:].upper()) == cid_from_str(HELLO)


@given(st.binary(max_size=512), st.sampled_from([RAW, DAG_PB, 0x71, 0x0129, 0x300001]))
def test_round_trip(data: bytes, codec: int) -> None:
    cid = cid_bytes(data, codec)
    text = cid_str(data, codec)
    assert text == cid_to_str(cid)
    assert text.startswith("b") and text == text.lower()
    assert cid_from_str(text) == cid
    assert decode_cid(cid) == (codec, SHA2_256, hashlib.sha256(data).digest())
    verify_block(cid, data)


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_verify_block_mismatch(a: bytes, b: bytes) -> None:
    if a == b:
        return
    with pytest.raises(BlockMismatchError) as info:
        verify_block(cid_bytes(a), b)
    assert info.value.cid == cid_str(a)
    assert info.value.actual == cid_str(b)
    assert isinstance(info.value, CidError)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "b",
        "z" + HELLO[1:],  # base58btc multibase: not accepted
        "f01551220",  # base16
        HELLO[:-1],  # truncated digest
        HELLO + "a",  # trailing garbage
        HELLO[:-1] + "1",  # '1' is not base32
        HELLO[:-2] + "ë" + HELLO[-1],  # non-ASCII
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5f",  # non-zero pad bits
        "Qm" + "1" * 44,  # v0 that is not a sha2-256 multihash
        "Qm" + "0" * 44,  # '0' is not base58
        "b" + "a" * 600,  # too long
    ],
)
def test_malformed_strings(text: str) -> None:
    with pytest.raises(CidError):
        cid_from_str(text)


def test_non_str_rejected() -> None:
    with pytest.raises(CidError):
        cid_from_str(b"bafk")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\x02\x55\x12\x20" + b"\x00" * 32, "version 2"),
        (b"\x01\x55\x12\x20" + b"\x00" * 31, "short digest"),
        (b"\x01\x55\x12\x20" + b"\x00" * 33, "long digest"),
        (b"\x01\x55\x12\x10" + b"\x00" * 16, "sha2-256 must be 32"),
        (b"\x01\xd5\x00\x12\x20" + b"\x00" * 32, "non-minimal varint"),
        (b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "varint too long"),
        (b"\x01\x55", "truncated"),
        (b"\x12\x20" + b"\x00" * 32, "binary v0"),
    ],
)
def test_malformed_binary(raw: bytes, reason: str) -> None:
    with pytest.raises(CidError):
        decode_cid(raw)
    with pytest.raises(ProtocolError):
        cid_to_str(raw)


def test_verify_block_unsupported_hash() -> None:
    identity = b"\x01\x55\x00\x03abc"
    assert decode_cid(identity) == (RAW, 0, b"abc")
    with pytest.raises(CidError, match="sha2-256"):
        verify_block(identity, b"abc")
