"""What the admin RPC and the public gateway share as ASGI apps on hypercorn: a
listening socket bound by us (a clean ``OSError`` naming the listener, and the real
port when the config says 0) and the ASGI lifespan handshake."""

from __future__ import annotations

import socket

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable


def listen_socket(host: str, port: int, who: str) -> socket.socket:
    """Bind and listen on ``host:port``; on failure an ``OSError`` that names ``who``
    and where (no SO_REUSEPORT: a port another process holds is refused)."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OSError(exc.errno, f"{who} cannot listen on {where}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"{who} cannot listen on {where}: {exc.strerror}") from exc
    return sock


async def serve_lifespan(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Answer hypercorn's lifespan startup and shutdown events."""
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
