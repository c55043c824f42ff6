"""The node's Prometheus metrics, in a registry of their own.

One :class:`Metrics` per node (never the process-global registry, so several
nodes in one test process do not collide). Subsystems bump the attributes;
the RPC server serves :meth:`Metrics.render` at ``GET /metrics``.

    annot_records_total{kind}            records accepted into the store
    annot_records_rejected_total{reason} records refused, by reason class
    annot_peers                          connected peers (gauge)
    annot_gossip_messages_total{direction} gossip messages in/out
    annot_sync_records_total             records fetched by sync
    annot_votes_total{phase}             votes accepted, by phase
    annot_items_final_total              items finalized
    annot_items_final_after_round_0_total  of which in a later round than the first
    annot_event_loop_lag_seconds         how late a 50 ms sleep woke (histogram)
    annot_gc_pause_seconds{generation}   garbage collections, how long each (histogram)
    annot_gc_frozen_objects              start-up objects frozen out of full collections
    annot_rpc_requests_total{method}     RPC calls, by method
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class Metrics:
    """The node's counters and gauges, registered in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.records = Counter(
            "annot_records", "Records accepted into the store.", ["kind"], registry=r
        )
        self.records_rejected = Counter(
            "annot_records_rejected", "Records refused, by reason class.", ["reason"], registry=r
        )
        self.peers = Gauge("annot_peers", "Connected libp2p peers.", registry=r)
        self.gossip_messages = Counter(
            "annot_gossip_messages", "Gossip messages, in or out.", ["direction"], registry=r
        )
        self.sync_records = Counter(
            "annot_sync_records", "Records fetched by the sync protocol.", registry=r
        )
        self.votes = Counter("annot_votes", "Votes accepted, by phase.", ["phase"], registry=r)
        self.items_final = Counter("annot_items_final", "Items finalized.", registry=r)
        self.items_final_later = Counter(
            "annot_items_final_after_round_0", "Items finalized in a round after the "
            "first (a round timed out: votes or annotations came late).", registry=r)
        self.loop_lag = Histogram(
            "annot_event_loop_lag_seconds", "How late the event loop woke a task that "
            "slept 50 ms: work that held the loop meanwhile (every RPC, gossip and vote "
            "waits behind it).", buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r)
        self.gc_pause = Histogram(
            "annot_gc_pause_seconds", "Python's cyclic garbage collector: how long each "
            "collection held the process, by generation.", ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0), registry=r)
        self.gc_frozen = Gauge(
            "annot_gc_frozen_objects", "Objects loaded at start-up and frozen out of the "
            "collector's passes (gc.freeze): they live as long as the node.", registry=r)
        self.rpc_requests = Counter(
            "annot_rpc_requests", "JSON-RPC calls, by method.", ["method"], registry=r
        )

    def vote_counted(self, phase: str) -> None:
        """Count one vote accepted by the consensus service (``prevote``/``precommit``)."""
        self.votes.labels(phase=phase).inc()

    def item_finalized(self, round_: int = 0) -> None:
        """Count one item that reached a certificate (in round ``round_``)."""
        self.items_final.inc()
        if round_ > 0:
            self.items_final_later.inc()

    def count_rpc(self, method: str) -> None:
        """Count one RPC call; pass as ``serve_rpc(..., on_call=metrics.count_rpc)``."""
        self.rpc_requests.labels(method=method).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition (``text/plain; version=0.0.4``)."""
        return generate_latest(self.registry)
