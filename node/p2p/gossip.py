"""Gossip: batched signed records over gossipsub on the network's topic.

Inbound, a topic validator decodes and verifies every record of a message
before py-libp2p delivers or forwards it; a message with one bad record is
rejected whole, logged with its reason, counted, and charged to the peer that
forwarded it (not the author), which is banned past ``invalid_threshold``.
Accepted batches go through a bounded queue to ``on_records`` so a slow
consumer never stalls validation (py-libp2p times validators out after 5 s).

Outbound, :meth:`Gossip.publish_nowait` appends to a bounded buffer that
:meth:`Gossip.serve_publisher` flushes as one message per batch. A record
that does not fit is dropped from gossip and counted: it is already in the
store, and sync delivers it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.tools.anyio_service import background_trio_service

from node.core.config import GossipConfig
from node.core.verifier import Verifier
from node.p2p.frames import GOSSIP_PAYLOAD_CAP, RPC_CAP, FrameError, decode_batch, encode_batch
from node.p2p.host import P2PHost
from node.p2p.peers import P2PCounters, PeerScores
from node.p2p.safe_pubsub import SafePubsub
from node.p2p.spr_cache import install as install_spr_cache
from protocol.cid import cid_bytes
from protocol.errors import ProtocolError, reason_of
from protocol.genesis import Genesis
from protocol.records import Record

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's and lack trio.TaskStatus.
    from trio_typing import TaskStatus

log = logging.getLogger("annot.p2p.gossip")

OnRecords = Callable[[list[Record], str], Awaitable[None]]
Screen = Callable[[list[Record]], "tuple[str | None, bool]"]
"""``screen(records)``: (why the first never-valid record can never be stored, or None;
whether the message may be relayed: not if a record names a task not here yet)
(``node.core.ingest.Ingest.screen``). Run by the topic validator, so a message it
refuses is neither delivered nor forwarded: only its first sender is charged."""


class ScreenedOut(FrameError):
    """A gossip message with a record the node's admission rules call never-valid."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"never-valid record: {reason}")
        self.reason = reason  # admission's reason, e.g. label_not_in_schema


INGEST_QUEUE = 64  # accepted batches waiting for on_records
OUT_BUFFER_BYTES = 8 * 1024 * 1024  # records waiting to be gossiped
PUBLISH_TIMEOUT_S = 10.0
BATCH_OVERHEAD = 8  # msgpack header bytes per record, generously
OUTBOUND_HIGH_WATER = 16  # py-libp2p drops RPCs silently past 32 queued per peer
DIRECT_DIAL_NEVER_S = 10**9  # gossipsub's own dialing of direct peers: off
OUTBOUND_WAIT_S = 1.0  # how long a publish waits for a slow peer's queue to drain


def validator_peers(genesis: Genesis, own: str) -> list[PeerInfo]:
    """The other validators, if this node is one (explicit peering must be mutual:
    gossipsub refuses a mesh GRAFT from a direct peer, so an observer that named the
    validators direct would never be meshed by them)."""
    ids = [v.peer_id for v in genesis.validators]
    if own not in ids:
        return []
    # no addresses: the bootstrap loop connects; gossipsub only routes by peer id
    return [PeerInfo(ID.from_base58(p), []) for p in ids if p != own]


