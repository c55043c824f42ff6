"""Fault scenarios (issue 13): large gossip while a peer joins, and seq gaps.

Real libp2p stacks (``serve_p2p``) on 127.0.0.1 with real SQLite stores.

1. Interleaved writes under large gossip (finding 2): node A gossips ~140 KB
   task records (4,000 items each) without pause while node B joins. py-libp2p
   replays "recent messages" to the new peer while the per-peer queue writer
   also writes; unserialized, the RPCs interleave and B dies of a DecodeError
   (4 of 4 tries before the fix). Asserted: no pubsub fault on either side,
   B ends with every record, both stacks stay up.
2. Seq gaps (finding 9): A holds an author's records past a missing seq; B
   syncs repeatedly. Asserted: the records past the gap cross the wire once,
   B's store grows by exactly the records, and nobody is penalized.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio

from node.core.config import Config
from node.p2p import P2PNode, serve_p2p
from node.store.db import Store, open_store
from protocol import cid as cidlib
from protocol.genesis import Genesis, Validator
from protocol.keys import Signer, SigningKey
from protocol.records import Annotation, Record, Task, sign_record

from .summary import add, note

KEYS = [SigningKey(bytes([0x30 + i]) * 32) for i in range(3)]
GENESIS = Genesis("attack-gossip", (Validator(KEYS[0].peer_id, 1),))
BIG_TASKS = 24
ITEMS_PER_TASK = 4000  # ~140 KB per task record


@asynccontextmanager
async def open_stack(tmp: Path, i: int) -> AsyncIterator[tuple[P2PNode, Store]]:
    store = open_store(tmp / f"n{i}.db")

    async def save(records: list[Record], peer: str) -> None:
        store.save_records(records)

    try:
        async with trio.open_nursery() as nursery:
            node: P2PNode = await nursery.start(partial(
                serve_p2p, KEYS[i], GENESIS, Config.for_tests(), store, save))
            yield node, store
            nursery.cancel_scope.cancel()
    finally:
        store.close()


def big_task(seq: int) -> Record:
    items = tuple(cidlib.cid_bytes(b"t%d-i%d" % (seq, i)) for i in range(ITEMS_PER_TASK))
    return sign_record(GENESIS.network_id, Signer(KEYS[2]), seq,
                       Task(f"big {seq}", ("a", "b"), items, 3, 1, 1000))


async def wait_for(cond: object, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not cond():  # type: ignore[operator]
            await trio.sleep(0.05)


async def test_large_gossip_while_a_peer_joins(tmp_path: Path) -> None:
    tasks = [big_task(s) for s in range(1, BIG_TASKS + 1)]
    assert len(tasks[0].data) > 128_000
    async with open_stack(tmp_path, 0) as (a, sa), open_stack(tmp_path, 1) as (b, sb):

        async def gossip() -> None:
            for r in tasks:
                sa.save_records([r])
                a.publish_nowait(r.data)
                await trio.sleep(0.05)

        with trio.fail_after(90):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(gossip)
                await trio.sleep(0.3)  # A is mid-flow when B joins
                await b.connect(a.listen_addrs()[0])
            await wait_for(lambda: sb.count() == len(tasks), 60)
        assert not a.counters.faults and not b.counters.faults
        assert a.peer_id in b.peers()
    add(attack_gossip_big_records=len(tasks))
    note(attack_gossip_record_kb=len(tasks[0].data) // 1024)


async def test_records_past_a_seq_gap_cross_once(tmp_path: Path) -> None:
    signer = Signer(KEYS[2])
    recs = [sign_record(GENESIS.network_id, signer, s,
                        Annotation(cidlib.cid_bytes(b"task"), cidlib.cid_bytes(b"i%d" % s), "a"))
            for s in range(1, 201) if s != 3]
    async with open_stack(tmp_path, 0) as (a, sa), open_stack(tmp_path, 1) as (b, sb):
        sa.save_records(recs)
        await b.connect(a.listen_addrs()[0])
        await wait_for(lambda: sb.count() == len(recs), 30)
        served = a.counters.sync_served
        size = (tmp_path / "n1.db").stat().st_size
        for _ in range(5):
            assert await b.request_sync(a.peer_id) == 0
        assert a.counters.sync_served == served  # 197 records past the gap: not again
        assert (tmp_path / "n1.db").stat().st_size <= size + 64 * 1024
        assert not a.counters.rejected and not b.counters.rejected
        assert not a.host.bans.banned(trio.current_time())
    add(attack_seq_gap_resyncs=5)
