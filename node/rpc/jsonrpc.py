"""The JSON-RPC 2.0 envelope: body bytes in, body bytes out.

:func:`handle_body` parses a request body (one request or a batch), runs each
call through the route table and encodes the responses. It never raises for
bad input: every failure becomes a JSON-RPC error object. Notifications (no
``id``) run but get no response entry; a body of only notifications yields
``None`` (the server answers 204). Calls in a batch run in order, except that a run
of consecutive ``record.submit`` (or of ``block.put``) calls runs at once, so the node
saves them in one durable transaction / one block write (group commit); the
responses keep the batch's order.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import trio

from node.rpc.api import (
    InternalError,
    InvalidRequestError,
    NodeAPI,
    ParseError,
    RPCError,
)
from node.rpc.routes import ROUTES, call_method

log = logging.getLogger("annot.rpc")

MAX_BATCH = 1000
# methods a batch may run concurrently: independent calls that gain from grouping
CONCURRENT = frozenset({"record.submit", "block.put"})  # each a group commit
MAX_DEPTH = 64  # JSON nesting; every method's params fit in a handful of levels
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")

_NO_ID = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def encode_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def error_response(error: RPCError, id_: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": error.to_json()}


def json_depth(body: bytes) -> int:
    """How deep ``[``/``{`` nest in ``body`` (outside strings); linear, no recursion."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return 0  # cannot be deeper than the limit: skip the scan
    depth = deepest = 0
    for m in _BRACKETS.finditer(_STRINGS.sub(b"", body)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def decode_body(body: bytes) -> Any:
    """Parse JSON, or raise :class:`ParseError` saying where it broke."""
    deepest = json_depth(body)
    if deepest > MAX_DEPTH:
        raise ParseError(f"parse error: JSON nested {deepest} levels deep; "
                         f"the limit is {MAX_DEPTH}")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ParseError(f"parse error: body is not UTF-8 ({exc.reason})") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ParseError(f"parse error: {exc}") from None
    except RecursionError:  # a nesting the scan missed (it never should)
        raise ParseError(f"parse error: JSON nested too deep (limit {MAX_DEPTH})") from None


async def _run_one(
    api: NodeAPI, request: Any, on_call: Callable[[str], None] | None
) -> dict[str, Any] | None:
    """Run one request object; return its response, or None for a notification."""
    if not isinstance(request, dict):
        return error_response(InvalidRequestError("invalid request: expected a JSON object"))
    id_ = request.get("id", _NO_ID)
    if id_ is not _NO_ID and (isinstance(id_, bool) or not isinstance(id_, str | int | None)):
        why = "invalid request: 'id' must be a string, an integer or null"
        return error_response(InvalidRequestError(why))
    reply_id = None if id_ is _NO_ID else id_
    method = request.get("method")
    if request.get("jsonrpc") != "2.0":
        error: RPCError | None = InvalidRequestError("invalid request: 'jsonrpc' must be \"2.0\"")
    elif not isinstance(method, str):
        error = InvalidRequestError("invalid request: 'method' must be a string")
    else:
        error = None
    result: Any = None
    if error is None:
        assert isinstance(method, str)
        if on_call is not None:
            on_call(method if method in ROUTES else "<unknown>")
        try:
            result = await call_method(api, method, request.get("params"))
        except RPCError as exc:
            error = exc
        except Exception as exc:
            log.exception("rpc method %s failed", method)
            error = InternalError(f"internal error ({type(exc).__name__}): {exc}")
    if id_ is _NO_ID and not isinstance(error, InvalidRequestError):
        return None
    if error is not None:
        return error_response(error, reply_id)
    return {"jsonrpc": "2.0", "id": reply_id, "result": result}


def _encode_response(response: dict[str, Any]) -> bytes:
    try:
        return encode_json(response)
    except (TypeError, ValueError) as exc:
        log.error("rpc result not JSON-encodable: %s", exc)
        error = InternalError(f"internal error: result is not JSON-encodable ({exc})")
        return encode_json(error_response(error, response.get("id")))


async def handle_body(
    api: NodeAPI, body: bytes, on_call: Callable[[str], None] | None = None
) -> bytes | None:
    """Answer one HTTP request body; ``None`` means "no content" (all notifications)."""
    try:
        payload = decode_body(body)
    except ParseError as exc:
        return encode_json(error_response(exc))
    if not isinstance(payload, list):
        response = await _run_one(api, payload, on_call)
        return None if response is None else _encode_response(response)
    if not payload:
        return encode_json(error_response(InvalidRequestError("invalid request: empty batch")))
    if len(payload) > MAX_BATCH:
        error = InvalidRequestError(
            f"invalid request: batch of {len(payload)} calls, over the limit of {MAX_BATCH}"
        )
        return encode_json(error_response(error))
    responses: list[dict[str, Any] | None] = [None] * len(payload)

    async def run(i: int) -> None:
        responses[i] = await _run_one(api, payload[i], on_call)

    i = 0
    while i < len(payload):
        j = i + 1
        method = _method_of(payload[i])
        if method in CONCURRENT:  # a run of one method: blocks never race a record
            while j < len(payload) and _method_of(payload[j]) == method:
                j += 1
        if j == i + 1:  # one call: no task of its own
            await run(i)
        else:
            async with trio.open_nursery() as nursery:
                for k in range(i, j):
                    nursery.start_soon(run, k)
        i = j
    parts = [_encode_response(r) for r in responses if r is not None]
    return b"[" + b",".join(parts) + b"]" if parts else None


def _method_of(request: object) -> object:
    return request.get("method") if isinstance(request, dict) else None
