"""The RPC server: a small ASGI app served by hypercorn on trio.

Endpoints:

    POST /rpc      JSON-RPC 2.0 (one call or a batch). Requires
                   ``Authorization: Bearer <token>``; a missing or wrong token
                   gets HTTP 401 and runs nothing. Bodies over
                   ``rpc.max_request_bytes`` get HTTP 413.
    GET  /healthz  ``{"ok": true}``; no token (liveness probes).
    GET  /metrics  Prometheus text format; no token, like a scrape on loopback:
                   the counters carry no secrets, and the server only listens
                   beyond loopback when ``rpc.allow_remote`` says so.

Every request must name this server in its ``Host`` header: an IP literal,
``localhost``, or the configured ``rpc.host``. Any other name gets HTTP 403,
so a web page whose DNS name was rebound to 127.0.0.1 cannot read
``/metrics`` (or anything else) from a browser. A request that fails inside
the server gets HTTP 500 with a JSON-RPC internal error, never an empty body.

:func:`serve_rpc` writes a fresh token to ``<home>/rpc.token`` and the URL to
``<home>/rpc.url`` (both mode 0600) once it is listening, like bitcoind's
cookie, and removes them when it stops.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope

from node.rpc.api import InternalError, NodeAPI, RequestTooLargeError, UnauthorizedError
from node.rpc.asgi import listen_socket, serve_lifespan
from node.rpc.config import TOKEN_FILE, URL_FILE, RPCConfig, is_loopback_host
from node.rpc.jsonrpc import encode_json, error_response, handle_body

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose trio-stubs shadow trio's own annotations
    # for mypy (and lack trio.TaskStatus); its TaskStatus is the same protocol.
    from trio_typing import TaskStatus

log = logging.getLogger("annot.rpc")

JSON_TYPE = b"application/json"
METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
DRAIN_FACTOR = 16  # how much of an oversized body is read and dropped before the 413

OnCall = Callable[[str], None]


def host_allowed(header: bytes, names: frozenset[str]) -> bool:
    """Whether a ``Host`` header names this server: an IP literal, or one of ``names``."""
    try:
        text = header.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return False
    if text.startswith("["):  # [v6]:port
        host = text[1:text.find("]")] if "]" in text else ""
    else:
        host = text.rsplit(":", 1)[0] if text.count(":") == 1 else text
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True  # an address cannot be rebound to another one
    except ValueError:
        return host.rstrip(".") in names


def allowed_host_names(config_host: str) -> frozenset[str]:
    """``localhost`` and the configured host, lower case, without brackets."""
    return frozenset({"localhost", config_host.strip("[]").lower()})


class RPCApp:
    """The ASGI application. ``on_call(method)`` is told of every call (for metrics)."""

    def __init__(
        self,
        api: NodeAPI,
        token: str,
        max_request_bytes: int,
        metrics_text: Callable[[], bytes],
        on_call: OnCall | None = None,
        host_names: frozenset[str] = frozenset({"localhost"}),
    ) -> None:
        self._host_names = host_names
        self._api = api
        self._token = token.encode("ascii")
        self._max = max_request_bytes
        self._metrics_text = metrics_text
        self._on_call = on_call

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets: hypercorn closes the connection
        try:
            await self._http(scope, receive, send)
        except Exception as exc:
            log.exception("rpc: request %s %s failed", scope.get("method"), scope.get("path"))
            error = InternalError(f"internal error ({type(exc).__name__}): {exc}")
            try:
                await _send(send, 500, encode_json(error_response(error)))
            except Exception:
                pass  # the response had started: hypercorn closes the connection

    async def _http(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        path, method = scope["path"], scope["method"]
        headers = {k.lower(): v for k, v in scope["headers"]}
        host = headers.get(b"host")
        if host is not None and not host_allowed(host, self._host_names):
            shown = host.decode("ascii", "replace")[:100]
            await _send(send, 403, _problem(
                f"Host {shown!r} is not this server's name: use an IP address, localhost "
                "or the configured rpc.host (names are refused to stop DNS rebinding)"))
            return
        if path == "/rpc":
            if method != "POST":
                await _send(send, 405, _problem("use POST for /rpc"), headers=[(b"allow", b"POST")])
            else:
                await self._rpc(headers, receive, send)
        elif path in ("/healthz", "/metrics"):
            if method != "GET":
                allow = [(b"allow", b"GET")]
                await _send(send, 405, _problem(f"use GET for {path}"), headers=allow)
            elif path == "/healthz":
                await _send(send, 200, encode_json({"ok": True}))
            else:
                await _send(send, 200, self._metrics_text(), content_type=METRICS_TYPE)
        else:
            await _send(send, 404, _problem(f"no such path {path!r}; try POST /rpc"))

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._token)

    async def _rpc(
        self, headers: dict[bytes, bytes], receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if not self._authorized(headers):
            error = UnauthorizedError(
                "unauthorized: send 'Authorization: Bearer <token>' with the token from "
                "<home>/rpc.token (it changes every time the node starts)"
            )
            www = [(b"www-authenticate", b'Bearer realm="annot"')]
            await _send(send, 401, encode_json(error_response(error)), headers=www)
            return
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self._max:
            await self._too_large(send, int(declared), receive, more=True)
            return
        body = bytearray()
        while True:
            event = await receive()
            if event["type"] == "http.disconnect":
                return
            if event["type"] == "http.request":
                body += event.get("body", b"")
                if len(body) > self._max:
                    more = bool(event.get("more_body", False))
                    await self._too_large(send, len(body), receive, more=more)
                    return
                if not event.get("more_body", False):
                    break
        reply = await handle_body(self._api, bytes(body), self._on_call)
        if reply is None:
            await _send(send, 204, b"", content_type=None)
        else:
            await _send(send, 200, reply)

    async def _too_large(
        self, send: ASGISendCallable, size: int, receive: ASGIReceiveCallable, *, more: bool
    ) -> None:
        # Read (and drop) the rest of the body first: hypercorn closes a connection
        # whose request was not read to the end, and closing a socket with unread
        # bytes resets it, so the client could lose the 413 and see only a reset.
        # Past DRAIN_FACTOR times the limit the client gets the reset after all.
        left = DRAIN_FACTOR * self._max
        while more and left > 0:
            event = await receive()
            if event["type"] != "http.request":
                return  # the client went away: nobody to answer
            left -= len(event.get("body", b""))
            more = bool(event.get("more_body", False))
        error = RequestTooLargeError(size, self._max)
        await _send(send, 413, encode_json(error_response(error)))


def _problem(message: str) -> bytes:
    return encode_json({"error": message})


async def _send(
    send: ASGISendCallable,
    status: int,
    body: bytes,
    *,
    content_type: bytes | None = JSON_TYPE,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    out = list(headers or [])
    if content_type is not None:
        out.append((b"content-type", content_type))
    if status != 204:
        out.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": out, "trailers": False})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _url_host(host: str, bound: str) -> str:
    """The host a local client should dial: loopback for wildcard binds."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    if host.lower() == "localhost":
        return f"[{bound}]" if ":" in bound else bound
    return f"[{host.strip('[]')}]" if ":" in host else host


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _remove_if_ours(path: Path, text: str) -> None:
    """Remove ``path`` unless another process has since replaced it."""
    try:
        if path.read_text() == text:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot remove %s: %s", path, exc)


