"""Bitswap 1.2.0 for annot: serve the block store to any IPFS peer, fetch from peers.

py-libp2p 0.8.1's own bitswap answers on the stream the requester opened;
the spec, Kubo and Helia read answers only from a stream the *responder*
opens. So annot speaks bitswap itself, the spec way:

- every inbound stream (``/ipfs/bitswap/1.2.0``, ``1.1.0``, ``1.0.0``) is
  only read: its messages may carry a peer's wantlist, blocks we asked for,
  or presences — all go through one handler;
- everything we send to a peer (our wants and cancels, blocks, HAVE /
  DONT_HAVE) goes out on one outbound stream per peer that we open, reuse
  while it lives, and reopen once if it breaks (:mod:`node.content.bitswap_peer`).

Fetched blocks are named by hashing their data (:func:`cid_from_prefix`), so
a corrupt block names a CID nobody wanted: it is dropped, logged, and its
sender penalized; a wanted block is checked again by ``put_block``.

    NodeError
    └── BitswapError
        ├── MessageError          a malformed or oversized frame from a peer
        ├── NoPeersError          nothing to fetch from
        └── BitswapTimeoutError   blocks still missing when the timeout ran out
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio
from libp2p.abc import IHost, INetStream
from libp2p.peer.id import ID

from node.content.bitswap_guard import PeerGuard, watch_disconnects
from node.content.bitswap_msg import (
    PROTOCOLS,
    BitswapError,
    BitswapMessage,
    FrameDecoder,
    MessageError,
    Presence,
    WantEntry,
    decode_message,
)
from node.content.bitswap_server import BitswapConfig, BitswapServer, BlockSource, close_stream
from protocol.cid import cid_to_str, normalize_cid
from protocol.errors import ProtocolError

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's and lack trio.TaskStatus.
    from trio_typing import TaskStatus

__all__ = [
    "BitswapConfig",
    "BitswapError",
    "BitswapService",
    "BitswapTimeoutError",
    "BlockSource",
    "MessageError",
    "NoPeersError",
]

log = logging.getLogger(__name__)
_RECENT_WANTS = 4096


class NoPeersError(BitswapError):
    def __init__(self, missing: Sequence[bytes]) -> None:
        super().__init__(f"no connected peers to fetch {len(missing)} block(s) from")
        self.missing = list(missing)


class BitswapTimeoutError(BitswapError):
    """Blocks still missing after ``timeout`` seconds; ``missing`` holds their CIDs."""

    def __init__(
        self, missing: Sequence[bytes], total: int, timeout: float, dont_have: int
    ) -> None:
        names = [cid_to_str(normalize_cid(c)) for c in missing]
        shown = ", ".join(names[:10]) + (
            f" (and {len(names) - 10} more)" if len(names) > 10 else ""
        )
        told = f"; {dont_have} reported DONT_HAVE by every peer asked" if dont_have else ""
        super().__init__(
            f"bitswap timed out after {timeout:g} s with {len(missing)} of {total} "
            f"block(s) missing: {shown}{told}"
        )
        self.missing = list(missing)
        self.timeout = timeout


@dataclass(eq=False, slots=True)
class _Fetch:
    remaining: set[bytes]
    results: dict[bytes, bytes] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)


@dataclass(eq=False, slots=True)
class _Want:
    fetches: list[_Fetch] = field(default_factory=list)
    peers: set[ID] = field(default_factory=set)
    dont_have: set[ID] = field(default_factory=set)


class BitswapService(BitswapServer):
    """Serves ``store`` over bitswap on ``host`` and fetches missing blocks into it."""

    def __init__(
        self,
        host: IHost,
        store: BlockSource,
        config: BitswapConfig | None = None,
        on_penalty: Callable[[ID, str], None] | None = None,
    ) -> None:
        super().__init__(host, store, config or BitswapConfig())
        self._wants: dict[bytes, _Want] = {}
        self._recent: dict[bytes, None] = {}  # insertion-ordered: wants we just dropped
        self._guard = PeerGuard(self._config.ban_threshold, self._config.ban_seconds)
        self._on_penalty = on_penalty

    async def serve(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Handle bitswap streams until cancelled; never returns."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for proto in PROTOCOLS:
                self._host.set_stream_handler(proto, self._handle_stream)
            watch_disconnects(self._host, nursery, self._on_disconnect)
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None
                for proto in PROTOCOLS:
                    self._host.remove_stream_handler(proto)
                nursery.cancel_scope.cancel()

    def penalties(self, peer: ID) -> int:
        """How many times ``peer`` sent us something invalid (since its last ban)."""
        return self._guard.penalties(peer)

    def is_banned(self, peer: ID) -> bool:
        return self._guard.is_banned(peer, trio.current_time())

    def penalize(self, peer: ID, reason: str) -> None:
        """Count one offence; past ``ban_threshold`` the peer is banned: its state is
        freed, its streams refused and it is disconnected. ``on_penalty`` is told of
        every offence (the p2p layer charges it to the peer's score too)."""
        log.warning("bitswap: penalizing %s: %s", peer, reason)
        if self._on_penalty is not None:
            try:
                self._on_penalty(peer, reason)
            except Exception:
                log.exception("bitswap: penalty handler failed")
        if self._guard.penalize(peer, trio.current_time()):
            log.warning("bitswap: banning %s for %.0fs", peer, self._config.ban_seconds)
            self.forget_peer(peer)
            if self._nursery is not None:
                self._nursery.start_soon(self._disconnect, peer)

    async def _disconnect(self, peer: ID) -> None:
        with trio.move_on_after(5):
            try:
                await self._host.disconnect(peer)
            except Exception as exc:
                log.debug("bitswap: disconnecting %s: %s", peer, exc)

    def _on_disconnect(self, peer: ID) -> None:
        if peer not in self._host.get_connected_peers():
            self.forget_peer(peer)
            self._guard.forget(peer)

    # --- inbound: every stream a peer opens to us -----------------------------

    async def _handle_stream(self, stream: INetStream) -> None:
        if self.is_banned(stream.muxed_conn.peer_id):
            with contextlib.suppress(Exception):
                await stream.reset()
            return
        try:
            await self._read_stream(stream, True)
        except Exception as exc:  # supervised: a peer's stream never ends the node
            log.error("bitswap: stream of %s failed: %s: %s", stream.muxed_conn.peer_id,
                      type(exc).__name__, exc, exc_info=True)
            with contextlib.suppress(Exception):
                await stream.reset()

    async def _read_stream(self, stream: INetStream, owned: bool) -> None:
        """Handle every message on ``stream``; close it at the end if ``owned``."""
        peer = stream.muxed_conn.peer_id
        decoder = FrameDecoder(self._config.max_message_size)
        try:
            while self._nursery is not None and not self.is_banned(peer):
                data = await self._read(stream)
                if not data:
                    if decoder.buffered:
                        raise MessageError(f"stream ended inside a frame ({decoder.buffered} B)")
                    break
                for frame in decoder.feed(data):
                    await self._on_message(peer, decode_message(
                        frame, self._config.max_peer_wants))
        except MessageError as exc:
            self.penalize(peer, str(exc))
            with contextlib.suppress(Exception):  # it may be dead already
                await stream.reset()
        finally:
            if owned:
                await close_stream(stream)

    async def _on_message(self, peer: ID, msg: BitswapMessage) -> None:
        for reason in msg.rejected:
            self.penalize(peer, reason)
        if msg.wants or msg.full:
            await self.serve_wantlist(peer, msg.wants, msg.full)
        if msg.blocks:
            await self._on_blocks(peer, msg)
        for p in msg.presences:
            want = self._wants.get(_norm_or_none(p.cid) or b"")
            if want is not None and p.presence == Presence.DONT_HAVE:
                want.dont_have.add(peer)

    async def _on_blocks(self, peer: ID, msg: BitswapMessage) -> None:
        accepted: list[tuple[bytes, bytes]] = []
        for block in msg.blocks:
            cid = _norm_or_none(block.cid)
            if cid is not None and cid in self._wants:
                accepted.append((cid, block.data))
            elif cid is None or cid not in self._recent:  # late copies are no offence
                self.penalize(peer, f"unwanted or corrupt block (hashes to {_name(block.cid)})")
        if not accepted:
            return
        failures = await trio.to_thread.run_sync(self._put_many, accepted)
        for cid, data in accepted:
            if cid in failures:
                self.penalize(peer, f"block {cid_to_str(cid)} rejected: {failures[cid]}")
                continue
            want = self._forget(cid)
            if want is None:
                continue  # a duplicate: another peer's copy got here first
            for fetch in want.fetches:
                fetch.results[cid] = data
                fetch.remaining.discard(cid)
                if not fetch.remaining:
                    fetch.done.set()
            self._send_cancels(cid, want.peers - {peer})
            self.announce(cid)

    # --- client: fetching -----------------------------------------------------

    async def get_blocks(
        self,
        cids: Iterable[bytes],
        peers: Sequence[ID] | None = None,
        timeout: float | None = None,
    ) -> dict[bytes, bytes]:
        """Fetch blocks (local ones first), keyed by the CIDs as given.

        Wants every missing block from ``peers`` (default: all connected peers)
        in batched wantlists; raises :class:`BitswapTimeoutError` naming the
        blocks still missing after ``timeout`` seconds.
        """
        given = {normalize_cid(c): c for c in cids}
        local = await trio.to_thread.run_sync(self._get_many, list(given))
        missing = [c for c in given if c not in local]
        found = dict(local)
        if missing:
            found.update(await self._fetch(missing, peers, timeout))
        return {given[c]: data for c, data in found.items()}

    async def _fetch(
        self, missing: list[bytes], peers: Sequence[ID] | None, timeout: float | None
    ) -> dict[bytes, bytes]:
        if self._nursery is None:
            raise BitswapError("bitswap service is not serving: start serve() first")
        targets = list(peers) if peers is not None else self._host.get_connected_peers()
        if not targets:
            raise NoPeersError(missing)
        fetch = _Fetch(set(missing))
        for cid in missing:
            want = self._wants.setdefault(cid, _Want())
            want.fetches.append(fetch)
            for peer in targets:
                if peer not in want.peers:
                    want.peers.add(peer)
                    self.outbox(peer).add_want(WantEntry(cid, send_dont_have=True))
        limit = self._config.fetch_timeout if timeout is None else timeout
        try:
            with trio.move_on_after(limit):
                await fetch.done.wait()
            left = [c for c in missing if c in fetch.remaining]
            refused = sum(1 for c in left if set(targets) <= self._wants[c].dont_have)
        finally:
            self._release(fetch)
        if left:
            raise BitswapTimeoutError(left, len(missing), limit, refused)
        return fetch.results

    def _release(self, fetch: _Fetch) -> None:
        """Stop wanting what only ``fetch`` still wanted; tell the peers."""
        for cid in fetch.remaining:
            want = self._wants.get(cid)
            if want is None:
                continue
            want.fetches = [f for f in want.fetches if f is not fetch]
            if not want.fetches:
                self._forget(cid)
                self._send_cancels(cid, want.peers)

    def _forget(self, cid: bytes) -> _Want | None:
        """Stop wanting ``cid``, remembering it a while so late copies go unpunished."""
        self._recent[cid] = None
        if len(self._recent) > _RECENT_WANTS:
            del self._recent[next(iter(self._recent))]
        return self._wants.pop(cid, None)

    def _send_cancels(self, cid: bytes, peers: Iterable[ID]) -> None:
        if self._nursery is None:
            return  # shutting down: the streams go with us
        for peer in peers:
            self.outbox(peer).add_want(WantEntry(cid, cancel=True))


def _norm_or_none(cid: bytes) -> bytes | None:
    try:
        return normalize_cid(cid)
    except ProtocolError:
        return None


def _name(cid: bytes) -> str:
    norm = _norm_or_none(cid)
    return cid_to_str(norm) if norm is not None else cid.hex()
