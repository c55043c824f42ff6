"""The serving half of annot's bitswap, and the outbound stream to each peer.

:class:`BitswapServer` answers wantlists from a block store: want-block gets
the block, want-have gets HAVE, a miss gets DONT_HAVE when the peer set
``sendDontHave`` and is otherwise remembered (bounded) so the block goes out
as soon as we store it (:meth:`BitswapServer.announce`). Cancels drop what
was not yet sent.

It also owns the one outbound stream per peer: a sender task, started in
the service nursery when a peer first has something owed, drains that
peer's :class:`~node.content.bitswap_peer.PeerOutbox`, reads the blocks from the
store in a worker thread, and writes frames on a stream *we* opened — the
only place Kubo and Helia look for answers. A broken stream is reopened
once; after that the peer's pending entries are dropped and logged. The
sender closes its stream after ``idle_stream_timeout`` seconds of silence.
The outbound stream is read too, leniently: stock py-libp2p 0.8.1 peers
answer on the stream the request came in on, and messages are the same
either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import trio
from libp2p.abc import IHost, INetStream
from libp2p.exceptions import BaseLibp2pError
from libp2p.io.exceptions import IOException
from libp2p.peer.id import ID

from node.content.bitswap_msg import (
    MAX_BLOCK_SIZE,
    MAX_MESSAGE_SIZE,
    PROTOCOLS,
    BitswapMessage,
    Block,
    BlockPresence,
    Presence,
    WantEntry,
    WantType,
    encode_frame,
    encode_message,
)
from node.content.bitswap_peer import PeerOutbox, pack_messages
from node.errors import ConfigError
from protocol.cid import normalize_cid
from protocol.errors import ProtocolError

__all__ = ["BitswapConfig", "BitswapServer", "BlockSource", "close_stream"]

log = logging.getLogger("node.content.bitswap")
_READ_SIZE = 1 << 16
# What a dead or reset stream raises, across muxers and the swarm.
_STREAM_ERRORS: tuple[type[Exception], ...] = (BaseLibp2pError, IOException, EOFError, OSError)
_SENDER_ERRORS: tuple[type[Exception], ...] = (RuntimeError, trio.TooSlowError, *_STREAM_ERRORS)


class BlockSource(Protocol):
    """What bitswap needs of the block store (:class:`node.content.blockstore.BlockStore` fits)."""

    def get(self, cid: bytes) -> bytes | None: ...
    def has(self, cid: bytes) -> bool: ...
    def put_block(self, cid: bytes, data: bytes) -> object: ...


@dataclass(frozen=True, slots=True)
class BitswapConfig:
    """Bitswap tunables; the defaults suit both Kubo peers and tests."""

    max_message_size: int = MAX_MESSAGE_SIZE  # refuse frames over this (spec: 4 MiB)
    message_budget: int = 2 << 20  # pack blocks into messages of about this size
    blocks_per_read: int = 32  # blocks read from the store per worker-thread call
    wants_per_message: int = 1024  # wantlist entries per message
    max_peer_wants: int = 8192  # unanswered wants (and queued DONT_HAVEs) kept per peer
    max_total_wants: int = 65536  # unanswered wants kept over all peers
    ban_threshold: int = 20  # penalties before a peer is banned
    ban_seconds: float = 600.0  # how long a banned peer's streams are refused
    open_stream_timeout: float = 10.0  # seconds to open an outbound stream
    idle_stream_timeout: float = 60.0  # close our outbound stream after this much quiet
    fetch_timeout: float = 30.0  # default for get_blocks

    def validate(self) -> None:
        if not MAX_BLOCK_SIZE < self.max_message_size <= MAX_MESSAGE_SIZE:
            raise ConfigError(f"bitswap max_message_size must be in ({MAX_BLOCK_SIZE}, 4 MiB]")
        if not 0 < self.message_budget <= self.max_message_size - MAX_BLOCK_SIZE:
            raise ConfigError("bitswap message_budget must leave room for one more block")
        for name in ("blocks_per_read", "wants_per_message", "max_peer_wants",
                     "max_total_wants", "ban_threshold"):
            if getattr(self, name) < 1:
                raise ConfigError(f"bitswap {name} must be at least 1")
        for name in ("open_stream_timeout", "idle_stream_timeout", "fetch_timeout",
                     "ban_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"bitswap {name} must be positive")


class BitswapServer:
    """Answers peers' wantlists from ``store``; keeps one outbound stream per peer."""

    def __init__(self, host: IHost, store: BlockSource, config: BitswapConfig) -> None:
        config.validate()
        self._host = host
        self._store = store
        self._config = config
        self._nursery: trio.Nursery | None = None
        self._outboxes: dict[ID, PeerOutbox] = {}
        self._ledgers: dict[ID, dict[bytes, WantEntry]] = {}  # peer -> unanswered wants
        self._total_wants = 0  # sum of the ledgers' sizes

    def penalize(self, peer: ID, reason: str) -> None:
        """Charge ``peer`` for something invalid or abusive (the service bans)."""
        log.warning("bitswap: %s: %s", peer, reason)

    def forget_peer(self, peer: ID) -> None:
        """Drop everything kept for ``peer`` (it disconnected or was banned)."""
        ledger = self._ledgers.pop(peer, None)
        if ledger is not None:
            self._total_wants -= len(ledger)
        box = self._outboxes.pop(peer, None)
        if box is not None:
            box.close()

    def state_sizes(self) -> dict[str, int]:
        """How much per-peer state is held now (for tests and status)."""
        return {"peers": len(self._ledgers | self._outboxes), "wants": self._total_wants,
                "presences": sum(len(b.presences) for b in self._outboxes.values())}

    async def serve_wantlist(self, peer: ID, wants: Sequence[WantEntry], full: bool) -> None:
        """Act on a peer's wantlist update (or full wantlist)."""
        ledger = self._ledgers.setdefault(peer, {})
        if full:
            self._total_wants -= len(ledger)
            ledger.clear()
        asked: list[tuple[bytes, WantEntry]] = []
        for entry in wants:
            try:
                cid = normalize_cid(entry.cid)
            except ProtocolError as exc:
                log.warning("bitswap: %s wants a malformed CID: %s", peer, exc)
                continue
            if entry.cancel:
                if ledger.pop(cid, None) is not None:
                    self._total_wants -= 1
                box = self._outboxes.get(peer)
                if box is not None:
                    box.drop(cid, entry.cid)
            else:
                asked.append((cid, entry))
        if not asked:
            return
        cfg = self._config
        # a message asks for at most max_peer_wants blocks: the rest are refused before
        # any lookup (one file stat each: a 4 MiB frame of ~87k wants cost 87k stats)
        refused = max(0, len(asked) - cfg.max_peer_wants)
        del asked[cfg.max_peer_wants:]
        held = await trio.to_thread.run_sync(self._has_many, [c for c, _ in asked])
        if self._ledgers.get(peer) is not ledger:
            return  # the peer went away (or was banned) while we looked
        box = self.outbox(peer)
        for (cid, entry), present in zip(asked, held, strict=True):
            if present:
                if ledger.pop(cid, None) is not None:
                    self._total_wants -= 1
                _answer(box, cid, entry)
                continue
            if entry.send_dont_have and not box.add_presence(
                    BlockPresence(entry.cid, Presence.DONT_HAVE)):
                refused += 1
            if cid in ledger:
                ledger[cid] = entry
            elif len(ledger) < cfg.max_peer_wants and self._total_wants < cfg.max_total_wants:
                ledger[cid] = entry
                self._total_wants += 1
            else:
                refused += 1
        if refused:
            self.penalize(peer, f"{refused} wants over the limit of {cfg.max_peer_wants} "
                          "unanswered wants per peer")

    def announce(self, cid: bytes) -> None:
        """We now hold ``cid``: send it to every peer still waiting for it."""
        for peer, ledger in self._ledgers.items():
            entry = ledger.pop(cid, None)
            if entry is not None:
                self._total_wants -= 1
                if self._nursery is not None:
                    _answer(self.outbox(peer), cid, entry)

    def outbox(self, peer: ID) -> PeerOutbox:
        """The peer's outbox; starts its sender task on first use."""
        box = self._outboxes.get(peer)
        if box is None:
            if self._nursery is None:
                raise RuntimeError("bitswap is not serving")
            box = self._outboxes[peer] = PeerOutbox(peer, self._config.max_peer_wants)
            self._nursery.start_soon(self._run_sender, peer, box)
        return box

    async def _run_sender(self, peer: ID, box: PeerOutbox) -> None:
        cfg = self._config
        stream: INetStream | None = None
        try:
            while not box.closed:
                if box.empty():
                    if await box.wait(cfg.idle_stream_timeout) or not box.empty():
                        continue
                    return
                wants, presences, wanted = box.take(
                    cfg.wants_per_message, cfg.blocks_per_read, cfg.wants_per_message)
                blocks = await trio.to_thread.run_sync(self._read_blocks, wanted)
                for msg in pack_messages(wants, presences, blocks, cfg.message_budget):
                    stream = await self._send(peer, stream, msg)
        except _SENDER_ERRORS as exc:
            log.warning("bitswap: dropping what we owed %s, cannot reach it: %s", peer, exc)
            self.forget_peer(peer)
        except Exception as exc:  # supervised: one peer's sender never ends the node
            log.error("bitswap: sender for %s failed: %s: %s", peer, type(exc).__name__, exc,
                      exc_info=True)
            self.forget_peer(peer)
        finally:
            if self._outboxes.get(peer) is box:
                del self._outboxes[peer]
            if stream is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(1):
                    await close_stream(stream)

    async def _send(self, peer: ID, stream: INetStream | None, msg: BitswapMessage) -> INetStream:
        """Write one message, (re)opening our stream to ``peer``; returns the stream used."""
        for attempt in (0, 1):
            if stream is None:
                with trio.fail_after(self._config.open_stream_timeout):
                    stream = await self._host.new_stream(peer, list(PROTOCOLS))
                if self._nursery is not None:
                    # Spec peers never answer here; stock py-libp2p 0.8.1 does.
                    self._nursery.start_soon(self._read_stream, stream, False)
            protocol = str(stream.get_protocol() or PROTOCOLS[0])
            try:
                # a peer that stops reading (or vanished without a reset) must not hold
                # our sender, and everything owed to it, forever
                with trio.fail_after(self._config.open_stream_timeout):
                    await stream.write(encode_frame(encode_message(msg, protocol)))
                return stream
            except _SENDER_ERRORS:
                await close_stream(stream)
                stream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _read_stream(self, stream: INetStream, owned: bool) -> None:
        """Read bitswap messages from ``stream`` until it ends (see BitswapService)."""
        raise NotImplementedError

    def _put_many(self, blocks: list[tuple[bytes, bytes]]) -> dict[bytes, str]:
        failures: dict[bytes, str] = {}
        for cid, data in blocks:
            try:
                self._store.put_block(cid, data)
            except (ProtocolError, ValueError) as exc:
                failures[cid] = str(exc)
            except Exception as exc:  # the store's own errors: do not kill the stream
                failures[cid] = f"{type(exc).__name__}: {exc}"
        return failures

    def _has_many(self, cids: list[bytes]) -> list[bool]:
        return [self._store.has(c) for c in cids]

    def _get_many(self, cids: list[bytes]) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = {}
        for cid in cids:
            data = self._read_one(cid)
            if data is not None:
                found[cid] = data
        return found

    def _read_blocks(self, wanted: list[tuple[bytes, bytes]]) -> list[Block]:
        blocks = []
        for cid, wire in wanted:
            data = self._read_one(cid)
            if data is not None:
                blocks.append(Block(wire, data))
        return blocks

    def _read_one(self, cid: bytes) -> bytes | None:
        try:
            return self._store.get(cid)
        except Exception as exc:  # a corrupt block is quarantined by the store: a miss
            log.warning("bitswap: cannot read block: %s", exc)
            return None

    async def _read(self, stream: INetStream) -> bytes:
        """Up to 64 KiB from ``stream``; b"" at its end or if it broke."""
        try:
            return await stream.read(_READ_SIZE)
        except _STREAM_ERRORS:
            return b""


def _answer(box: PeerOutbox, cid: bytes, entry: WantEntry) -> None:
    if entry.want_type == WantType.HAVE:
        box.add_presence(BlockPresence(entry.cid, Presence.HAVE))
    else:
        box.add_block(cid, entry.cid)


async def close_stream(stream: INetStream) -> None:
    try:
        await stream.close()
    except Exception:  # closing a dead stream: nothing left to tell anyone
        pass