def _listen(config: RPCConfig) -> socket.socket:
    """Bind the listening socket ourselves: a clean OSError, and the real port for port 0."""
    return listen_socket(config.host, config.port, "RPC server")


def _hypercorn_config(sock: socket.socket) -> HyperConfig:
    hc = HyperConfig()
    hc.bind = [f"fd://{sock.detach()}"]  # hypercorn owns the socket from here on
    hc.errorlog = logging.getLogger("annot.rpc.http")
    hc.accesslog = None
    hc.include_server_header = False
    hc.graceful_timeout = 1.0
    return hc


async def serve_rpc(
    api: NodeAPI,
    config: RPCConfig,
    home: Path,
    metrics_text: Callable[[], bytes],
    *,
    on_call: OnCall | None = None,
    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve JSON-RPC until cancelled; ``task_status.started(url)`` once listening.

    Raises ``ValueError`` for a bad config (including a non-loopback host
    without ``allow_remote``) and ``OSError`` if the address cannot be bound.
    """
    config.validate()
    if not is_loopback_host(config.host):
        log.warning(
            "RPC listening on non-loopback host %s: the bearer token travels in clear; "
            "put TLS or a firewall in front of it", config.host,
        )
    token = secrets.token_urlsafe(32)
    app = RPCApp(api, token, config.max_request_bytes, metrics_text, on_call,
                 allowed_host_names(config.host))
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock = _listen(config)
    bound_host, port = sock.getsockname()[:2]
    url = f"http://{_url_host(config.host, bound_host)}:{port}"
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, app, _hypercorn_config(sock), mode="asgi"))
        token_path, url_path = home / TOKEN_FILE, home / URL_FILE
        try:
            _write_private(token_path, token)
            _write_private(url_path, url)
            log.info("RPC listening on %s (token in %s)", url, token_path)
            task_status.started(url)
            await trio.sleep_forever()
        finally:
            _remove_if_ours(url_path, url)
            _remove_if_ours(token_path, token)
