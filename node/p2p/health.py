"""Sync health per peer, and the p2p layer's own Prometheus metrics.

:class:`SyncHealth` remembers, for each peer we sync with, how far behind
that peer we were at the last session (records it sent us), when a session
last succeeded, and the last error; :meth:`SyncHealth.snapshot` joins that
with the ban list for ``P2PNode.sync_health()``. Entries of peers that are
neither connected nor banned are dropped on disconnect, so memory follows
live peers.

:class:`P2PMetrics` registers the p2p metrics in the node's own registry
(:class:`node.core.metrics.Metrics.registry`)::

    annot_p2p_faults_total{layer,reason}   peer streams/handlers closed by an exception
    annot_p2p_bans_total{layer}            peers banned, by the layer that banned them
    annot_p2p_banned_peers                 peers banned right now (gauge)
    annot_sync_sessions_total{result}      sync sessions as client: ok / error
    annot_sync_peer_behind{peer}           records the peer's last session brought us
    annot_sync_peer_last_ok_seconds{peer}  unix time of the peer's last good session

and, once :meth:`P2PMetrics.watch` is given ``P2PNode.sync_health``, at each scrape::

    annot_sync_peer_last_error_seconds{peer,error}  unix time of the peer's last failed
                                                    session since its last good one
    annot_p2p_peer_banned_seconds{peer,reason}      seconds of ban left, and why
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

MAX_ERROR = 300
MAX_ERROR_LABEL = 120  # a last error as a metric label: one series per peer, kept short


class P2PMetrics:
    """The p2p layer's metrics, in one node's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.faults = Counter("annot_p2p_faults", "Peer streams or handlers closed by an "
                              "exception, charged to the peer.", ["layer", "reason"], registry=r)
        self.bans = Counter("annot_p2p_bans", "Peers banned, by layer.", ["layer"], registry=r)
        self.drops = Counter("annot_gossip_drops", "Gossip messages not delivered, by where: "
                             "py-libp2p's outbound queue to a validator or another peer was "
                             "full, or our ingest queue was (sync delivers them later).",
                             ["where"], registry=r)
        self.publish_wait = Counter("annot_gossip_publish_wait_seconds", "Time our gossip "
                                    "publishes waited for peers' pubsub queues to drain "
                                    "(py-libp2p drops past 32 queued).", registry=r)
        self.duplicates = Counter("annot_gossip_concurrent_duplicates", "Copies of a gossip "
                                  "message dropped because the message was being validated "
                                  "(py-libp2p would validate and relay each again).",
                                  registry=r)
        self.served = Counter("annot_sync_served_records", "Records our sync server sent "
                              "to peers, by whether the peer is a validator.", ["peer"],
                              registry=r)
        self.banned = Gauge("annot_p2p_banned_peers", "Peers banned now.", registry=r)
        self.sessions = Counter("annot_sync_sessions", "Sync sessions run as client.",
                                ["result"], registry=r)
        self.behind = Gauge("annot_sync_peer_behind", "Records the last sync session with "
                            "the peer brought us.", ["peer"], registry=r)
        self.last_ok = Gauge("annot_sync_peer_last_ok_seconds", "Unix time of the last "
                             "successful sync session with the peer.", ["peer"], registry=r)
        self._registry = r
        self._watched: Collector | None = None

    def watch(self, snapshot: Callable[[], list[PeerSyncHealth]]) -> None:
        """Report each peer's last error and ban (with its reason) from ``snapshot`` at
        every scrape (``P2PNode.sync_health``); a later call replaces the source."""
        if self._watched is not None:
            self._registry.unregister(self._watched)
        self._watched = _HealthCollector(snapshot)
        self._registry.register(self._watched)


