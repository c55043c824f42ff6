"""Serving the gateway: its own listening socket, hypercorn on trio.

:func:`serve_gateway` binds ``[gateway] host:port`` itself (a clear ``OSError``
and the real port for port 0), writes the URL to ``<home>/gateway.url`` once
listening and removes it when it stops. Listening beyond loopback is allowed:
nothing admin is served, and the app guards Host, Origin, sizes and rates. A
port that cannot be bound turns the gateway off (logged), not the node.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from node.gateway.api import GatewayAPI
from node.gateway.app import GatewayApp
from node.gateway.config import URL_FILE, GatewayConfig
from node.rpc.asgi import listen_socket

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("annot.gateway")


def open_listener(config: GatewayConfig) -> socket.socket:
    """Bind and listen on the configured address; ``OSError`` saying where on failure."""
    return listen_socket(config.host, config.port, "gateway")


def url_of(config: GatewayConfig, sock: socket.socket) -> str:
    """The URL a browser on this machine opens (loopback for wildcard binds)."""
    bound, port = sock.getsockname()[:2]
    host = config.host.strip("[]")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    elif host.lower() == "localhost":
        host = bound
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _hypercorn_config(sock: socket.socket) -> HyperConfig:
    hc = HyperConfig()
    hc.bind = [f"fd://{sock.detach()}"]
    hc.errorlog = logging.getLogger("annot.gateway.http")
    hc.accesslog = None
    hc.include_server_header = False
    hc.graceful_timeout = 1.0
    hc.keep_alive_timeout = 5.0
    return hc


async def serve_gateway(api: GatewayAPI, config: GatewayConfig, home: Path | None = None, *,
                        task_status: TaskStatus[str | None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the gateway until cancelled; ``task_status.started(url)`` once listening.

    A bad config raises ``ValueError``. An address that cannot be bound is logged
    as an error and ``started(None)`` is reported: the node runs on without its
    public web app rather than stopping a validator over an optional service.
    """
    config.validate()
    app = GatewayApp(api, config)
    url_path = home / URL_FILE if home is not None else None
    if url_path is not None:
        url_path.unlink(missing_ok=True)  # left by a run that was killed
    try:
        sock = open_listener(config)
    except OSError as exc:
        log.error("%s; the gateway (web app) is OFF and the node runs on without it: free "
                  "the port, or set [gateway] port (0 = any free port) or enabled = false",
                  exc.strerror or exc)
        task_status.started(None)
        return
    url = url_of(config, sock)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, app, _hypercorn_config(sock), mode="asgi"))
        try:
            if url_path is not None:
                tmp = url_path.with_name(f".{URL_FILE}.{os.getpid()}.tmp")
                tmp.write_text(url)
                os.replace(tmp, url_path)
            log.info("gateway (web app) on %s", url)
            task_status.started(url)
            await trio.sleep_forever()
        finally:
            if url_path is not None and url_path.exists() and url_path.read_text() == url:
                url_path.unlink()
