"""The gateway's ASGI app: the web app, public JSON, content by CID, signed records in.

    GET  /, /requester, /operator, /js/*, /vendor/*, /app.css   the web app
    GET  /api/v1/network | health | tasks | tasks/{task}[?items=1]
         /api/v1/tasks/{task}/next?author=ID[&skip=CID,...]
         /api/v1/tasks/{task}/items?cursor=&limit= (paged progress per item)
         /api/v1/tasks/{task}/items/{item}[/certificate] | tasks/{task}/tally
         /api/v1/annotations?task=&author= | ledger | accounts/{peer id}
    GET  /ipfs/{cid}                  an item's bytes (safe type, nosniff)
    POST /api/v1/records              one signed record (raw bytes), admitted as gossip is

Nothing here signs with the node's key or changes the node. Every request is
checked, in order: ``Host`` (loopback names, IP literals and configured
hostnames only: DNS rebinding), rate (per client IP), ``Origin`` on POST, body
size. Every answer carries a strict Content-Security-Policy and ``nosniff``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope

from node.gateway.api import BadRequestError, Content, GatewayAPI, GatewayError, NotFoundError
from node.gateway.assets import Asset, load_assets
from node.gateway.config import GatewayConfig
from node.gateway.limits import RateLimiter, TTLCache
from node.gateway.media import NETPBM, netpbm_to_png
from node.rpc.asgi import serve_lifespan

log = logging.getLogger("annot.gateway")

JSON_TYPE = b"application/json"
CSP = (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       b"media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
       b"frame-ancestors 'none'")
CONTENT_CSP = b"default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
SECURITY = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"), (b"cross-origin-resource-policy", b"same-origin")]
LOOPBACK_NAMES = frozenset({"localhost"})
MAX_CONTENT_BYTES = 16 << 20
NO_SIGNING = ("the gateway never signs and changes nothing: build and sign the record "
              "yourself and POST its bytes to /api/v1/records")
Headers = list[tuple[bytes, bytes]]


class Reply:
    """One HTTP answer, built before it is sent."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, content_type: bytes | None = JSON_TYPE,
                 headers: Headers | None = None) -> None:
        self.status, self.body = status, body
        self.headers = list(headers or [])
        if content_type is not None:
            self.headers.append((b"content-type", content_type))


def json_reply(status: int, value: Any, headers: Headers | None = None) -> Reply:
    return Reply(status, json.dumps(value, separators=(",", ":")).encode(), headers=headers)


def problem(status: int, message: str, headers: Headers | None = None) -> Reply:
    return json_reply(status, {"error": message}, headers)


