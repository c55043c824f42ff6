"""One node's whole p2p stack, started in dependency order in one nursery.

``serve_p2p`` opens the host, starts gossip (pubsub must exist before peers
connect), then sync, then bootstrap dialing, and reports a :class:`P2PNode`
— the narrow face the service, RPC status and consensus layer use::

    node = await nursery.start(serve_p2p, key, genesis, config, store, on_records)
    node.publish_nowait(record.data)        # after the record is saved
    node.request_sync_nowait()              # e.g. before voting again
    node.counters.snapshot()                # for status / metrics
    node.sync_health()                      # per peer: behind, last ok, last error, ban
    node.penalize(peer, "bitswap", reason)  # charge a peer for another protocol's fault

``on_records(records, from_peer)`` receives every verified record from
gossip and sync; it saves them (an exception there stops the node, on
purpose: losing records silently is worse).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from node.core.config import Config
from node.core.verifier import Verifier
from node.p2p.gossip import Gossip, OnRecords, serve_gossip
from node.p2p.health import PeerSyncHealth, SyncHealth
from node.p2p.host import ConnEvent, P2PHost, open_host, serve_bootstrap
from node.p2p.peers import BanList, P2PCounters, PeerScores
from node.p2p.sync import Pool, Sync
from node.store.db import Store
from protocol.genesis import Genesis
from protocol.keys import SigningKey

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose stubs shadow trio's and lack trio.TaskStatus.
    from trio_typing import TaskStatus

log = logging.getLogger("annot.p2p")


class P2PNode:
    """A running p2p stack: host, gossip and sync of one node."""

    def __init__(self, host: P2PHost, gossip: Gossip, sync: Sync,
                 counters: P2PCounters, scores: PeerScores | None = None) -> None:
        self.host = host
        self.gossip = gossip
        self.sync = sync
        self.counters = counters
        self.scores = scores if scores is not None else sync.scores

    def set_screen(self, screen: Any) -> None:
        """Have gossip refuse (not forward, charge the sender) messages holding a record
        ``screen`` calls never-valid, and keep but not relay those it says not to relay;
        pass ``node.ingest.screen``."""
        self.gossip.screen = screen

    def set_pool(self, pool: Pool) -> None:
        """Records held outside the store (admission's pending pool): sync tells peers
        it has them, and gossip and sync skip them like stored ones."""
        store_has = self.sync.store.has

        def held(cid: bytes) -> bool:
            return store_has(cid) or pool.holds(cid)
        self.sync.pool = pool
        self.sync.known = self.gossip.known = held

    def sync_health(self) -> list[PeerSyncHealth]:
        """Per peer (connected, recently synced or banned), sorted by peer id: records
        the last sync brought (``records_behind``), ``last_ok`` (unix time),
        ``last_error`` (+ ``last_error_at``) since the last success, and for banned
        peers ``banned_for_s`` and ``ban_reason``. ``.to_json()`` gives a dict."""
        now = trio.current_time()
        return self.sync.health.snapshot(self.peers(), self.host.bans.entries(now))

    def penalize(self, peer: str, layer: str, reason: str) -> bool:
        """Charge ``peer`` one invalid message of ``layer`` (e.g. bitswap); True if banned."""
        if peer == self.peer_id:
            return False
        self.counters.count_fault(layer, reason)
        if self.scores.invalid(peer, trio.current_time(), f"{layer}: {reason}"):
            self.host.ban(peer, self.scores.ban_seconds, reason=f"{layer}: {reason}")
            return True
        return False

    @property
    def peer_id(self) -> str:
        return self.host.peer_id

    @property
    def topics(self) -> list[str]:
        return [self.gossip.topic]

    def listen_addrs(self) -> list[str]:
        return self.host.listen_addrs()

    def peers(self) -> list[str]:
        return self.host.connected_peers()

    async def connect(self, addr: str) -> str:
        return await self.host.connect(addr)

    def publish_nowait(self, data: bytes) -> bool:
        """Gossip one saved record's bytes (batched); False if dropped from gossip."""
        return self.gossip.publish_nowait(data)

    def request_sync_nowait(self, peer: str | None = None) -> None:
        self.sync.request_sync_nowait(peer)

    async def request_sync(self, peer: str | None = None) -> int:
        """Sync now with ``peer`` or every peer; return the records received."""
        return await self.sync.request_sync(peer)

    def status(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id, "listen": self.listen_addrs(),
                "peers": self.peers(), "topics": self.topics, **self.counters.snapshot()}


async def serve_p2p(key: SigningKey, genesis: Genesis, config: Config, store: Store,
                    on_records: OnRecords, *, metrics: Any = None,
                    task_status: TaskStatus[P2PNode] = trio.TASK_STATUS_IGNORED
                    ) -> None:
    """Run the p2p stack until cancelled; report the :class:`P2PNode` once listening."""
    counters = P2PCounters(metrics=metrics)
    bans = BanList()
    scores = PeerScores(config.gossip.invalid_threshold, bans)
    async with open_host(key, config.p2p, bans) as host, trio.open_nursery() as nursery:
        host.on_ban = lambda peer, reason: counters.count_ban(reason)
        # signatures of gossip messages and sync frames alike, on every core
        verifier = Verifier(genesis.network_id, genesis.params.limits(),
                            config.sync.verify_threads)
        gossip = await nursery.start(serve_gossip,
                                     Gossip(host, genesis, config.gossip, on_records,
                                            counters, scores, known=store.has,
                                            verifier=verifier))
        health = SyncHealth(counters.p2p_metrics)
        sync = await nursery.start(Sync(host, genesis, config.sync, store, on_records,
                                        counters, scores, health, verifier).serve)

        def on_conn(ev: ConnEvent) -> None:
            counters.set_peers(len(host.connected_peers()))

        host.add_listener(on_conn)
        await nursery.start(serve_bootstrap, host, config.p2p)
        log.info("p2p: node %s up on %s", host.peer_id, ", ".join(host.listen_addrs()))
        p2p = P2PNode(host, gossip, sync, counters, scores)
        if counters.p2p_metrics is not None:  # bans and last errors in /metrics
            counters.p2p_metrics.watch(p2p.sync_health)
        task_status.started(p2p)