class CountingGossipSub(GossipSub):
    """GossipSub whose dropped outbound RPCs are counted: py-libp2p drops an RPC
    silently (a debug log) when the peer's queue holds 32, and a record gossip
    loses this way reaches that peer only by its next sync."""

    def __init__(self, *args: Any, counters: P2PCounters, validators: set[ID],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counters = counters
        self._validators = validators

    def _handle_dropped_rpc(self, peer_id: Any, rpc: Any, reason: str) -> None:
        if rpc.publish:
            self._counters.count_drop(
                "to_validator" if peer_id in self._validators else "to_other")
        super()._handle_dropped_rpc(peer_id, rpc, reason)


class Gossip:
    """The gossip adapter of one node: validator, ingest queue, batching publisher."""

    def __init__(self, host: P2PHost, genesis: Genesis, config: GossipConfig,
                 on_records: OnRecords, counters: P2PCounters, scores: PeerScores,
                 known: Callable[[bytes], bool] = lambda cid: False,
                 verifier: Verifier | None = None) -> None:
        self.host = host
        self.known = known  # record CID -> held here (stored or pooled: verified already)
        self.screen: Screen | None = None  # set by the node: admission's screen
        self.topic = genesis.topic()
        self.config = config
        self.on_records = on_records
        self.counters = counters
        self.scores = scores
        self._network_id = genesis.network_id
        self._limits = genesis.params.limits()
        self.verifier = verifier or Verifier(self._network_id, self._limits)
        self._max_in = genesis.params.max_batch_records
        self._max_out = min(config.batch_max_records, genesis.params.max_batch_records)
        self._max_out_bytes = min(config.batch_max_bytes, GOSSIP_PAYLOAD_CAP)
        # the other validators: a publish waits for them, and only them (_wait_for_room)
        self._validators: set[ID] = {ID.from_base58(v.peer_id) for v in genesis.validators
                                     if v.peer_id != host.peer_id}
        direct = validator_peers(genesis, host.peer_id)
        self.router: Any = CountingGossipSub(
            counters=counters, validators=self._validators,
            protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=6, degree_low=4, degree_high=12,
            # a validator sends every message straight to every other validator
            # (gossipsub v1.1 explicit peering), not only to the mesh: strangers that
            # join the topic fill the mesh (D_high 12) and pushed honest validators
            # out of it, so records reached them by sync, a second later (issue 13)
            direct_peers=direct,
            # and never dials them itself: the bootstrap loop does, with backoff (two
            # dialers racing made connections that never completed a stream)
            direct_connect_initial_delay=float(DIRECT_DIAL_NEVER_S),
            # py-libp2p's default is 120 s; typed int, but a float sleeps fine
            heartbeat_interval=config.heartbeat_s,
            heartbeat_initial_delay=min(config.heartbeat_s, 0.5),
            adaptive_gossip_enabled=False,  # would stretch the heartbeat to 30 s
            spam_protection_enabled=False,  # caps every peer at 10 msg/s; we validate
        )
        install_spr_cache()  # our signed peer record built once a second, not per RPC
        # SafePubsub: py-libp2p's Pubsub with per-stream write locks and supervised
        # inbound streams (a malformed frame is the peer's fault, never our crash)
        self.pubsub: Any = SafePubsub(host.raw, self.router, strict_signing=True,
                                      max_inbound_rpc_size=RPC_CAP,
                                      on_fault=self._on_stream_fault,
                                      on_duplicate=counters.count_concurrent_duplicate)
        self._in_send, self._in_recv = trio.open_memory_channel[tuple[list[Record], str]](
            INGEST_QUEUE)
        self._out_send, self._out_recv = trio.open_memory_channel[bytes](
            OUT_BUFFER_BYTES // 64)
        self._out_bytes = 0
        self._stuck: set[Any] = set()  # peers whose pubsub queue stays full (see below)

    # ------------------------------------------------------------ inbound
    async def decode_message(self, payload: bytes) -> list[Record]:
        """Decode and verify a whole batch, or raise the first record's error.

        Records already held here (same bytes, so same CID) were verified when they
        were stored or pooled: they are skipped, not verified again — gossip and sync
        often deliver the same record twice. Signatures are checked on every core
        (:class:`node.core.verifier.Verifier`); py-libp2p runs each message's
        validator as a task of its own, so the loop goes on meanwhile."""
        fresh = [d for d in decode_batch(payload, self._max_in, self._limits.max_bytes)
                 if not self.known(cid_bytes(d))]
        records: list[Record] = []
        for r in await self.verifier.decode_all(fresh):
            if not isinstance(r, Record):
                raise r
            records.append(r)
        return records

    async def _validate(self, forwarder: Any, msg: Any) -> bool:
        peer = str(forwarder)
        if peer == self.host.peer_id:
            return True  # our own publish: its records are already stored
        if self.host.is_banned(peer):
            return False
        try:
            records = await self.decode_message(msg.data)
            why, relay = (self.screen(records) if self.screen is not None and records
                          else (None, True))
            if why is not None:
                raise ScreenedOut(why)
        except (FrameError, ProtocolError) as exc:
            self._reject(peer, exc)
            return False
        self.counters.count_gossip("in", len(records))
        try:
            self._in_send.send_nowait((records, peer))
        except trio.WouldBlock:
            self.counters.count_drop("ingest")
            log.warning("gossip: ingest queue full, %d records left to sync", len(records))
        # A record for a task not here yet waits in admission's pool; the message is
        # not forwarded (gossipsub v1.1's "ignore": handed to ingest above, not charged).
        # Forwarded, a flood of such records from fresh keys reached every node once
        # from its sender and again from each node that relayed it (issue 13's Sybil
        # volume). A peer that has the task gets the records by sync.
        if not relay:
            self.counters.not_forwarded += 1
            return False
        return True

    def _reject(self, peer: str, exc: Exception) -> None:
        # a screened record is counted under admission's own reason, so an operator
        # sees the same reasons whichever path refused it
        reason = reason_of(exc)
        self.counters.count_rejected(reason)
        banned = self.scores.invalid(peer, trio.current_time())
        log.warning("gossip: rejected message forwarded by %s (%s): %s%s", peer, reason, exc,
                    "; banning the peer" if banned else "")
        if banned:
            self.host.ban(peer, self.scores.ban_seconds, reason=f"gossip: {reason}")

    def _on_stream_fault(self, peer: str, reason: str) -> None:
        if peer == self.host.peer_id:
            return
        self.counters.count_fault("pubsub", reason)
        if self.scores.invalid(peer, trio.current_time()):
            log.warning("gossip: banning %s: its pubsub streams keep failing (%s)", peer, reason)
            self.host.ban(peer, self.scores.ban_seconds, reason=f"pubsub: {reason}")

    async def _serve_ingest(self) -> None:
        async for records, peer in self._in_recv:
            await self.on_records(records, peer)

    async def _drain(self, sub: Any) -> None:
        # Records were handed over by the validator; delivery only needs emptying,
        # or py-libp2p would drop (and warn) once 32 messages are queued.
        while True:
            await sub.get()

    # ------------------------------------------------------------ outbound
    def publish_nowait(self, data: bytes) -> bool:
        """Queue one record's bytes for gossip; False if dropped (sync delivers it)."""
        if (len(data) + BATCH_OVERHEAD > GOSSIP_PAYLOAD_CAP
                or self._out_bytes + len(data) > OUT_BUFFER_BYTES):
            self.counters.gossip_dropped += 1
            return False
        try:
            self._out_send.send_nowait(data)
        except trio.WouldBlock:
            self.counters.gossip_dropped += 1
            return False
        self._out_bytes += len(data)
        return True

    async def publish_payload(self, payload: bytes, records: int = 1) -> bool:
        """Publish one already-encoded message; True if handed to gossipsub."""
        try:
            await self._wait_for_room()
            with trio.fail_after(PUBLISH_TIMEOUT_S):
                await self.pubsub.publish(self.topic, payload)
        except Exception as exc:
            self.counters.gossip_dropped += records
            log.warning("gossip: publish of %d records failed: %r", records, exc)
            return False
        self.counters.count_gossip("out", records)
        return True

    async def _wait_for_room(self) -> None:
        # publish() only enqueues; publishing in a tight loop overflows the per-peer
        # queue of 32 RPCs before its writer runs (measured: 22 of 1000 delivered).
        # Only validators are waited for: consensus needs every record and vote to
        # reach them. Everyone else gets what gossip delivers and syncs the rest.
        # Waiting for any peer let slow strangers pace us: one that reads a little at a
        # time keeps its queue near the mark, and every batch and vote waited for it
        # (5-8.5 s of waits per node in a minute of issue 13's mixed attack). A share
        # of 2% for them still cost 1.4 s per node per minute, each wait on the path
        # of a vote or batch; none now.
        # A validator whose queue stayed full for a whole wait is stuck (it does not
        # read): it is not waited for again until its queue drains.
        start = now = trio.current_time()
        deadline = start + OUTBOUND_WAIT_S
        while True:
            full = {p for p in self._validators
                    if len(self.pubsub.peer_queues.get(p, ())) >= OUTBOUND_HIGH_WATER}
            self._stuck &= full
            waiting = full - self._stuck
            if not waiting:
                break
            if now >= deadline:
                self._stuck |= waiting
                log.info("gossip: not waiting for %d validator(s) that do not read: %s",
                         len(waiting), ", ".join(sorted(str(p) for p in waiting)))
                break
            await trio.sleep(0.001)
            now = trio.current_time()
        self.counters.count_publish_wait(now - start)

    def _take_nowait(self, batch: list[bytes], size: int) -> tuple[int, bytes | None]:
        while len(batch) < self._max_out:
            try:
                nxt = self._out_recv.receive_nowait()
            except trio.WouldBlock:
                break
            if size + len(nxt) + BATCH_OVERHEAD > self._max_out_bytes:
                return size, nxt
            batch.append(nxt)
            size += len(nxt) + BATCH_OVERHEAD
        return size, None

    async def serve_publisher(self, *, task_status: TaskStatus[None]
                              = trio.TASK_STATUS_IGNORED) -> None:
        """Flush the outgoing buffer in batches; never returns."""
        task_status.started()
        delay = self.config.batch_delay_ms / 1000
        carry: bytes | None = None
        while True:
            first = carry if carry is not None else await self._out_recv.receive()
            carry = None
            batch, size = [first], len(first) + BATCH_OVERHEAD
            deadline = trio.current_time() + delay
            while True:
                size, carry = self._take_nowait(batch, size)
                if carry is not None or len(batch) >= self._max_out:
                    break
                with trio.move_on_at(deadline) as waited:
                    nxt = await self._out_recv.receive()
                if waited.cancelled_caught:
                    break  # the batch delay ran out
                if size + len(nxt) + BATCH_OVERHEAD > self._max_out_bytes:
                    carry = nxt
                    break
                batch.append(nxt)
                size += len(nxt) + BATCH_OVERHEAD
            self._out_bytes -= sum(len(b) for b in batch)
            await self.publish_payload(encode_batch(batch), len(batch))


async def serve_gossip(gossip: Gossip, *,
                       task_status: TaskStatus[Gossip] = trio.TASK_STATUS_IGNORED) -> None:
    """Run pubsub, the validator, ingest and publisher; never returns."""
    ps = gossip.pubsub
    try:
        async with background_trio_service(ps), background_trio_service(gossip.router):
            await ps.wait_until_ready()
            ps.set_topic_validator(gossip.topic, gossip._validate, True)
            sub = await ps.subscribe(gossip.topic)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(gossip._drain, sub)
                nursery.start_soon(gossip._serve_ingest)
                await nursery.start(gossip.serve_publisher)
                log.info("gossip: subscribed to %s", gossip.topic)
                task_status.started(gossip)
    finally:
        # py-libp2p starts a seen-cache sweeper thread per Pubsub and never stops it
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(ps.seen_messages.stop)
