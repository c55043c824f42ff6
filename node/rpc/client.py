"""The JSON-RPC client the CLI (and scripts, and tests) use to talk to a node.

    ClientError                  root: anything that stops a call
    ├── RPCClientError           the node answered with a JSON-RPC error (code, message, data)
    │   └── UnauthorizedClientError  HTTP 401: the token is missing or stale
    └── NodeUnreachableError     no answer: not running, wrong URL, timeout, bad HTTP
        └── NodeNotRunningError  ``<home>/rpc.url`` does not exist

:class:`RPCClient` is async (httpx on trio); pass ``transport=`` an
``httpx.MockTransport`` to test without sockets. :class:`SyncRPCClient` wraps
each call in ``trio.run`` for the CLI.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import trio

from node.errors import NodeError
from node.rpc.config import TOKEN_FILE, URL_FILE

KEEPALIVE_S = 2.0  # below hypercorn's keep_alive_timeout (5 s)
DEFAULT_TIMEOUT = 30.0


class ClientError(NodeError):
    """Root of every error an RPC client raises."""


class RPCClientError(ClientError):
    """The node answered the call with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} (code {self.code})"


class UnauthorizedClientError(RPCClientError):
    """The node refused the token (HTTP 401)."""


class NodeUnreachableError(ClientError):
    """The node could not be reached, or did not answer in JSON-RPC."""


class NodeNotRunningError(NodeUnreachableError):
    """The node home has no ``rpc.url``: the node is not running."""


@dataclass(frozen=True, slots=True)
class BatchReply:
    """One entry of a batch: a result, or the error that call got."""

    result: Any = None
    error: RPCClientError | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


def read_home(home: Path) -> tuple[str, str]:
    """The (url, token) a running node wrote to ``home``."""
    url_path, token_path = home / URL_FILE, home / TOKEN_FILE
    try:
        url = url_path.read_text().strip()
        token = token_path.read_text().strip()
    except FileNotFoundError as exc:
        raise NodeNotRunningError(
            f"node not running: {exc.filename} not found — start it with "
            f"`annot run --home {home}`"
        ) from None
    return url, token


def _error_of(payload: Any) -> RPCClientError:
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return RPCClientError(-32603, f"malformed JSON-RPC response: {str(payload)[:200]}")
    code = error.get("code")
    return RPCClientError(
        code if isinstance(code, int) else -32603, str(error.get("message", "")), error.get("data")
    )


class RPCClient:
    """An async JSON-RPC client for one node; use as an async context manager."""

    def __init__(
        self,
        url: str,
        token: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
            # drop idle connections well before the server does (hypercorn closes them
            # after 5 s, httpx kept them 5 s too): reusing one the server is closing
            # failed with "Server disconnected without sending a response"
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S),
        )
        self._ids = itertools.count(1)

    @classmethod
    def from_home(cls, home: Path, transport: httpx.AsyncBaseTransport | None = None) -> RPCClient:
        url, token = read_home(home)
        return cls(url, token, transport)

    async def __aenter__(self) -> RPCClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, /, **params: Any) -> Any:
        """Call ``method`` with named params; return its result or raise RPCClientError."""
        payload = await self._post(self._request(method, params))
        if isinstance(payload, dict) and "result" in payload:
            return payload["result"]
        raise _error_of(payload)

    async def batch(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[BatchReply]:
        """Send ``[(method, params), ...]`` as one batch; replies come back in order."""
        if not calls:
            return []
        requests = [self._request(method, params) for method, params in calls]
        payload = await self._post(requests)
        if not isinstance(payload, list):
            raise _error_of(payload)
        by_id = {r.get("id"): r for r in payload if isinstance(r, dict)}
        replies = []
        for request in requests:
            response = by_id.get(request["id"])
            if isinstance(response, dict) and "result" in response:
                replies.append(BatchReply(result=response["result"]))
            else:
                replies.append(BatchReply(error=_error_of(response)))
        return replies

    def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}

    async def _post(self, body: Any) -> Any:
        try:
            response = await self._http.post(f"{self.url}/rpc", json=body)
        except httpx.TransportError as exc:
            raise NodeUnreachableError(
                f"cannot reach node at {self.url}: {exc or type(exc).__name__} "
                "— is `annot run` running?"
            ) from None
        try:
            payload = response.json()
        except ValueError:
            raise NodeUnreachableError(
                f"node at {self.url} answered HTTP {response.status_code} without JSON"
            ) from None
        if response.status_code == 401:
            error = _error_of(payload)
            raise UnauthorizedClientError(error.code, error.message, error.data)
        return payload


class SyncRPCClient:
    """Blocking calls for the CLI: each one runs an :class:`RPCClient` under ``trio.run``."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self._token = token

    @classmethod
    def from_home(cls, home: Path) -> SyncRPCClient:
        return cls(*read_home(home))

    def open(self) -> RPCClient:
        """A fresh async client, for CLI commands that make many calls in one trio.run."""
        return RPCClient(self.url, self._token)

    def call(self, method: str, /, **params: Any) -> Any:
        async def run() -> Any:
            async with self.open() as client:
                return await client.call(method, **params)

        return trio.run(run)

    def batch(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[BatchReply]:
        async def run() -> list[BatchReply]:
            async with self.open() as client:
                return await client.batch(calls)

        return trio.run(run)
