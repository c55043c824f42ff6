"""Refuse to start on a port that is taken, and never share one.

py-libp2p opens its TCP listeners with ``SO_REUSEPORT`` (for hole punching, which
annot does not use), so a second node on the same p2p port came up silently and
the kernel split incoming connections between the two processes. Before the
daemon starts, :func:`check_ports` binds every configured listener (p2p, RPC,
gateway) the plain way — ``SO_REUSEADDR`` only, like trio's listeners — and
reports each one that is taken in one line; :func:`no_reuseport` makes
py-libp2p's listeners plain too, so even two nodes started at the same instant
cannot share a port (the kernel refuses the second bind).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

from node.core.config import Config
from node.errors import NodeError


class PortsInUseError(NodeError):
    """One or more listen ports are taken; ``lines`` has one message per listener."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


def _p2p_listeners(cfg: Config) -> Iterator[tuple[str, str, int, str]]:
    for addr in cfg.p2p.listen:
        parts = addr.strip("/").split("/")
        if len(parts) >= 4 and parts[0] in ("ip4", "ip6") and parts[2] == "tcp":
            yield (f"p2p listen {addr}", parts[1], int(parts[3]),
                   "stop the other process or change [p2p] listen in config.toml")


def listeners(cfg: Config) -> list[tuple[str, str, int, str]]:
    """(what, host, port, what to do) of every listener with a fixed port."""
    out = list(_p2p_listeners(cfg))
    out.append((f"rpc {cfg.rpc.host}:{cfg.rpc.port}", cfg.rpc.host, cfg.rpc.port,
                "stop the other process or change [rpc] port in config.toml"))
    if cfg.gateway.enabled:
        out.append((f"gateway {cfg.gateway.host}:{cfg.gateway.port}", cfg.gateway.host,
                    cfg.gateway.port, "stop the other process, change [gateway] port or set "
                                      "[gateway] enabled = false in config.toml"))
    return [x for x in out if x[2] != 0]  # port 0: the OS picks a free one


def check_ports(cfg: Config) -> None:
    """Bind each listener's address once (all at the same time, so two listeners of
    this config on one port clash too); raise ``PortsInUseError`` naming every one
    that is taken."""
    problems: list[str] = []
    held: list[socket.socket] = []
    try:
        for what, host, port, todo in listeners(cfg):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            held.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    problems.append(f"{what}: port {port} is already in use; {todo}")
                else:
                    problems.append(f"{what}: cannot listen ({exc.strerror}); {todo}")
    finally:
        for sock in held:
            sock.close()
    if problems:
        raise PortsInUseError(problems)


def no_reuseport() -> None:
    """Make py-libp2p's TCP listeners plain (``SO_REUSEADDR`` only, no
    ``SO_REUSEPORT``): a second process can then never bind the same port."""
    from libp2p.transport.tcp import tcp

    def set_flags(sock: object) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # type: ignore[attr-defined]
        except OSError:
            pass

    tcp._set_reuse_flags = set_flags
