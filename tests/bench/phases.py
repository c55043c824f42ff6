"""Where finality's time goes: per item and node, five phases read from the stores.

Every node's store is polled (read-only) for new records and certificates; vote
records are decoded (not verified: the node did that) into their entries. For an
item and a node, with ``sent`` the time its last annotation was submitted:

1. annotation spread: ``sent`` → the node holds all the item's annotations;
2. proposal: → the node's own prevote for the item is stored (its proposal is made
   from the labels it holds, and the vote waits for the vote batch delay);
3. prevote: → the node holds a quorum of prevotes (the others' arrive by gossip);
4. precommit: → the node holds a quorum of precommits (its own cast on the polka);
5. certificate: → the node's certificate row is committed.

The phases of one (item, node) add up to its ``sent`` → final time; the table gives
each phase's p50 and p99 over all (item, node) pairs and its share of the mean total.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from protocol.records import PRECOMMIT, PREVOTE, Vote, decode_record
from tests.bench.common import p50_p99

PHASES = ("annotation spread", "proposal", "prevote", "precommit", "certificate")


class PhaseWatch:
    """Polls the stores of a network's nodes; remembers when each milestone appeared."""

    def __init__(self, stores: list[Path], net: bytes, validator_keys: list[bytes],
                 quorum: int) -> None:
        import sqlite3
        self.dbs = [sqlite3.connect(f"file:{p}?mode=ro", uri=True, isolation_level=None)
                    for p in stores]
        for db in self.dbs:
            db.execute("PRAGMA busy_timeout=5000")
        self.net = net
        self.keys = validator_keys
        self.quorum = quorum
        self.rowid = [0] * len(stores)
        self.cert_rowid = [0] * len(stores)
        self.ann_seen: list[dict[bytes, float]] = [{} for _ in stores]
        # (node, item, phase) -> {voter: first time held}
        self.votes: dict[tuple[int, bytes, int], dict[bytes, float]] = defaultdict(dict)
        self.final: list[dict[bytes, float]] = [{} for _ in stores]

    def poll(self) -> None:
        for n, db in enumerate(self.dbs):
            now = time.monotonic()
            rows = db.execute("SELECT rowid, cid, kind, author, data FROM records WHERE rowid>?"
                              " ORDER BY rowid", (self.rowid[n],)).fetchall()
            if rows:
                self.rowid[n] = rows[-1][0]
            for _, cid, kind, author, data in rows:
                if kind == "annotation":
                    self.ann_seen[n].setdefault(bytes(cid), now)
                elif kind == "vote":
                    body = decode_record(bytes(data), self.net, verify=False).body
                    assert isinstance(body, Vote)
                    for e in body.entries:
                        self.votes[(n, e.item, body.phase)].setdefault(bytes(author), now)
            certs = db.execute("SELECT rowid, item FROM certificates WHERE rowid>? ORDER BY "
                               "rowid", (self.cert_rowid[n],)).fetchall()
            if certs:
                self.cert_rowid[n] = certs[-1][0]
            for _, item in certs:
                self.final[n].setdefault(bytes(item), now)

    def close(self) -> None:
        for db in self.dbs:
            db.close()

    def breakdown(self, items: dict[bytes, tuple[float, list[bytes]]]) -> dict[str, Any]:
        """``items``: item → (last annotation sent, its annotations' CIDs). Per phase:
        p50, p99 (s) and share of the mean sent→final time, over (item, node) pairs."""
        per: dict[str, list[float]] = {p: [] for p in PHASES}
        totals: list[float] = []
        for item, (sent, cids) in items.items():
            for n in range(len(self.dbs)):
                held = [self.ann_seen[n].get(c) for c in cids]
                final = self.final[n].get(item)
                own_pv = self.votes.get((n, item, PREVOTE), {}).get(self.keys[n])
                pv_q = self._quorum_at(n, item, PREVOTE)
                pc_q = self._quorum_at(n, item, PRECOMMIT)
                marks = [sent, None if None in held else max(held),  # type: ignore[type-var]
                         own_pv, pv_q, pc_q, final]
                if any(m is None for m in marks):
                    continue
                # a milestone seen in the same poll as a later one counts as no time
                t = [marks[0]]
                for m in marks[1:]:
                    t.append(max(t[-1], m))  # type: ignore[type-var]
                for k, p in enumerate(PHASES):
                    per[p].append(t[k + 1] - t[k])  # type: ignore[operator]
                totals.append(t[-1] - t[0])  # type: ignore[operator]
        mean_total = statistics.fmean(totals) if totals else 0.0
        out: dict[str, Any] = {"pairs": len(totals)}
        for p in PHASES:
            p50, p99 = p50_p99(per[p])
            out[p] = {"p50_s": p50, "p99_s": p99,
                      "share": statistics.fmean(per[p]) / mean_total if mean_total else None}
        return out

    def _quorum_at(self, n: int, item: bytes, phase: int) -> float | None:
        ts = sorted(self.votes.get((n, item, phase), {}).values())
        return ts[self.quorum - 1] if len(ts) >= self.quorum else None


def describe(b: dict[str, Any]) -> str:
    """One line: each phase's p50/p99 in ms and its share of the time."""
    parts = []
    for p in PHASES:
        d = b.get(p) or {}
        if d.get("p50_s") is None:
            continue
        parts.append(f"{p} {d['p50_s'] * 1000:.0f}/{d['p99_s'] * 1000:.0f} ms "
                     f"({(d['share'] or 0):.0%})")
    return "; ".join(parts)
