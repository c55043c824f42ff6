"""The libp2p host: identity, Noise-only security, Yamux, TCP, peer events, bans.

:func:`open_host` builds a py-libp2p host whose identity is the node key and
which offers and accepts Noise only (py-libp2p's default also offers
plaintext, TLS and SECIO — a plaintext-only dialer would get an unencrypted
connection), then yields a :class:`P2PHost`: a narrow, typed face over the
untyped library. Connection events reach listeners through a channel drained
by the host's own task, so listeners never run inside libp2p's dial path;
banned peers are disconnected there as soon as they (re)connect.

:func:`serve_bootstrap` keeps configured bootstrap peers (and, with
``mdns``, LAN peers) connected, redialing with exponential backoff.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.discovery.events.peerDiscovery import peerDiscovery
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from node.core.config import P2PConfig
from node.errors import NodeError
from node.p2p.peers import BAN_SECONDS, BanList
from protocol.keys import SigningKey

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's and lack trio.TaskStatus.
    from trio_typing import TaskStatus

log = logging.getLogger("annot.p2p")
EVENT_QUEUE = 1024


class DialError(NodeError):
    """A peer that could not be dialed (unreachable, refused, banned, bad address)."""


@dataclass(frozen=True, slots=True)
class ConnEvent:
    peer: str
    connected: bool


Listener = Callable[[ConnEvent], None]


class _Notifee(INotifee):
    """Turns swarm callbacks into events without blocking the swarm."""

    def __init__(self, send: trio.MemorySendChannel[ConnEvent]) -> None:
        self._send = send

    def _put(self, conn: Any, connected: bool) -> None:
        try:
            self._send.send_nowait(ConnEvent(str(conn.muxed_conn.peer_id), connected))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            log.warning("p2p: connection event dropped (queue full or closed)")

    async def connected(self, network: Any, conn: Any) -> None:
        self._put(conn, True)

    async def disconnected(self, network: Any, conn: Any) -> None:
        self._put(conn, False)

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, maddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, maddr: Any) -> None:
        return None


class P2PHost:
    """A running libp2p host, named by the node's peer id."""

    def __init__(self, raw: Any, bans: BanList,
                 on_ban: Callable[[str, str], None] | None = None) -> None:
        self.raw: Any = raw  # the py-libp2p BasicHost, for adapters in this package
        self.peer_id: str = str(raw.get_id())
        self.bans = bans
        self.on_ban = on_ban  # (peer, reason): counted in metrics by the stack
        self._listeners: list[Listener] = []
        self._kick_send, self._kick_recv = trio.open_memory_channel[str](EVENT_QUEUE)

    def listen_addrs(self) -> list[str]:
        """Bound addresses as full multiaddrs ending in ``/p2p/<peer id>``."""
        return [str(a) for a in self.raw.get_addrs()]

    def connected_peers(self) -> list[str]:
        return [str(p) for p in self.raw.get_connected_peers()]

    def peer_addrs(self, peer: str) -> list[str]:
        """The addresses the peerstore holds for ``peer`` (as multiaddr strings)."""
        try:
            return [str(a) for a in self.raw.get_peerstore().addrs(ID.from_base58(peer))]
        except Exception:
            return []

    def is_connected(self, peer: str) -> bool:
        return peer in self.connected_peers()

    def add_listener(self, fn: Listener) -> None:
        """Call ``fn`` (which must not block) on every connect and disconnect."""
        self._listeners.append(fn)

    async def connect(self, addr: str) -> str:
        """Dial a full multiaddr (``…/p2p/<peer id>``); return the peer id."""
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except Exception as exc:
            raise DialError(f"bad peer address {addr!r}: {exc}") from None
        peer = str(info.peer_id)
        if peer == self.peer_id:
            raise DialError("refusing to dial ourselves")
        if self.bans.is_banned(peer, trio.current_time()):
            raise DialError(f"peer {peer} is banned")
        try:
            await self.raw.connect(info)
        except Exception as exc:
            raise DialError(f"cannot connect to {addr}: {exc}") from None
        return peer

    async def disconnect(self, peer: str) -> None:
        try:
            await self.raw.disconnect(ID.from_base58(peer))
        except Exception as exc:
            log.debug("p2p: disconnect %s: %s", peer, exc)

    def ban(self, peer: str, seconds: float = BAN_SECONDS, reason: str = "invalid messages"
            ) -> None:
        """Refuse ``peer`` for ``seconds`` and disconnect it soon (never blocks)."""
        log.warning("p2p: banning %s for %.0fs: %s", peer, seconds, reason)
        self.bans.ban(peer, trio.current_time(), seconds, reason)
        if self.on_ban is not None:
            self.on_ban(peer, reason)
        self.kick_nowait(peer)

    def kick_nowait(self, peer: str) -> None:
        """Disconnect ``peer`` from the host's own task (never blocks)."""
        try:
            self._kick_send.send_nowait(peer)
        except trio.WouldBlock:
            log.warning("p2p: disconnect of %s deferred (queue full)", peer)

    def is_banned(self, peer: str) -> bool:
        return self.bans.is_banned(peer, trio.current_time())

    async def _serve_events(self, events: trio.MemoryReceiveChannel[ConnEvent]) -> None:
        async for ev in events:
            if ev.connected and self.is_banned(ev.peer):
                log.info("p2p: refusing banned peer %s", ev.peer)
                await self.disconnect(ev.peer)
                continue
            for fn in self._listeners:
                fn(ev)

    async def _serve_kicks(self) -> None:
        async for peer in self._kick_recv:
            log.info("p2p: disconnecting %s", peer)
            await self.disconnect(peer)


