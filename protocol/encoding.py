"""Canonical msgpack: one byte string per value.

Rules: map keys are strings, sorted; integers take their shortest form (msgpack
does that); strings are UTF-8 ``str``; byte strings are ``bin``; no floats, no
extension types. A decoder accepts bytes only if re-encoding the decoded value
gives the same bytes, so every value has exactly one accepted encoding.
Size limits are passed to msgpack's unpacker, which checks declared lengths
before it allocates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol.errors import (
    DecodeError,
    FieldTypeError,
    FloatError,
    NonCanonicalError,
    TooLargeError,
    TrailingBytesError,
)

Value = None | bool | int | str | bytes | list[Any] | dict[str, Any]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds a decoder enforces before allocating."""

    max_bytes: int = 262_144
    max_str: int = 65_536
    max_bin: int = 65_536
    max_array: int = 8_192
    max_map: int = 64
    # entries of one vote (the genesis's max_vote_entries); checked on the raw decode,
    # before the canonical walk: a vote of 3,000 entries cost 26 ms to refuse after it
    max_vote_entries: int = 8_192


DEFAULT_LIMITS = Limits()
# how msgpack words a declared length over a limit: "70000 exceeds max_bin_len(65536)"
_LIMIT_BREACH = re.compile(r"(?P<size>\d+) exceeds (?P<what>max_\w+)\((?P<limit>\d+)\)")


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise FieldTypeError("canonical maps have string keys only")
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_sorted(v) for v in value]
    if isinstance(value, float):
        raise FloatError("floats are not allowed in canonical data")
    return value


def encode_canonical(value: Any) -> bytes:
    """Encode ``value`` canonically (maps sorted by key, tuples as arrays)."""
    if isinstance(value, float):
        raise FloatError("floats are not allowed in canonical data")
    out: bytes = msgpack.packb(_sorted(value), use_bin_type=True, strict_types=False)
    return out


def _check(value: Any, depth: int) -> None:
    if depth > 32:
        raise DecodeError("nesting deeper than 32 levels")
    if isinstance(value, float):
        raise FloatError("float in signed data (only integers are allowed)")
    if isinstance(value, dict):
        prev: str | None = None
        for k, v in value.items():
            if not isinstance(k, str):
                raise DecodeError(f"map key {k!r} is not a string")
            if prev is not None and k <= prev:
                raise NonCanonicalError(f"map keys are not sorted: {k!r} after {prev!r}")
            prev = k
            _check(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check(v, depth + 1)
    elif isinstance(value, msgpack.ExtType):
        raise DecodeError("msgpack extension types are not allowed")


def decode_canonical(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode one canonical value from ``data``; raise a ``DecodeError`` saying why not."""
    value = unpack_limited(data, limits)
    check_canonical(value, data)
    return value


def unpack_limited(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The first half of :func:`decode_canonical`: msgpack's decode within ``limits``
    (C code), not yet checked for canonical form."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > limits.max_bytes:
        raise TooLargeError("encoded value (bytes)", len(data), limits.max_bytes)
    if len(data) == 0:
        raise DecodeError("empty input")
    try:
        value = msgpack.unpackb(
            bytes(data),
            raw=False,
            use_list=True,
            strict_map_key=False,
            max_str_len=limits.max_str,
            max_bin_len=limits.max_bin,
            max_array_len=limits.max_array,
            max_map_len=limits.max_map,
            max_ext_len=0,
        )
    except msgpack.ExtraData as exc:
        raise TrailingBytesError(f"{len(exc.extra)} trailing bytes after the value") from None
    except ValueError as exc:
        # msgpack reports limit breaches as ValueError ("... exceeds max_..._len")
        text = str(exc)
        if "max_ext_len" in text:
            raise DecodeError("msgpack extension types are not allowed") from None
        if m := _LIMIT_BREACH.fullmatch(text):
            raise TooLargeError(m["what"], int(m["size"]), int(m["limit"])) from None
        raise DecodeError(f"malformed msgpack: {text or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise DecodeError("string is not valid UTF-8") from None
    except Exception as exc:
        raise DecodeError(f"malformed msgpack: {type(exc).__name__}: {exc}") from None
    return value


def check_canonical(value: Any, data: bytes) -> None:
    """The second half of :func:`decode_canonical`: ``value`` (decoded from ``data``)
    holds only canonical types and ``data`` is its canonical encoding."""
    _check(value, 0)
    try:
        # keys are known sorted now, so a plain re-encode is the canonical one
        again = msgpack.packb(value, use_bin_type=True)
    except Exception as exc:
        raise DecodeError(f"value cannot be re-encoded: {exc}") from None
    if again != bytes(data):
        raise NonCanonicalError(
            "bytes are not the canonical encoding (unsorted or duplicate map keys, "
            "non-minimal integer or length forms, or str/bin confusion)"
        )
