"""py-libp2p's Pubsub with three upstream bugs fixed, keeping its public API.

:class:`SafePubsub` is a subclass of ``libp2p.pubsub.pubsub.Pubsub`` (0.8.1)
that gossip uses instead of the stock class. It fixes, in our adapter, the
bugs numbered 1, 2 and 4 in ``docs/upstream/py-libp2p.md`` (with reproducers):

1. **A malformed frame ends the process.** ``continuously_read_stream``
   parses each RPC with protobuf's ``ParseFromString`` and does not catch
   ``DecodeError`` (nor anything ``maybe_consume_signed_record`` or the
   router's ``handle_rpc`` may raise); ``stream_handler`` catches only stream
   and varint errors, so one 7-byte frame on ``/meshsub/1.1.0`` propagates
   out of the swarm's handler task into the nursery the host runs in — the
   daemon's root. Here every exception of a peer's inbound stream is caught:
   the stream is reset, the peer dropped from pubsub, and the fault counted,
   logged and charged to that peer (``on_fault``), which bans it past the
   invalid-message threshold.

2. **Two writers interleave on one stream.** Gossipsub's
   ``send_recent_messages`` and ``flush_pending_messages`` call
   ``pubsub.write_msg(stream, …)`` directly while the per-peer queue writer
   (``handle_sending_messages``, started first) writes to the same stream.
   Yamux splits each write into frames of at most 64 KiB and releases its
   lock between frames, so two RPCs over 64 KiB (a ~140 KB record batch)
   interleave on the wire and the receiver parses foreign bytes inside a
   message — then dies of bug 1. Here ``write_msg`` holds one lock per
   stream for a whole length-prefixed RPC, so every writer is serialized.

Also, ``push_msg`` runs as a service task per received message; an
exception there would cancel the whole pubsub service. For messages from
other peers it is caught, counted and charged to the forwarder.

4. **Copies of a message that arrive while it is validated are validated
   again, and relayed again.** ``push_msg`` marks a message seen only after its
   signature check and the (async) topic validator, so every copy that arrives
   meanwhile — from each validator that relays it, and from every mesh peer —
   is verified whole (every record of the batch) and then forwarded a second
   time. The busier a node, the longer that window and the more copies fall
   into it. go-libp2p drops such copies (they are already in validation); here
   a copy whose message id is in validation is dropped too, and counted
   (``concurrent_duplicates``).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

import trio
from libp2p.pubsub.pubsub import Pubsub

log = logging.getLogger("annot.p2p.pubsub")

OnFault = Callable[[str, str], None]
"""``on_fault(peer, reason)``: a peer's pubsub stream failed in a way that is its fault."""


class SafePubsub(Pubsub):
    """Pubsub whose per-peer failures stay with that peer (see the module doc)."""

    def __init__(self, *args: Any, on_fault: OnFault | None = None,
                 on_duplicate: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_fault = on_fault
        self._on_duplicate = on_duplicate
        self._write_locks: weakref.WeakKeyDictionary[Any, trio.Lock] = (
            weakref.WeakKeyDictionary())
        self.stream_faults = 0  # inbound streams closed because of an exception
        self.concurrent_duplicates = 0  # copies dropped: the message was in validation
        self._validating: set[bytes] = set()  # ids of messages in push_msg now

    def _lock_for(self, stream: Any) -> trio.Lock:
        lock = self._write_locks.get(stream)
        if lock is None:
            lock = self._write_locks[stream] = trio.Lock()
        return lock

    async def write_msg(self, stream: Any, rpc_msg: Any) -> bool:
        """Write one whole RPC, never interleaved with another writer's on ``stream``."""
        async with self._lock_for(stream):
            return bool(await super().write_msg(stream, rpc_msg))

    async def stream_handler(self, stream: Any) -> None:
        """Read a peer's RPCs; any exception closes this stream and is charged to the peer."""
        try:
            peer = str(stream.muxed_conn.peer_id)
        except Exception:
            peer = "?"
        try:
            await super().stream_handler(stream)
        except Exception as exc:  # trio.Cancelled is a BaseException: it passes
            self.stream_faults += 1
            reason = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("pubsub: closing the stream of %s: %s", peer, reason)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                try:
                    await stream.reset()
                except Exception:
                    pass
            try:
                self._handle_dead_peer(stream.muxed_conn.peer_id)
            except Exception:
                log.debug("pubsub: dropping %s failed", peer, exc_info=True)
            self._fault(peer, type(exc).__name__)

    async def push_msg(self, msg_forwarder: Any, msg: Any) -> None:
        """Relay one message; a foreign message's failure is the forwarder's, not ours."""
        if msg_forwarder == self.my_id:
            await super().push_msg(msg_forwarder, msg)
            return
        try:
            msg_id = self._msg_id_constructor(msg)
            if msg_id in self._validating:
                self.concurrent_duplicates += 1
                if self._on_duplicate is not None:
                    self._on_duplicate()
                return
            self._validating.add(msg_id)
            try:
                await super().push_msg(msg_forwarder, msg)
            finally:
                self._validating.discard(msg_id)
        except Exception as exc:
            log.warning("pubsub: message from %s failed: %s: %s", msg_forwarder,
                        type(exc).__name__, exc)
            self._fault(str(msg_forwarder), type(exc).__name__)

    def _fault(self, peer: str, reason: str) -> None:
        if self._on_fault is None:
            return
        try:
            self._on_fault(peer, reason)
        except Exception:
            log.exception("pubsub: fault handler failed for %s", peer)