def build_raw_host(key: SigningKey, listen: list[multiaddr.Multiaddr], mdns: bool) -> Any:
    """A py-libp2p host with the node key, Noise only and Yamux only."""
    key_pair = create_new_key_pair(key.seed)
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    raw = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=listen,
        enable_mDNS=mdns,
    )
    _no_auto_connect(raw)
    return raw


def _no_auto_connect(raw: Any) -> None:
    """Keep py-libp2p's auto-connector from starting.

    It aims at 200 connections (its default watermarks, 100-300) and, below that,
    dials every peer in the peerstore every 10 s: every identity that ever connected,
    at whatever addresses it advertised. After issue 13's mixed attack each node
    dialed ~194 dead attacker identities each cycle, forever; and a peer can
    advertise any address, so the node would dial hosts of the attacker's choosing.
    annot keeps its own peers connected: the bootstrap loop (``serve_bootstrap``,
    with backoff) and mDNS finds. With ``start`` a no-op, the connector's
    ``_started`` stays False, so neither its periodic task nor the dial that
    py-libp2p schedules on each disconnect does anything."""
    async def off() -> None:
        return None
    raw.get_network().auto_connector.start = off


@asynccontextmanager
async def open_host(key: SigningKey, config: P2PConfig,
                    bans: BanList | None = None) -> AsyncIterator[P2PHost]:
    """Run a host listening on ``config.listen`` until the block exits."""
    listen = [multiaddr.Multiaddr(a) for a in config.listen]
    raw = build_raw_host(key, listen, config.mdns)
    host = P2PHost(raw, bans or BanList())
    send, recv = trio.open_memory_channel[ConnEvent](EVENT_QUEUE)
    raw.get_network().register_notifee(_Notifee(send))
    async with raw.run(listen_addrs=listen), trio.open_nursery() as nursery:
        nursery.start_soon(host._serve_events, recv)
        nursery.start_soon(host._serve_kicks)
        log.info("p2p: host %s listening on %s", host.peer_id, ", ".join(host.listen_addrs()))
        try:
            yield host
        finally:
            nursery.cancel_scope.cancel()


async def _keep_connected(host: P2PHost, addr: str, config: P2PConfig) -> None:
    peer = str(info_from_p2p_addr(multiaddr.Multiaddr(addr)).peer_id)
    backoff = config.reconnect_min_s
    while True:
        if host.is_connected(peer) or host.is_banned(peer):
            backoff = config.reconnect_min_s
            await trio.sleep(config.reconnect_min_s)
            continue
        try:
            with trio.fail_after(max(10.0, config.reconnect_max_s)):
                await host.connect(addr)
            log.info("p2p: connected to bootstrap peer %s", peer)
            backoff = config.reconnect_min_s
        except (DialError, trio.TooSlowError) as exc:
            log.info("p2p: bootstrap %s unreachable (%s); retry in %.1fs", peer, exc, backoff)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, config.reconnect_max_s)


async def _dial_discovered(host: P2PHost, found: trio.MemoryReceiveChannel[Any]) -> None:
    async for info in found:
        peer = str(info.peer_id)
        if peer == host.peer_id or host.is_connected(peer) or host.is_banned(peer):
            continue
        try:
            with trio.fail_after(10):
                await host.raw.connect(info)
            log.info("p2p: connected to mDNS peer %s", peer)
        except Exception as exc:
            log.info("p2p: mDNS peer %s unreachable: %s", peer, exc)


async def serve_bootstrap(host: P2PHost, config: P2PConfig, *,
                          task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
                          ) -> None:
    """Keep bootstrap peers connected (and dial mDNS finds); never returns."""
    token = trio.lowlevel.current_trio_token()
    send, recv = trio.open_memory_channel[Any](64)

    def on_found(info: Any) -> None:  # runs on zeroconf's thread
        def put() -> None:
            try:
                send.send_nowait(info)
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass
        try:
            token.run_sync_soon(put)
        except trio.RunFinishedError:
            pass

    if config.mdns:
        peerDiscovery.register_peer_discovered_handler(on_found)
    try:
        async with trio.open_nursery() as nursery:
            for addr in config.bootstrap:
                nursery.start_soon(_keep_connected, host, addr, config)
            nursery.start_soon(_dial_discovered, host, recv)
            task_status.started()
            await trio.sleep_forever()
    finally:
        if config.mdns:
            peerDiscovery.unregister_peer_discovered_handler(on_found)
