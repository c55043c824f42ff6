"""Sync: ``/annot/sync/1.1.0`` (and 1.0.0), "send me every record I lack", by vector clock.

The client opens a stream and sends its clock (author → highest contiguous
seq) in hello frames; the server answers, for every author it holds, every
record with a seq above the client's contiguous seq (so records past a gap
come too, and both ends finish with the same set) except those a 1.1.0
client lists in ``have`` — records it already holds past a seq gap, which
1.0.0 sent again on every sync — in ``recs`` frames of at
most ``batch_records`` records and ~1 MiB, then ``done``. A hello for another
network gets an error frame, and the peer is disconnected and refused.

Each node runs the client against each peer on connect, every
``interval_s`` and on demand, so sync is symmetric. One session per peer at
a time; every frame read and write has ``request_timeout_s`` and a session
has an overall limit. Memory stays bounded whatever a peer sends: frames are
capped before reading, the server keeps client clock entries only for authors
it holds itself, and hello frames are counted (a clock past the cap ends the
session without a penalty: being big is no offence). A record that fails
verification is refused alone and charged to the peer once per frame; the
rest of its batch is kept. A joiner's sessions with several peers split the
records between them (a record one session is verifying is skipped by the
others), and each frame's signatures are checked in ``verify_threads`` worker
threads (one per core by default; ``node.core.verifier``, shared with gossip).
Frame formats: ``frames.py``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import MessageTooLarge
from libp2p.io.msgio import VarIntLengthMsgReadWriter
from libp2p.peer.id import ID

from node.core.config import SyncConfig
from node.core.verifier import Verifier
from node.errors import NodeError
from node.p2p import frames as fr
from node.p2p.gossip import OnRecords
from node.p2p.health import SyncHealth
from node.p2p.host import ConnEvent, P2PHost
from node.p2p.peers import P2PCounters, PeerScores
from node.p2p.sync_serve import ServeLedger, pages
from node.store.db import Store
from protocol.cid import cid_bytes
from protocol.errors import ProtocolError, reason_of
from protocol.genesis import Genesis
from protocol.records import Record

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's and lack trio.TaskStatus.
    from trio_typing import TaskStatus

log = logging.getLogger("annot.p2p.sync")

SESSION_FACTOR = 15  # a whole session may take this many request timeouts
# sessions with peers that are no validators, at once; sessions with validators have
# slots of their own, so strangers (a sync stream that takes 10 s to refuse, a slow
# reader) can never make validators' syncs wait (issue 13)
MAX_CLIENT_SESSIONS = 8
MAX_SERVER_SESSIONS = 16
# our own client runs one session per peer at a time; more from one peer is abuse
# (half-open streams from one peer would otherwise hold every server slot)
MAX_SERVER_SESSIONS_PER_PEER = 2
WRONG_NETWORK_BAN_S = 300.0
MAX_POOL_SOURCES = 256  # peers told what our pool holds (see Sync._have)


class Pool(Protocol):
    """Records this node verified and holds outside its store (admission's pending pool:
    records waiting for their task). Sync lists them as held, so no peer sends them
    again on every sync while they wait."""

    def holds(self, cid: bytes) -> bool: ...

    def pooled_seqs(self, limit: int) -> dict[bytes, list[int]]: ...


class SyncError(NodeError):
    """A sync session that failed: stream error, timeout, refusal or bad data."""


class Sync:
    """The sync protocol of one node: server handler, client and scheduler."""

    def __init__(self, host: P2PHost, genesis: Genesis, config: SyncConfig, store: Store,
                 on_records: OnRecords, counters: P2PCounters, scores: PeerScores,
                 health: SyncHealth | None = None, verifier: Verifier | None = None) -> None:
        self.host = host
        self.health = health if health is not None else SyncHealth()
        self.config = config
        self.store = store
        self.on_records = on_records
        self.counters = counters
        self.scores = scores
        self._net = genesis.network_id
        self._validators = frozenset(v.peer_id for v in genesis.validators)
        self._limits = genesis.params.limits()
        self._batch = min(config.batch_records, genesis.params.max_batch_records)
        self._batch_in = genesis.params.max_batch_records
        self._cap = fr.frame_cap(self._limits.max_bytes)
        self._budget = self._cap - 1024
        self._session_s = config.request_timeout_s * SESSION_FACTOR
        self._locks: dict[str, trio.Lock] = {}
        self._pending: set[str] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._client_slots = trio.CapacityLimiter(MAX_CLIENT_SESSIONS)
        self._server_slots = trio.CapacityLimiter(MAX_SERVER_SESSIONS)
        n = max(1, len(self._validators))
        self._validator_client_slots = trio.CapacityLimiter(n)
        self._validator_server_slots = trio.CapacityLimiter(n * MAX_SERVER_SESSIONS_PER_PEER)
        self._per_peer: dict[str, int] = {}  # server sessions in progress, by peer
        self._req_send, self._req_recv = trio.open_memory_channel[str](math.inf)
        self._inflight: set[bytes] = set()  # CIDs a session is verifying right now
        self.verifier = verifier or Verifier(self._net, self._limits, config.verify_threads)
        self.pool: Pool | None = None  # set by the node (P2PNode.set_pool)
        # peer that is no validator -> (store high-water, time) of its last whole session
        self._served = ServeLedger()
        # peers whose sync brought records that went to the pool (most recent last)
        self._pool_sources: dict[str, None] = {}
        # record CID -> held here (stored, or pooled once set_pool ran): verified already
        self.known: Callable[[bytes], bool] = store.has

    # ------------------------------------------------------------ frames on a stream
    async def _read(self, rw: Any) -> fr.Frame:
        try:
            with trio.fail_after(self.config.request_timeout_s):
                data = await rw.read_msg()
        except trio.TooSlowError:
            raise SyncError("timed out waiting for a frame") from None
        except (MessageTooLarge, ParseError) as exc:
            # an oversized length prefix or a broken varint: the peer's fault, not the link's
            raise fr.FrameError(f"bad frame length: {type(exc).__name__}: {exc}") from None
        except Exception as exc:
            raise SyncError(f"stream read failed: {type(exc).__name__}: {exc}") from None
        return fr.decode_frame(data, self._batch_in, self._limits.max_bytes)

    async def _write(self, rw: Any, data: bytes) -> None:
        try:
            with trio.fail_after(self.config.request_timeout_s):
                await rw.write_msg(data)
        except trio.TooSlowError:
            raise SyncError("timed out writing a frame") from None
        except Exception as exc:
            raise SyncError(f"stream write failed: {type(exc).__name__}: {exc}") from None

    # ------------------------------------------------------------ server
    async def handle_stream(self, stream: Any) -> None:
        peer = str(stream.muxed_conn.peer_id)
        rw = VarIntLengthMsgReadWriter(stream, max_msg_size=self._cap)
        try:
            if self.host.is_banned(peer):
                raise SyncError("peer is banned")
            if self._per_peer.get(peer, 0) >= MAX_SERVER_SESSIONS_PER_PEER:
                await self._write(rw, fr.encode_error("too many sync sessions from you"))
                raise fr.FrameError(f"over {MAX_SERVER_SESSIONS_PER_PEER} concurrent sessions")
            slots = (self._validator_server_slots if peer in self._validators
                     else self._server_slots)
            try:
                slots.acquire_on_behalf_of_nowait(stream)
            except trio.WouldBlock:
                await self._write(rw, fr.encode_error("busy, try later"))
                return
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
            try:
                with trio.fail_after(self._session_s):
                    await self._serve_peer(rw, peer)
            finally:
                slots.release_on_behalf_of(stream)
                if self._per_peer[peer] <= 1:
                    del self._per_peer[peer]
                else:
                    self._per_peer[peer] -= 1
        except fr.NetworkMismatchError as exc:
            log.warning("sync: disconnecting %s: %s", peer, exc)
            self.counters.count_rejected(reason_of(exc))
            self.host.ban(peer, WRONG_NETWORK_BAN_S, reason=f"sync: {exc}")
        except fr.FrameError as exc:
            self._penalize(peer, exc)
        except (SyncError, trio.TooSlowError) as exc:
            log.info("sync: serving %s failed: %s", peer, exc)
        finally:
            await _close(stream)

    async def _serve_peer(self, rw: Any, peer: str) -> None:
        validator = peer in self._validators
        now = trio.current_time()
        # what a peer that is no validator got from us in a whole session a moment ago
        # is not sent again (sync_serve.ServeLedger)
        floor = 0 if validator else self._served.floor(peer, now)
        top = self.store.high_water()
        mine = self.store.clock()
        theirs: dict[bytes, int] = {}
        have: dict[bytes, set[int]] = {}  # seqs they hold past a gap (1.1.0), ours only
        n_have = 0
        for _ in range(fr.MAX_HELLO_FRAMES):
            frame = await self._read(rw)
            if not isinstance(frame, fr.Hello):
                raise fr.FrameError(f"expected hello, got {type(frame).__name__}")
            if frame.network_id != self._net:
                exc = fr.NetworkMismatchError(frame.network_id, self._net)
                await self._write(rw, fr.encode_error(f"wrong network: {exc}"))
                raise exc
            theirs.update((a, s) for a, s in frame.clock if a in mine)
            for a, seqs in frame.have:
                if a in mine and n_have < fr.HAVE_PER_SESSION:
                    have.setdefault(a, set()).update(seqs)
                    n_have += len(seqs)
            if not frame.more:
                break
            await trio.lowlevel.checkpoint()
        else:
            # an honest node this big is not an offence: end the session, charge nothing
            await self._write(rw, fr.encode_error(
                f"clock over {fr.MAX_HELLO_FRAMES} hello frames; not served"))
            raise SyncError(f"{peer}'s clock is over {fr.MAX_HELLO_FRAMES} hello frames")
        batch: list[bytes] = []
        size = 0
        sent = 0
        for page in pages(self.store, mine, theirs, have, floor, self._batch):
            for data in page:
                if batch and (len(batch) >= self._batch or size + len(data) > self._budget):
                    await self._write(rw, fr.encode_recs(batch))
                    sent += len(batch)
                    # counted per frame: a session that times out counts what it got
                    self.counters.count_served(len(batch), validator)
                    batch, size = [], 0
                batch.append(data)
                size += len(data) + 5
            await trio.lowlevel.checkpoint()
        if batch:
            await self._write(rw, fr.encode_recs(batch))
            sent += len(batch)
            self.counters.count_served(len(batch), validator)
        await self._write(rw, fr.encode_done())
        if not validator:
            self._served.served(peer, top, now)
        log.debug("sync: sent %d records to %s", sent, peer)

    # ------------------------------------------------------------ client
    async def sync_with(self, peer: str) -> int:
        """Pull every record ``peer`` has that we lack; return how many came."""
        lock = self._locks.setdefault(peer, trio.Lock())
        slots = (self._validator_client_slots if peer in self._validators
                 else self._client_slots)
        async with lock, slots:
            try:
                with trio.fail_after(self._session_s):
                    n = await self._pull(peer)
            except trio.TooSlowError:
                self.health.error(peer, f"session took over {self._session_s:.0f}s")
                raise SyncError(f"sync with {peer} took over {self._session_s:.0f}s") from None
            except (SyncError, fr.FrameError) as exc:
                self.health.error(peer, str(exc))
                raise
        self.health.ok(peer, n)
        self.counters.syncs += 1
        self.counters.count_sync(n)
        return n

    async def _pull(self, peer: str) -> int:
        started = trio.current_time()
        try:
            with trio.fail_after(self.config.request_timeout_s):
                stream = await self.host.raw.new_stream(ID.from_base58(peer),
                                                        list(fr.SYNC_PROTOCOLS))
        except trio.TooSlowError:
            # seen after simultaneous dials: a connection that looks established but
            # never completes a stream. Drop it so the bootstrap loop dials afresh.
            self.host.kick_nowait(peer)
            raise SyncError(f"opening a sync stream to {peer} timed out; reconnecting") from None
        except Exception as exc:  # py-libp2p's StreamFailure and friends, by any name
            # py-libp2p tells its own negotiation timeout only in the message text, so
            # judge by the clock: a failure that took the whole negotiation timeout is a
            # connection that died without a reset; drop it too, or recovery waits for
            # TCP's backoff. A peer that merely lacks the protocol answers at once and
            # is not dropped.
            negotiate_s = float(getattr(self.host.raw, "negotiate_timeout", 10))
            if trio.current_time() - started >= 0.9 * negotiate_s:
                self.host.kick_nowait(peer)
            raise SyncError(f"cannot open a sync stream to {peer}: {exc}") from None
        rw = VarIntLengthMsgReadWriter(stream, max_msg_size=self._cap)
        total = 0
        v11 = str(stream.get_protocol()) == fr.SYNC_PROTOCOL_V11
        have = self._have(peer) if v11 else None
        try:
            for data in fr.iter_hello_frames(self._net, self.store.clock(), have):
                await self._write(rw, data)
            while True:
                frame = await self._read(rw)
                if isinstance(frame, fr.Done):
                    return total
                if isinstance(frame, fr.ErrorFrame):
                    raise SyncError(f"{peer} refused sync: {frame.reason}")
                if not isinstance(frame, fr.Recs):
                    raise fr.FrameError(f"expected recs or done, got {type(frame).__name__}")
                total += await self._take(frame.records, peer)
        except fr.FrameError as exc:
            self._penalize(peer, exc)
            raise SyncError(f"{peer} sent a bad frame: {exc}") from None
        finally:
            await _close(stream)

    def _pool_source(self, peer: str) -> None:
        self._pool_sources.pop(peer, None)
        self._pool_sources[peer] = None  # most recent last
        while len(self._pool_sources) > MAX_POOL_SOURCES:
            del self._pool_sources[next(iter(self._pool_sources))]

    def _have(self, peer: str) -> dict[bytes, list[int]]:
        """(author → seqs) we hold past our clock: in the store past a seq gap, and in
        the pool (records waiting for their task were re-sent on every sync: 12-32k
        records a minute from one peer serving a gap author, issue 13).

        Pooled records are listed only to a peer whose sync brought records that went
        to the pool: a peer serves from its store, so only one that stores records for
        a task we lack can send them again. Listed to every peer, a pool filled by a
        Sybil flood (1,000 authors) put ~40 KB into the hello of every sync session,
        syncs for consensus rounds included, until the pool aged out."""
        have = self.store.held_above_clock(fr.HAVE_PER_SESSION)
        if self.pool is not None and peer in self._pool_sources:
            for author, seqs in self.pool.pooled_seqs(fr.HAVE_PER_SESSION).items():
                have.setdefault(author, []).extend(seqs)
        return have

    async def _take(self, datas: tuple[bytes, ...], peer: str) -> int:
        """Verify and hand on one recs frame; return how many records went on.

        Skipped: records stored here (verified when stored) and records another
        session is verifying right now (sessions with several peers pull the same
        records at once; they split the work instead of doing it twice). Decoding and
        verification: :class:`node.core.verifier.Verifier` (signatures on every core,
        while the event loop keeps serving)."""
        fresh: list[bytes] = []
        claimed: list[bytes] = []
        for d in datas:
            cid = cid_bytes(d)
            if cid in self._inflight or self.known(cid):
                continue
            self._inflight.add(cid)
            claimed.append(cid)
            fresh.append(d)
        try:
            records: list[Record] = []
            bad: ProtocolError | None = None
            for r in await self.verifier.decode_all(fresh):
                if isinstance(r, Record):
                    records.append(r)
                elif bad is None:  # refuse this record only; the rest still counts
                    bad = r  # counted by _penalize
                else:
                    self.counters.count_rejected(type(r).__name__)
            if bad is not None:
                self._penalize(peer, bad)  # once per frame, however many were bad
            if records:
                await self.on_records(records, peer)
                if self.pool is not None and any(self.pool.holds(r.cid) for r in records):
                    self._pool_source(peer)
            return len(records)
        finally:
            self._inflight.difference_update(claimed)

    def _penalize(self, peer: str, exc: Exception) -> None:
        reason = reason_of(exc)
        self.counters.count_rejected(reason)
        log.warning("sync: invalid data from %s (%s): %s", peer, reason, exc)
        if self.scores.invalid(peer, trio.current_time(), f"sync: {reason}"):
            self.host.ban(peer, self.scores.ban_seconds, reason=f"sync: {reason}")

    # ------------------------------------------------------------ scheduling
    def request_sync_nowait(self, peer: str | None = None) -> None:
        """Schedule a sync with ``peer`` (or every connected peer); never blocks."""
        for p in [peer] if peer is not None else self.host.connected_peers():
            if p in self._running:
                self._again.add(p)
            elif p not in self._pending:
                self._pending.add(p)
                self._req_send.send_nowait(p)

    async def request_sync(self, peer: str | None = None) -> int:
        """Sync now with ``peer`` (errors raise) or every peer (errors are logged).

        For every peer, a peer with a session in progress is skipped, not waited for:
        that session is already pulling what it holds, and a peer we cannot reach (a
        partition leaves its connection open) holds its session until a timeout,
        which would hold every caller — consensus rounds and tally votes — as long."""
        if peer is not None:
            return await self.sync_with(peer)
        total = 0

        async def one(p: str) -> None:
            nonlocal total
            try:
                total += await self.sync_with(p)
            except (SyncError, fr.FrameError) as exc:
                log.info("sync: with %s failed: %s", p, exc)

        async with trio.open_nursery() as nursery:
            for p in self.host.connected_peers():
                lock = self._locks.get(p)
                if lock is None or not lock.locked():
                    nursery.start_soon(one, p)
        return total

    def on_connection(self, ev: ConnEvent) -> None:
        if ev.connected:
            self.request_sync_nowait(ev.peer)
        else:
            self.health.forget(ev.peer)
            lock = self._locks.get(ev.peer)
            if lock is not None and not lock.locked():
                del self._locks[ev.peer]

    async def _run_one(self, peer: str) -> None:
        self._pending.discard(peer)
        self._running.add(peer)
        try:
            n = await self.sync_with(peer)
            if n:
                log.info("sync: %d records from %s", n, peer)
        except (SyncError, fr.FrameError) as exc:
            log.info("sync: with %s failed: %s", peer, exc)
        finally:
            self._running.discard(peer)
        if peer in self._again:
            self._again.discard(peer)
            self.request_sync_nowait(peer)

    async def serve(self, *, task_status: TaskStatus[Sync] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        """Serve the protocol and run scheduled syncs; never returns."""
        for proto in fr.SYNC_PROTOCOLS:
            self.host.raw.set_stream_handler(proto, self.handle_stream)
        self.host.add_listener(self.on_connection)
        async with trio.open_nursery() as nursery:
            task_status.started(self)
            while True:
                with trio.move_on_after(self.config.interval_s):
                    async for peer in self._req_recv:
                        nursery.start_soon(self._run_one, peer)
                self.request_sync_nowait()


async def _close(stream: Any) -> None:
    with trio.move_on_after(1):
        try:
            await stream.close()
        except Exception:
            pass


serve_sync = Sync.serve
