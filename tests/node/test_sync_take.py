"""Sync's handling of a recs frame (``Sync._take``): verification in worker threads,
and sessions with two peers pulling the same records at once splitting the work.

Real signatures, a real SQLite store; the host is a stand-in (only a ban would
reach it, and none is expected here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from p2p_cluster import key, make_genesis, make_records

from node.core.config import SyncConfig
from node.p2p.peers import BanList, P2PCounters, PeerScores
from node.p2p.sync import Sync
from node.store.db import open_store
from protocol.records import Record


class _NoHost:
    def ban(self, peer: str, seconds: float, reason: str = "") -> None:
        raise AssertionError(f"unexpected ban of {peer}: {reason}")


def _sync(tmp: Path, handed: list[tuple[str, list[Record]]]) -> tuple[Sync, Any]:
    store = open_store(tmp / "joiner.db")

    async def on_records(records: list[Record], peer: str) -> None:
        await trio.sleep(0.001)  # ingest yields to the loop, as the daemon's may
        store.save_records(records)
        handed.append((peer, records))

    sync = Sync(_NoHost(), make_genesis(), SyncConfig(), store,  # type: ignore[arg-type]
                on_records, P2PCounters(), PeerScores(100, BanList()))
    return sync, store


async def test_two_sessions_on_the_same_records_verify_each_once(tmp_path: Path) -> None:
    g = make_genesis()
    records = [r for w in (key(1), key(2)) for r in make_records(g, w, range(1, 601))]
    frames = [tuple(r.data for r in records[k:k + 200]) for k in range(0, len(records), 200)]
    handed: list[tuple[str, list[Record]]] = []
    sync, store = _sync(tmp_path, handed)
    taken = {"a": 0, "b": 0}

    async def session(peer: str) -> None:
        for f in frames:
            taken[peer] += await sync._take(f, peer)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session, "a")
            nursery.start_soon(session, "b")
        cids = [r.cid for _, batch in handed for r in batch]
        assert sorted(cids) == sorted(r.cid for r in records)  # each handed on once
        assert taken["a"] + taken["b"] == len(records)
        assert taken["a"] and taken["b"]  # both sessions did part of the work
        assert store.count() == len(records)
        assert not sync._inflight
        # a third pass finds everything stored: nothing is verified or handed on again
        assert await sync._take(frames[0], "a") == 0
    finally:
        store.close()


async def test_a_bad_record_is_refused_alone_in_a_threaded_frame(tmp_path: Path) -> None:
    g = make_genesis()
    records = make_records(g, key(1), range(1, 201))
    bad = bytearray(records[100].data)
    bad[-5] ^= 0xFF  # inside the signature
    datas = [r.data for r in records]
    datas[100] = bytes(bad)
    frame = tuple(datas)
    handed: list[tuple[str, list[Record]]] = []
    sync, store = _sync(tmp_path, handed)
    try:
        assert await sync._take(frame, "peer") == 199
        assert [r.seq for _, b in handed for r in b] == [s for s in range(1, 201) if s != 101]
        assert sum(sync.counters.rejected.values()) == 1  # charged once for the frame
        assert sync.scores.count("peer") == 1
        assert not sync._inflight
    finally:
        store.close()
