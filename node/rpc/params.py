"""Param checkers for the route table: each turns one JSON value into a typed
value or raises :class:`InvalidParamsError` naming the param and what was wrong.

Checks here are shape checks (types, ranges, encodings, generous size bounds);
the node applies the protocol's exact limits and reports them as
``RecordRejectedError``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from node.rpc.api import InvalidParamsError

Check = Callable[[str, Any], Any]
"""``check(name, value) -> typed value``; raises InvalidParamsError(name, why)."""

_CID_RE = re.compile(r"b[a-z2-7]{20,200}")
_PEER_ID_RE = re.compile(r"12D3KooW[1-9A-HJ-NP-Za-km-z]{44}")


@dataclass(frozen=True, slots=True)
class Param:
    """One named param of a route; positional params bind in this order."""

    name: str
    check: Check
    required: bool = True
    default: Any = None


def show(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def integer(lo: int, hi: int) -> Check:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise InvalidParamsError(name, f"expected integer {lo}..{hi}, got {show(value)}")
        return value

    return check


def string(max_len: int, min_len: int = 1) -> Check:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidParamsError(name, f"expected string, got {_type_name(value)}")
        if not min_len <= len(value) <= max_len:
            raise InvalidParamsError(
                name, f"expected string of {min_len}..{max_len} characters, got {len(value)}"
            )
        return value

    return check


def one_of(*choices: str) -> Check:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            wanted = " or ".join(repr(c) for c in choices)
            raise InvalidParamsError(name, f"expected {wanted}, got {show(value)}")
        return str(value)

    return check


def cid(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _CID_RE.fullmatch(value):
        hint = " (CIDv0 'Qm...' is not accepted)" if str(value).startswith("Qm") else ""
        raise InvalidParamsError(
            name, f"expected a CIDv1 in base32 ('bafk...'), got {show(value)}{hint}"
        )
    return value


def peer_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _PEER_ID_RE.fullmatch(value):
        raise InvalidParamsError(
            name, f"expected an Ed25519 peer id ('12D3KooW...', 52 chars), got {show(value)}"
        )
    return value


def base64_bytes(max_bytes: int) -> Check:
    def check(name: str, value: Any) -> bytes:
        if not isinstance(value, str):
            raise InvalidParamsError(name, f"expected base64 string, got {_type_name(value)}")
        if len(value) > (max_bytes + 2) // 3 * 4:
            raise InvalidParamsError(name, f"over the limit of {max_bytes} bytes")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidParamsError(name, f"invalid base64 ({exc})") from None

    return check


def list_of(item: Check, max_len: int, min_len: int = 0, unique: bool = False) -> Check:
    def check(name: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise InvalidParamsError(name, f"expected array, got {_type_name(value)}")
        if not min_len <= len(value) <= max_len:
            raise InvalidParamsError(
                name, f"expected array of {min_len}..{max_len} entries, got {len(value)}"
            )
        out = tuple(item(f"{name}[{i}]", v) for i, v in enumerate(value))
        if unique:  # one pass over a set: linear, whatever the list's length
            seen: set[Any] = set()
            for i, v in enumerate(out):
                if v in seen:
                    raise InvalidParamsError(name, f"duplicate entry {show(v)} at [{i}]")
                seen.add(v)
        return out

    return check


def bind(method: str, spec: tuple[Param, ...], params: Any) -> dict[str, Any]:
    """Match JSON-RPC ``params`` (object, array or absent) to ``spec`` and check each."""
    if params is None:
        given: dict[str, Any] = {}
    elif isinstance(params, list):
        if len(params) > len(spec):
            raise InvalidParamsError(
                "params", f"{method} takes at most {len(spec)} positional params, "
                f"got {len(params)}",
            )
        given = {p.name: v for p, v in zip(spec, params, strict=False)}
    elif isinstance(params, dict):
        given = params
        names = {p.name for p in spec}
        for key in given:
            if key not in names:
                takes = ", ".join(sorted(names)) or "no params"
                raise InvalidParamsError(str(key), f"unknown param; {method} takes: {takes}")
    else:
        raise InvalidParamsError("params", f"expected object or array, got {_type_name(params)}")
    out: dict[str, Any] = {}
    for p in spec:
        value = given.get(p.name)
        if value is None:
            if p.required:
                raise InvalidParamsError(p.name, "missing (required)")
            out[p.name] = p.default
        else:
            out[p.name] = p.check(p.name, value)
    return out
