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
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

MAX_ERROR = 300


class P2PMetrics:
    """The p2p layer's metrics, in one node's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.faults = Counter("annot_p2p_faults", "Peer streams or handlers closed by an "
                              "exception, charged to the peer.", ["layer", "reason"], registry=r)
        self.bans = Counter("annot_p2p_bans", "Peers banned, by layer.", ["layer"], registry=r)
        self.banned = Gauge("annot_p2p_banned_peers", "Peers banned now.", registry=r)
        self.sessions = Counter("annot_sync_sessions", "Sync sessions run as client.",
                                ["result"], registry=r)
        self.behind = Gauge("annot_sync_peer_behind", "Records the last sync session with "
                            "the peer brought us.", ["peer"], registry=r)
        self.last_ok = Gauge("annot_sync_peer_last_ok_seconds", "Unix time of the last "
                             "successful sync session with the peer.", ["peer"], registry=r)


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
