"""Bitswap's peer guard: penalty counts, bans, and disconnect events.

:class:`PeerGuard` is synchronous and clock-free (callers pass trio's clock):
it counts each peer's offences and bans a peer for ``ban_seconds`` once it
reaches ``threshold``; a ban resets the count. Both maps are bounded, so
throwaway identities cannot grow them without limit.

:func:`watch_disconnects` registers a notifee on a py-libp2p host that calls
``on_disconnect(peer)`` from the service nursery (never inside the swarm's
own callback), so bitswap frees a peer's want-list and outbox when it goes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio
from libp2p.abc import IHost, INotifee
from libp2p.peer.id import ID

log = logging.getLogger("node.content.bitswap")
MAX_TRACKED = 10_000  # peers whose penalties or bans are remembered


class PeerGuard:
    """Offence counts and bans per peer, bounded."""

    def __init__(self, threshold: int, ban_seconds: float) -> None:
        self.threshold = threshold
        self.ban_seconds = ban_seconds
        self._count: dict[ID, int] = {}
        self._until: dict[ID, float] = {}

    def penalize(self, peer: ID, now: float) -> bool:
        """Count one offence; True when this one bans the peer."""
        if peer not in self._count and len(self._count) >= MAX_TRACKED:
            del self._count[next(iter(self._count))]
        n = self._count.get(peer, 0) + 1
        if n < self.threshold:
            self._count[peer] = n
            return False
        self._count.pop(peer, None)
        if peer not in self._until and len(self._until) >= MAX_TRACKED:
            del self._until[next(iter(self._until))]
        self._until[peer] = now + self.ban_seconds
        return True

    def penalties(self, peer: ID) -> int:
        return self._count.get(peer, 0)

    def is_banned(self, peer: ID, now: float) -> bool:
        until = self._until.get(peer)
        if until is None:
            return False
        if until <= now:
            del self._until[peer]
            return False
        return True

    def forget(self, peer: ID) -> None:
        """The peer left: forget its offences (a ban stays until it expires)."""
        self._count.pop(peer, None)


class _Notifee(INotifee):
    def __init__(self, send: trio.MemorySendChannel[ID]) -> None:
        self._send = send

    async def connected(self, network: Any, conn: Any) -> None:
        return None

    async def disconnected(self, network: Any, conn: Any) -> None:
        try:
            self._send.send_nowait(conn.muxed_conn.peer_id)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            log.warning("bitswap: disconnect event dropped")

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, maddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, maddr: Any) -> None:
        return None


def watch_disconnects(host: IHost, nursery: trio.Nursery,
                      on_disconnect: Callable[[ID], None]) -> None:
    """Call ``on_disconnect(peer)`` in ``nursery`` whenever a connection of ``peer`` closes."""
    send, recv = trio.open_memory_channel[ID](4096)
    host.get_network().register_notifee(_Notifee(send))

    async def serve() -> None:
        async for peer in recv:
            await trio.sleep(0)  # let the swarm finish removing the connection
            try:
                on_disconnect(peer)
            except Exception:
                log.exception("bitswap: freeing the state of %s failed", peer)

    nursery.start_soon(serve)
