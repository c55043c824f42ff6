"""Peer bookkeeping: counters, invalid-message scores and the ban list.

Synchronous and clock-free: callers pass ``now`` (trio's clock), so these are
tested without sockets. The libp2p adapters decide *when* a peer misbehaved;
this module decides *what follows* (a ban once the threshold is crossed).

The optional ``metrics`` object is :class:`node.core.metrics.Metrics` or anything
with the same attributes; it is called defensively, so a missing or partial
metrics object never breaks networking.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("annot.p2p")

BAN_SECONDS = 600.0
MAX_TRACKED_PEERS = 10_000  # scores of at most this many peers are kept


@dataclass
class P2PCounters:
    """Counts for status and metrics; mirrored into ``metrics`` when given."""

    metrics: Any = None
    gossip_in: int = 0  # gossip messages accepted from peers
    gossip_out: int = 0  # gossip messages we published
    gossip_records_in: int = 0
    gossip_records_out: int = 0
    gossip_dropped: int = 0  # records not gossiped (buffer full / publish failed)
    not_forwarded: int = 0  # gossip messages kept but not relayed (a task not here yet)
    concurrent_duplicates: int = 0  # copies dropped while the message was in validation
    sync_records: int = 0  # records received by sync
    syncs: int = 0  # completed sync sessions (as client)
    sync_served: int = 0  # records sent to peers by our sync server
    rejected: Counter[str] = field(default_factory=Counter)  # by reason class
    drops: Counter[str] = field(default_factory=Counter)  # gossip messages lost, by where
    faults: Counter[str] = field(default_factory=Counter)  # "layer:reason" -> count
    bans: Counter[str] = field(default_factory=Counter)  # by layer
    _own: Any = field(default=None, repr=False)  # p2p metrics in metrics.registry

    def __post_init__(self) -> None:
        registry = getattr(self.metrics, "registry", None)
        if registry is not None:
            from node.p2p.health import P2PMetrics
            self._own = P2PMetrics(registry)

    @property
    def p2p_metrics(self) -> Any:
        """The p2p layer's :class:`~node.p2p.health.P2PMetrics`, or None without metrics."""
        return self._own

    def count_fault(self, layer: str, reason: str) -> None:
        """One peer stream or handler closed because of an exception (charged to the peer)."""
        self.faults[f"{layer}:{reason}"] += 1
        if self._own is not None:
            self._own.faults.labels(layer=layer, reason=reason).inc()

    def count_drop(self, where: str) -> None:
        """One gossip message not delivered: ``to_validator``/``to_other`` (py-libp2p's
        outbound queue to that peer was full) or ``ingest`` (ours was)."""
        self.drops[where] += 1
        if self._own is not None:
            self._own.drops.labels(where=where).inc()

    def count_concurrent_duplicate(self) -> None:
        """A copy of a gossip message that came while the message was in validation."""
        self.concurrent_duplicates += 1
        if self._own is not None:
            self._own.duplicates.inc()

    def count_publish_wait(self, seconds: float) -> None:
        if self._own is not None and seconds > 0:
            self._own.publish_wait.inc(seconds)

    def count_served(self, records: int, validator: bool) -> None:
        """``records`` sent by our sync server to a peer (a validator or anyone else)."""
        self.sync_served += records
        if self._own is not None:
            self._own.served.labels(peer="validator" if validator else "other").inc(records)

    def count_ban(self, reason: str) -> None:
        layer = reason.partition(":")[0] or "other"
        self.bans[layer] += 1
        if self._own is not None:
            self._own.bans.labels(layer=layer).inc()

    def count_gossip(self, direction: str, records: int) -> None:
        if direction == "in":
            self.gossip_in += 1
            self.gossip_records_in += records
        else:
            self.gossip_out += 1
            self.gossip_records_out += records
        self._metric("gossip_messages", direction=direction)

    def count_sync(self, records: int) -> None:
        self.sync_records += records
        self._metric("sync_records", amount=records)

    def count_rejected(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n
        self._metric("records_rejected", amount=n, reason=reason)

    def set_peers(self, n: int) -> None:
        try:
            self.metrics.peers.set(n)
        except AttributeError:
            pass

    def snapshot(self) -> dict[str, Any]:
        return {
            "gossip_in": self.gossip_in, "gossip_out": self.gossip_out,
            "gossip_records_in": self.gossip_records_in,
            "gossip_records_out": self.gossip_records_out,
            "gossip_dropped": self.gossip_dropped, "sync_records": self.sync_records,
            "not_forwarded": self.not_forwarded,
            "concurrent_duplicates": self.concurrent_duplicates,
            "syncs": self.syncs, "sync_served": self.sync_served,
            "rejected": dict(self.rejected), "drops": dict(self.drops),
            "faults": dict(self.faults), "bans": dict(self.bans),
        }

    def _metric(self, name: str, amount: int = 1, **labels: str) -> None:
        if self.metrics is None or amount <= 0:
            return
        try:
            c = getattr(self.metrics, name)
            (c.labels(**labels) if labels else c).inc(amount)
        except Exception:
            log.debug("metric %s not counted", name, exc_info=True)


class BanList:
    """Peers refused until an expiry time, each with the reason it was banned for."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._reason: dict[str, str] = {}

    def ban(self, peer: str, now: float, seconds: float = BAN_SECONDS,
            reason: str = "invalid messages") -> None:
        self._until[peer] = max(self._until.get(peer, 0.0), now + seconds)
        self._reason[peer] = reason

    def reason(self, peer: str) -> str | None:
        return self._reason.get(peer) if peer in self._until else None

    def entries(self, now: float) -> list[tuple[str, float, str]]:
        """(peer, seconds left, reason) of every ban still in force."""
        return [(p, self._until[p] - now, self._reason.get(p, "")) for p in self.banned(now)]

    def is_banned(self, peer: str, now: float) -> bool:
        until = self._until.get(peer)
        if until is None:
            return False
        if until <= now:
            del self._until[peer]
            self._reason.pop(peer, None)
            return False
        return True

    def banned(self, now: float) -> list[str]:
        return [p for p in list(self._until) if self.is_banned(p, now)]


class PeerScores:
    """Invalid-message counts per peer; crossing the threshold bans the peer."""

    def __init__(self, threshold: int, bans: BanList, ban_seconds: float = BAN_SECONDS) -> None:
        self.threshold = threshold
        self.bans = bans
        self.ban_seconds = ban_seconds
        self._invalid: dict[str, int] = {}

    def invalid(self, peer: str, now: float, reason: str = "invalid messages") -> bool:
        """Count one invalid message from ``peer``; True when this bans it."""
        if peer not in self._invalid and len(self._invalid) >= MAX_TRACKED_PEERS:
            self._invalid.pop(next(iter(self._invalid)))
        n = self._invalid.get(peer, 0) + 1
        self._invalid[peer] = n
        if n >= self.threshold:
            self._invalid.pop(peer, None)
            self.bans.ban(peer, now, self.ban_seconds, reason)
            return True
        return False

    def count(self, peer: str) -> int:
        return self._invalid.get(peer, 0)