class _HealthCollector(Collector):
    """Bans and last errors per peer, read from a sync health snapshot at scrape time."""

    def __init__(self, snapshot: Callable[[], list[PeerSyncHealth]]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            health = self._snapshot()
        except RuntimeError:  # scraped outside the node's trio run: nothing to report
            health = []
        yield from self._families(health)

    @staticmethod
    def _families(health: Sequence[PeerSyncHealth] = ()) -> Iterator[GaugeMetricFamily]:
        err = GaugeMetricFamily("annot_sync_peer_last_error_seconds", "Unix time of the "
                                "last failed sync session with the peer since its last good "
                                "one, with the error.", labels=["peer", "error"])
        ban = GaugeMetricFamily("annot_p2p_peer_banned_seconds", "Seconds of ban left for "
                                "the peer, with the reason.", labels=["peer", "reason"])
        for h in health:
            if h.last_error is not None and h.last_error_at is not None:
                err.add_metric([h.peer, h.last_error[:MAX_ERROR_LABEL]], h.last_error_at)
            if h.banned_for_s is not None:
                ban.add_metric([h.peer, (h.ban_reason or "")[:MAX_ERROR_LABEL]],
                               h.banned_for_s)
        yield err
        yield ban


@dataclass(frozen=True, slots=True)
class PeerSyncHealth:
    """One peer's sync health, as :meth:`P2PNode.sync_health` reports it."""

    peer: str
    connected: bool
    records_behind: int  # records the last successful session brought us (0: caught up)
    last_ok: float | None  # unix time of the last successful session
    last_error: str | None  # the last failed session's error, until a session succeeds
    last_error_at: float | None
    banned_for_s: float | None  # seconds of ban left, None if not banned
    ban_reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"peer": self.peer, "connected": self.connected,
                "records_behind": self.records_behind, "last_ok": self.last_ok,
                "last_error": self.last_error, "last_error_at": self.last_error_at,
                "banned_for_s": self.banned_for_s, "ban_reason": self.ban_reason}


class SyncHealth:
    """Per-peer sync outcomes (wall-clock times: they are shown to people)."""

    def __init__(self, metrics: P2PMetrics | None = None) -> None:
        self._metrics = metrics
        self._ok: dict[str, tuple[float, int]] = {}  # peer -> (when, records)
        self._err: dict[str, tuple[float, str]] = {}

    def ok(self, peer: str, records: int) -> None:
        now = time.time()
        self._ok[peer] = (now, records)
        self._err.pop(peer, None)
        if self._metrics is not None:
            self._metrics.sessions.labels(result="ok").inc()
            self._metrics.behind.labels(peer=peer).set(records)
            self._metrics.last_ok.labels(peer=peer).set(now)

    def error(self, peer: str, error: str) -> None:
        self._err[peer] = (time.time(), error[:MAX_ERROR])
        if self._metrics is not None:
            self._metrics.sessions.labels(result="error").inc()

    def forget(self, peer: str) -> None:
        """The peer disconnected: drop what we kept about it (bans live elsewhere)."""
        self._ok.pop(peer, None)
        self._err.pop(peer, None)
        if self._metrics is not None:
            for g in (self._metrics.behind, self._metrics.last_ok):
                try:
                    g.remove(peer)
                except KeyError:
                    pass

    def peers(self) -> set[str]:
        return set(self._ok) | set(self._err)

    def snapshot(self, connected: list[str], bans: list[tuple[str, float, str]]
                 ) -> list[PeerSyncHealth]:
        """Health of every connected, recently synced or banned peer, sorted by peer id."""
        banned = {p: (left, why) for p, left, why in bans}
        if self._metrics is not None:
            self._metrics.banned.set(len(banned))
        out = []
        for peer in sorted(set(connected) | self.peers() | set(banned)):
            ok = self._ok.get(peer)
            err = self._err.get(peer)
            ban = banned.get(peer)
            out.append(PeerSyncHealth(
                peer=peer, connected=peer in connected,
                records_behind=ok[1] if ok else 0, last_ok=ok[0] if ok else None,
                last_error=err[1] if err else None, last_error_at=err[0] if err else None,
                banned_for_s=round(ban[0], 1) if ban else None,
                ban_reason=ban[1] if ban else None))
        return out
