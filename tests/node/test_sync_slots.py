"""Strangers' sync sessions never make a validator's wait (issue 13).

A stream to a peer that does not speak sync takes 10 s to be refused, and a slow
reader holds a server session as long as it likes: with one pool of slots, a dozen
such strangers held every slot and the validators' syncs waited behind them.
Sessions with validators have slots of their own. One seam (``Sync.sync_with``'s
slots), with the session itself stood in for, on trio's mock clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from p2p_cluster import make_genesis

from node.core.config import SyncConfig
from node.p2p.peers import BanList, P2PCounters, PeerScores
from node.p2p.sync import MAX_CLIENT_SESSIONS, Sync
from node.store.db import open_store


async def test_strangers_holding_every_slot_do_not_delay_a_validator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        autojump_clock: trio.testing.MockClock) -> None:
    g = make_genesis()
    store = open_store(tmp_path / "s.db")

    async def on_records(records: list[Any], peer: str) -> None:
        return None

    sync = Sync(object(), g, SyncConfig(), store, on_records,  # type: ignore[arg-type]
                P2PCounters(), PeerScores(100, BanList()))
    done: dict[str, float] = {}

    async def pull(peer: str) -> int:
        if not peer.startswith("stranger"):
            done[peer] = trio.current_time()
            return 0
        await trio.sleep(10)  # a stream the peer never agrees to
        done[peer] = trio.current_time()
        return 0
    monkeypatch.setattr(sync, "_pull", pull)
    validator = g.validators[0].peer_id
    try:
        async with trio.open_nursery() as nursery:
            for k in range(MAX_CLIENT_SESSIONS + 1):
                nursery.start_soon(sync.sync_with, f"stranger{k}")
            await trio.sleep(0.1)  # every stranger's slot is taken, one waits
            t0 = trio.current_time()
            await sync.sync_with(validator)
            assert done[validator] - t0 < 0.01  # not after the strangers' 10 s
            other = "another-stranger"
            with trio.move_on_after(1):
                await sync.sync_with(other)
            assert other not in done  # a stranger still waits for a slot
    finally:
        store.close()
    assert sum(p.startswith("stranger") for p in done) == MAX_CLIENT_SESSIONS + 1