def host_allowed(host_header: str, extra: frozenset[str]) -> bool:
    """Loopback names, any IP literal (rebinding needs a DNS name) and configured names."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":")[0]
    if not host:
        return False
    if host in LOOPBACK_NAMES or host in extra:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _int_param(q: dict[str, list[str]], name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name, [str(default)])[-1]
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise BadRequestError(f"query {name!r}: expected an integer {lo}..{hi}, got {raw!r}")
    return int(raw)


def _str_param(q: dict[str, list[str]], name: str, required: bool = False) -> str | None:
    vals = q.get(name)
    if not vals or not vals[-1]:
        if required:
            raise BadRequestError(f"query {name!r} is required")
        return None
    return vals[-1]


class GatewayApp:
    """The ASGI application over a :class:`GatewayAPI`."""

    def __init__(self, api: GatewayAPI, config: GatewayConfig,
                 assets: dict[str, Asset] | None = None) -> None:
        self.api = api
        self.config = config
        self.assets = load_assets() if assets is None else assets
        self.limiter = RateLimiter(config.rate_per_s, config.burst, config.max_clients)
        self.cache = TTLCache(config.cache_ms / 1000)
        self.hostnames = frozenset(h.lower() for h in config.hostnames)
        self.served = 0

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable,
                       send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        try:
            reply = await self._handle(scope, headers, receive)
        except GatewayError as exc:
            reply = problem(exc.status, exc.message)
        except Exception:
            log.exception("gateway: %s %s failed", scope["method"], scope["path"])
            reply = problem(500, "internal error (logged by the node)")
        self.served += 1
        await _send(send, reply, scope["path"].startswith("/ipfs/"))

    async def _handle(self, scope: HTTPScope, headers: dict[bytes, bytes],
                      receive: ASGIReceiveCallable) -> Reply:
        host = headers.get(b"host", b"").decode("latin-1")
        if not host_allowed(host, self.hostnames):
            return problem(421, f"Host {host!r} is not served here (allowed: loopback, IP "
                                "addresses and gateway.hostnames); DNS rebinding guard")
        peer = scope.get("client")
        client = peer[0] if peer else "?"
        wait = self.limiter.allow(client)
        if wait > 0:
            return problem(429, f"too many requests from {client}; retry in {wait:.2f} s",
                           [(b"retry-after", str(max(1, round(wait))).encode())])
        path, method = scope["path"], scope["method"]
        if method == "POST":
            origin = headers.get(b"origin")
            if origin is not None and origin.decode("latin-1") not in (
                    f"http://{host}", f"https://{host}"):
                return problem(403, f"cross-origin POST from {origin.decode('latin-1')!r} "
                                    "refused")
            if path != "/api/v1/records":
                return problem(405, f"POST {path}: {NO_SIGNING}", [(b"allow", b"GET")])
            return await self._submit(headers, receive)
        if method != "GET":
            return problem(405, f"{method} is not served: the gateway is read-only except "
                                "POST /api/v1/records", [(b"allow", b"GET, POST")])
        if path.startswith("/api/"):
            return await self._api_get(path, parse_qs(scope["query_string"].decode("latin-1")))
        if path.startswith("/ipfs/"):
            query = parse_qs(scope["query_string"].decode("latin-1"))
            return await self._content(path[len("/ipfs/"):], query.get("preview") == ["png"])
        asset = self.assets.get(path)
        if asset is None:
            hint = "; the admin RPC is not served by the gateway" if path == "/rpc" else ""
            return problem(404, f"no such path {path!r}{hint}")
        if headers.get(b"if-none-match") == asset.etag:
            return Reply(304, b"", None, [(b"etag", asset.etag)])
        out: Headers = [(b"etag", asset.etag), (b"cache-control", b"no-cache"),
                   (b"content-security-policy", CSP), (b"vary", b"accept-encoding")]
        if b"gzip" in headers.get(b"accept-encoding", b""):
            out.append((b"content-encoding", b"gzip"))
            return Reply(200, asset.gzipped, asset.content_type, out)
        return Reply(200, asset.body, asset.content_type, out)

    async def _submit(self, headers: dict[bytes, bytes], receive: ASGIReceiveCallable) -> Reply:
        limit = self.config.max_body_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _drain(receive, limit)
            return problem(413, f"body is {int(declared)} bytes, over the limit of {limit}")
        body = bytearray()
        while True:
            event = await receive()
            if event["type"] != "http.request":
                return problem(400, "the client went away")
            body += event.get("body", b"")
            more = bool(event.get("more_body", False))
            if len(body) > limit:
                if more:
                    await _drain(receive, limit)
                return problem(413, f"body is over the limit of {limit} bytes")
            if not more:
                break
        if not body:
            raise BadRequestError("POST /api/v1/records takes one signed record's bytes")
        admitted = await self.api.submit(bytes(body))
        self.cache.clear()
        return json_reply(200 if not admitted.new else 201, admitted.to_json())

    async def _api_get(self, path: str, q: dict[str, list[str]]) -> Reply:
        parts = [p for p in path.split("/")[3:] if p]
        if path.split("/")[2:3] != ["v1"]:
            raise BadRequestError("unknown API version; use /api/v1/")
        cacheable = not (len(parts) == 3 and parts[2] == "next") and parts[:1] != ["accounts"]
        key = path + "?" + "&".join(f"{k}={v}" for k, v in sorted(q.items()))
        if cacheable and (hit := self.cache.get(key)) is not None:
            return Reply(200, hit)
        value = await self._route(parts, q)
        reply = json_reply(200, value)
        if cacheable:
            self.cache.put(key, reply.body)
        return reply

    async def _route(self, parts: list[str], q: dict[str, list[str]]) -> Any:
        api = self.api
        limit = _int_param(q, "limit", 100, 1, 500)
        cursor = _str_param(q, "cursor")
        match parts:
            case ["network"]:
                return (await api.network()).to_json()
            case ["health"]:
                return (await api.health()).to_json()
            case ["tasks"]:
                return (await api.tasks(cursor, limit)).to_json("tasks")
            case ["tasks", task]:
                return (await api.task(task, q.get("items", ["0"])[-1] == "1")).to_json()
            case ["tasks", task, "next"]:
                author = _str_param(q, "author", required=True)
                skip = tuple(s for s in (_str_param(q, "skip") or "").split(",") if s)[:64]
                assert author is not None
                return (await api.next_item(task, author, skip)).to_json()
            case ["tasks", task, "items"]:
                return (await api.items(task, cursor, limit)).to_json("items")
            case ["tasks", task, "tally"]:
                return await api.tally(task)
            case ["tasks", task, "items", item]:
                return await api.item(task, item)
            case ["tasks", task, "items", item, "certificate"]:
                return await api.certificate(task, item)
            case ["annotations"]:
                task_q, author_q = _str_param(q, "task"), _str_param(q, "author")
                if task_q is None and author_q is None:
                    raise BadRequestError("annotations: give task=, author= or both")
                return (await api.annotations(task_q, author_q, cursor, limit)
                        ).to_json("annotations")
            case ["ledger"]:
                return await api.ledger()
            case ["accounts", author]:
                return (await api.account(author)).to_json()
        raise NotFoundError(f"no such API path /api/v1/{'/'.join(parts)}")

    async def _content(self, cid: str, preview: bool) -> Reply:
        content = await self.api.content(cid, MAX_CONTENT_BYTES)
        if preview and content.content_type == NETPBM:
            try:
                content = Content(netpbm_to_png(content.data), "image/png")
            except ValueError as exc:
                raise BadRequestError(f"no PNG preview of {cid}: {exc}") from None
        headers: Headers = [(b"cache-control", b"public, max-age=31536000, immutable"),
                            (b"content-security-policy", CONTENT_CSP)]
        if not content.is_media:
            headers.append((b"content-disposition",
                            f'attachment; filename="{cid[:80]}"'.encode("ascii", "replace")))
        return Reply(200, content.data, content.content_type.encode(), headers)


async def _drain(receive: ASGIReceiveCallable, limit: int) -> None:
    """Read and drop up to 16x the limit, so the client sees the 413 instead of a reset."""
    left = 16 * limit
    while left > 0:
        event = await receive()
        if event["type"] != "http.request":
            return
        left -= len(event.get("body", b""))
        if not event.get("more_body", False):
            return


async def _send(send: ASGISendCallable, reply: Reply, content: bool) -> None:
    headers = list(reply.headers) + SECURITY
    if not any(k == b"content-security-policy" for k, _ in headers):
        headers.append((b"content-security-policy", CONTENT_CSP if content else CSP))
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers,
                "trailers": False})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})
