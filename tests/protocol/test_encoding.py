"""Canonical msgpack: round trips, one accepted encoding per value, named rejections."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol.encoding import DEFAULT_LIMITS, Limits, decode_canonical, encode_canonical
from protocol.errors import (
    DecodeError,
    FloatError,
    NonCanonicalError,
    ProtocolError,
    TooLargeError,
    TrailingBytesError,
)

# ------------------------------------------------------------------ strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)


def _depth(v: Any) -> int:
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    return 0


values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6)
    | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=40,
)


# ------------------------------------------------------------------ round trips

@given(values)
def test_round_trip(v: Any) -> None:
    assume(_depth(v) <= 32)
    data = encode_canonical(v)
    assert decode_canonical(data) == v
    assert encode_canonical(decode_canonical(data)) == data


@given(st.dictionaries(st.text(max_size=8), scalars, max_size=10), st.randoms())
def test_key_order_does_not_change_the_bytes(d: dict[str, Any], rnd: Any) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    assert encode_canonical(dict(items)) == encode_canonical(d)


def test_tuples_encode_as_arrays() -> None:
    assert encode_canonical((1, b"x", "y")) == encode_canonical([1, b"x", "y"])
    assert decode_canonical(encode_canonical((1, 2))) == [1, 2]


def test_bool_none_and_int_are_distinct() -> None:
    assert encode_canonical(True) == b"\xc3"
    assert encode_canonical(False) == b"\xc2"
    assert encode_canonical(None) == b"\xc0"
    assert encode_canonical(1) == b"\x01"
    assert decode_canonical(b"\xc3") is True
    assert decode_canonical(b"\x00") == 0 and decode_canonical(b"\x00") is not False


def test_str_and_bytes_stay_apart() -> None:
    assert encode_canonical("ab") == b"\xa2ab"
    assert encode_canonical(b"ab") == b"\xc4\x02ab"
    assert decode_canonical(b"\xa2ab") == "ab"
    assert decode_canonical(b"\xc4\x02ab") == b"ab"


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
                               2**64 - 1, -1, -32, -33, -128, -129, -32768, -32769,
                               -(2**31), -(2**31) - 1, -(2**63)])
def test_integer_boundaries_round_trip(n: int) -> None:
    assert decode_canonical(encode_canonical(n)) == n


@pytest.mark.parametrize("size", [0, 31, 32, 255, 256, 65535, 65536])
def test_length_boundaries_round_trip(size: int) -> None:
    for v in ("x" * size, b"x" * size, [0] * min(size, 8192)):
        assert decode_canonical(encode_canonical(v)) == v


def test_memoryview_and_bytearray_are_accepted() -> None:
    data = encode_canonical({"a": [1, 2]})
    assert decode_canonical(bytearray(data)) == {"a": [1, 2]}
    assert decode_canonical(memoryview(data)) == {"a": [1, 2]}


# ------------------------------------------------------------------ non-canonical forms

@pytest.mark.parametrize("data", [
    b"\xcc\x05",                 # uint8 for 5
    b"\xcd\x00\x05",             # uint16 for 5
    b"\xce\x00\x00\x00\x05",     # uint32 for 5
    b"\xcf" + struct.pack(">Q", 5),
    b"\xd0\x05",                 # int8 for a positive fixint
    b"\xd0\xff",                 # int8 for -1 (negative fixint)
    b"\xd1\xff\x80",             # int16 for -128 (fits int8)
    b"\xcd\x00\xff",             # uint16 for 255 (fits uint8)
    b"\xd2\xff\xff\xff\xff",     # int32 for -1
    b"\xd3" + struct.pack(">q", 7),
], ids=lambda d: d.hex())
def test_non_minimal_integers_are_rejected(data: bytes) -> None:
    with pytest.raises(NonCanonicalError):
        decode_canonical(data)


@pytest.mark.parametrize("data", [
    b"\xd9\x03abc",              # str8 where fixstr fits
    b"\xda\x00\x03abc",          # str16
    b"\xdb\x00\x00\x00\x03abc",  # str32
    b"\xc5\x00\x02ab",           # bin16 where bin8 fits
    b"\xc6\x00\x00\x00\x02ab",   # bin32
    b"\xdc\x00\x01\x00",         # array16 with one element
    b"\xdd\x00\x00\x00\x01\x00",  # array32
    b"\xde\x00\x01\xa1a\x00",    # map16 with one entry
    b"\xdf\x00\x00\x00\x01\xa1a\x00",
], ids=lambda d: d.hex())
def test_non_minimal_lengths_are_rejected(data: bytes) -> None:
    with pytest.raises(NonCanonicalError):
        decode_canonical(data)


def test_unsorted_keys_are_rejected() -> None:
    assert decode_canonical(b"\x82\xa1a\x01\xa1b\x02") == {"a": 1, "b": 2}
    with pytest.raises(NonCanonicalError):
        decode_canonical(b"\x82\xa1b\x02\xa1a\x01")


def test_unsorted_keys_in_a_nested_map_are_rejected() -> None:
    inner_bad = b"\x82\xa1y\x00\xa1x\x00"
    with pytest.raises(NonCanonicalError):
        decode_canonical(b"\x81\xa1m" + inner_bad)
    with pytest.raises(NonCanonicalError):
        decode_canonical(b"\x91" + inner_bad)


def test_duplicate_keys_are_rejected() -> None:
    with pytest.raises(NonCanonicalError):
        decode_canonical(b"\x82\xa1a\x01\xa1a\x02")


def test_key_order_is_by_utf8_bytes() -> None:
    # "Z" < "a" < "é" in code points and in UTF-8 bytes alike
    data = encode_canonical({"é": 1, "a": 2, "Z": 3})
    assert data == b"\x83\xa1Z\x03\xa1a\x02\xa2\xc3\xa9\x01"
    assert decode_canonical(data) == {"Z": 3, "a": 2, "é": 1}


# ------------------------------------------------------------------ named rejections

@pytest.mark.parametrize("data", [b"\x00\x00", b"\x91\x01\xc0",
                                  encode_canonical({"a": 1}) + b"\x00"],
                         ids=["int", "array", "map"])
def test_trailing_bytes(data: bytes) -> None:
    with pytest.raises(TrailingBytesError):
        decode_canonical(data)


@pytest.mark.parametrize("data", [
    b"\xca\x3f\x80\x00\x00",               # float32 1.0
    b"\xcb" + struct.pack(">d", 1.5),       # float64
    b"\xcb" + struct.pack(">d", 2.0),       # an integral float is still a float
    b"\x81\xa1f" + b"\xcb" + struct.pack(">d", 0.0),
    b"\x92\x01" + b"\xca\x00\x00\x00\x00",
], ids=lambda d: d.hex())
def test_floats_are_rejected(data: bytes) -> None:
    with pytest.raises(FloatError):
        decode_canonical(data)


@pytest.mark.parametrize("v", [1.5, [1.0], {"a": {"b": [0.0]}}, (2.5,)], ids=repr)
def test_floats_cannot_be_encoded(v: Any) -> None:
    with pytest.raises(FloatError):
        encode_canonical(v)


def test_over_max_bytes_is_rejected_before_parsing() -> None:
    limits = Limits(max_bytes=100)
    with pytest.raises(TooLargeError) as info:
        decode_canonical(encode_canonical(b"x" * 120), limits)
    assert (info.value.size, info.value.limit) == (122, 100)
    assert decode_canonical(encode_canonical(b"x" * 98), limits) == b"x" * 98


@pytest.mark.parametrize(("value", "limits"), [
    (b"x" * 101, Limits(max_bin=100)),
    ("x" * 101, Limits(max_str=100)),
    (list(range(11)), Limits(max_array=10)),
    ({f"k{i:02}": i for i in range(11)}, Limits(max_map=10)),
    ([[0] * 11], Limits(max_array=10)),
], ids=["bin", "str", "array", "map", "nested-array"])
def test_over_a_length_limit_is_too_large(value: Any, limits: Limits) -> None:
    with pytest.raises(TooLargeError) as info:
        decode_canonical(encode_canonical(value), limits)
    assert info.value.size == 11 or info.value.size == 101
    assert info.value.limit in (10, 100)


def test_default_limits_bound_bin_and_map() -> None:
    with pytest.raises(TooLargeError):
        decode_canonical(encode_canonical(b"x" * (DEFAULT_LIMITS.max_bin + 1)))
    with pytest.raises(TooLargeError):
        too_many = {f"{i:03}": 0 for i in range(DEFAULT_LIMITS.max_map + 1)}
        decode_canonical(encode_canonical(too_many))


@pytest.mark.parametrize("header", [
    b"\xc6\xff\xff\xff\xff",   # bin32, 4 GiB
    b"\xdb\xff\xff\xff\xff",   # str32, 4 GiB
    b"\xdd\xff\xff\xff\xff",   # array32, 4 G entries
    b"\xdf\xff\xff\xff\xff",   # map32, 4 G entries
    b"\xc9\xff\xff\xff\xff\x01",  # ext32
    b"\x91\xc6\xff\xff\xff\xff",  # nested bin32
], ids=lambda h: h.hex())
def test_huge_declared_length_fails_fast_and_cheaply(header: bytes) -> None:
    """A header claiming 4 GiB with 10 bytes behind it never allocates the claim.

    Arrays and maps report ``TooLargeError`` (msgpack checks their count against the
    limit on the header). For bin/str msgpack checks the limit only once the bytes are
    present, and a claim beyond ``max_bytes`` can never be present (the input length is
    checked first), so those report truncated input: a ``DecodeError``, equally cheap.
    """
    data = header + b"\x00" * 10
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError) as info:
            decode_canonical(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # "cheaply" is checked by the traced peak (work that allocated or copied the claim
    # would show there), not by a wall-clock time, which flakes on a loaded machine
    assert peak < 256 * 1024, f"decoder allocated {peak} bytes for a {len(data)}-byte input"
    if header[0] in (0xDD, 0xDF):
        assert isinstance(info.value, TooLargeError)


@pytest.mark.parametrize("data", [
    b"\xd4\x01\x00",                 # fixext1
    b"\xd5\x01\x00\x00",             # fixext2
    b"\xc7\x00\x05",                 # ext8 with an empty payload
    b"\xc7\x01\x05\x00",
    b"\xd6\xff\x00\x00\x00\x00",     # the timestamp extension (-1)
    b"\x91\xd4\x01\x00",
], ids=lambda d: d.hex())
def test_extension_types_are_rejected(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_canonical(data)
    assert not isinstance(info.value, TooLargeError)
    assert "extension" in str(info.value)


@pytest.mark.parametrize("data", [
    b"\x81\x01\x00",          # int key
    b"\x81\xc4\x01a\x00",     # bin key
    b"\x81\xc0\x00",          # nil key
    b"\x81\xc3\x00",          # bool key
    b"\x81\x91\x00\x00",      # array key
    b"\x91\x81\x01\x00",      # nested map with int key
], ids=lambda d: d.hex())
def test_non_string_keys_are_rejected(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_canonical(data)


def test_nesting_limit_boundary() -> None:
    assert decode_canonical(b"\x91" * 32 + b"\x00") is not None
    with pytest.raises(DecodeError, match="nesting"):
        decode_canonical(b"\x91" * 33 + b"\x00")
    with pytest.raises(DecodeError, match="nesting"):
        decode_canonical(b"\x81\xa1a" * 40 + b"\x00")


@pytest.mark.parametrize("depth", [100, 1_000, 5_000, 100_000])
def test_very_deep_nesting_is_a_decode_error(depth: int) -> None:
    with pytest.raises(DecodeError) as info:
        decode_canonical(b"\x91" * depth + b"\x00", Limits(max_bytes=200_000))
    text = str(info.value)
    assert text and not text.rstrip().endswith(":"), f"message says nothing: {text!r}"


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\xa1\xff", b"\xa2a", b"\x92\x01", b"\x81\xa1a",
                                  b"\xc4\x05ab"],
                         ids=["empty", "reserved", "bad-utf8", "short-str", "short-array",
                              "short-map", "short-bin"])
def test_malformed_input_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_canonical(data)
    assert str(info.value)


@pytest.mark.parametrize("data", ["\x00", 5, None, [0]], ids=repr)
def test_non_bytes_input_is_a_decode_error(data: Any) -> None:
    with pytest.raises(DecodeError):
        decode_canonical(data)


# ------------------------------------------------------------------ fuzz

@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_raise_only_protocol_errors(data: bytes) -> None:
    try:
        value = decode_canonical(data)
    except ProtocolError:
        return
    # whatever is accepted is the one canonical encoding of its value
    assert encode_canonical(value) == data


@settings(max_examples=500)
@given(values, st.data())
def test_mutated_canonical_bytes_are_canonical_or_rejected(v: Any, data: st.DataObject) -> None:
    assume(_depth(v) <= 32)
    raw = bytearray(encode_canonical(v))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut]), bytes(raw) + b"\x00"):
        try:
            decoded = decode_canonical(candidate)
        except ProtocolError:
            continue
        assert encode_canonical(decoded) == candidate
