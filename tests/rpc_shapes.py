"""Check a JSON value against an RPC result type from :mod:`node.rpc.results`.

The harness checks every result a real node returns through ``Cluster.rpc``,
and ``tests/node/test_rpc_shapes.py`` checks the fake, so the server, the fake
and the typed client cannot drift apart: a missing field, an extra field or a
field of another type is reported with its path.
"""

from __future__ import annotations

import types
import typing
from typing import Any, NotRequired, Required, Union, get_args, get_origin, is_typeddict

from node.rpc.results import RESULTS


def problems(tp: Any, value: Any, path: str = "$") -> list[str]:
    """Every way ``value`` differs from the type ``tp`` (empty when it fits)."""
    origin = get_origin(tp)
    if origin in (NotRequired, Required):
        return problems(get_args(tp)[0], value, path)
    if origin in (Union, types.UnionType):
        options = [problems(a, value, path) for a in get_args(tp)]
        return [] if any(not p for p in options) else min(options, key=len)
    if tp is type(None):
        return [] if value is None else [f"{path}: expected null, got {value!r:.60}"]
    if tp is Any:
        return []
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: expected an object ({tp.__name__}), got {value!r:.60}"]
        hints = typing.get_type_hints(tp, include_extras=True)
        out = [f"{path}.{k}: missing" for k in sorted(tp.__required_keys__ - value.keys())]
        out += [f"{path}.{k}: not a field of {tp.__name__}"
                for k in sorted(value.keys() - hints.keys())]
        for k, v in value.items():
            if k in hints:
                out += problems(hints[k], v, f"{path}.{k}")
        return out
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {value!r:.60}"]
        (item,) = get_args(tp)
        return [p for i, v in enumerate(value) for p in problems(item, v, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {value!r:.60}"]
        key_t, val_t = get_args(tp)
        return [p for k, v in value.items()
                for p in problems(key_t, k, f"{path}<key>") + problems(val_t, v, f"{path}.{k}")]
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    return [] if ok else [f"{path}: expected {tp.__name__}, got {value!r:.60}"]


def check_result(method: str, value: Any) -> None:
    """Raise ``AssertionError`` naming every difference between ``value`` and the
    documented result of ``method`` (methods without a typed result pass)."""
    tp = RESULTS.get(method)
    if tp is None:
        return
    found = problems(tp, value)
    assert not found, f"{method} result does not match {tp.__name__}: " + "; ".join(found)
