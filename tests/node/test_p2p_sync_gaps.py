"""Issue 13, findings 9 and 11: sync past seq gaps and with very large clocks.

Finding 9: records above a seq gap were sent again on every sync (4.2 MB per
pull, 0 new records). A 1.1.0 client now lists what it holds past its
contiguous seq, and the server skips those.

Finding 11: a clock needing more than 256 hello frames (an honest node with
over ~1 M authors) was penalized as invalid, and eventually banned. The cap
is now 16,384 frames, and going past it ends the session without a penalty.
Both run real libp2p hosts on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.io.msgio import VarIntLengthMsgReadWriter
from libp2p.peer.id import ID
from p2p_cluster import key, make_records, open_cluster, wait_until

from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.p2p import P2PNode, serve_p2p
from node.p2p import frames as fr
from node.p2p.health import PeerSyncHealth
from node.p2p.sync_serve import RESEND_AFTER_S
from node.store.db import Store, open_store
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.records import Record


async def test_records_past_a_gap_are_sent_once(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, 2) as c:
        genesis = c.genesis
        # author 5 signed seqs 1..40, but seq 4 never reached anyone: a gap
        records = make_records(genesis, key(5), [s for s in range(1, 41) if s != 4])
        c.stores[0].save_records(records)
        await c.connect(1, 0)
        await wait_until(lambda: c.nodes[1].peer_id in c.nodes[0].peers())
        server, client = c.nodes[0], c.nodes[1]
        await client.request_sync(server.peer_id)
        await wait_until(lambda: c.stores[1].count() == 39)
        served = server.counters.sync_served
        for _ in range(3):
            assert await client.request_sync(server.peer_id) == 0
        assert server.counters.sync_served == served  # nothing past the gap came again
        # the missing record arrives: it (and only it) is sent, and the gap closes
        c.stores[0].save_records(make_records(genesis, key(5), [4]))
        assert await client.request_sync(server.peer_id) == 1
        assert server.counters.sync_served == served + 1
        assert c.stores[1].clock()[key(5).public_key] == 40
        health = {h.peer: h for h in client.sync_health()}
        h = health[server.peer_id]
        assert isinstance(h, PeerSyncHealth)
        assert h.connected and h.last_ok is not None and h.last_error is None
        assert h.records_behind == 1 and h.banned_for_s is None


async def test_a_huge_clock_is_served_not_penalized(tmp_path: Path) -> None:
    frames = 300  # past the old cap of 256 hello frames
    # both validators: a validator is served in full on every session (the sync on
    # connect already sent these records, and others get them once a minute)
    both = Genesis(name="p2p-test", validators=(Validator(key(0).peer_id, 1),
                                                Validator(key(1).peer_id, 1)))
    async with open_cluster(tmp_path, 2, genesis=both) as c:
        server, honest = c.nodes[0], c.nodes[1]
        c.stores[0].save_records(make_records(c.genesis, key(6), range(1, 4)))
        await c.connect(1, 0)
        await wait_until(lambda: honest.peer_id in server.peers())
        stream = await honest.host.raw.new_stream(ID.from_base58(server.peer_id),
                                                  [fr.SYNC_PROTOCOL])
        rw = VarIntLengthMsgReadWriter(stream, max_msg_size=1 << 21)
        with trio.fail_after(60):
            for i in range(frames):  # one clock entry per frame keeps the test cheap
                author = (i + 1000).to_bytes(32, "big")
                await rw.write_msg(fr.encode_hello(c.genesis.network_id, [(author, 1)],
                                                   i < frames - 1))
            got = []
            while True:
                frame = fr.decode_frame(await rw.read_msg(), 512, 1 << 20)
                if isinstance(frame, fr.Done):
                    break
                assert isinstance(frame, fr.Recs), frame
                got.extend(frame.records)
        assert len(got) == 3
        assert server.scores.count(honest.peer_id) == 0
        assert not server.host.is_banned(honest.peer_id)
        assert not server.counters.rejected


async def test_a_peer_that_keeps_nothing_is_not_sent_everything_again(
        tmp_path: Path) -> None:
    """A peer that is no validator and stores nothing (a leech, or an attacker making us
    read and send the whole store on every sync) gets each record once per
    RESEND_AFTER_S; records stored since its last session still come at once. A
    validator gets everything it lacks on every session."""
    async with open_cluster(tmp_path, 1) as c:
        server = c.nodes[0]
        c.stores[0].save_records(make_records(c.genesis, key(7), range(1, 41)))
        got: list[int] = []

        async def keep_nothing(records: list[Record], peer: str) -> None:
            got.append(len(records))
        store = open_store(tmp_path / "leech.db")
        leech: P2PNode = await c.nursery.start(partial(
            serve_p2p, key(5), c.genesis, c.config, store, keep_nothing))
        try:
            await leech.connect(server.listen_addrs()[0])
            await wait_until(lambda: server.peer_id in leech.peers())
            await leech.request_sync(server.peer_id)
            await wait_until(lambda: sum(got) >= 40)  # the whole store, once
            assert sum(got) == 40, got
            for _ in range(3):
                assert await leech.request_sync(server.peer_id) == 0
            c.stores[0].save_records(make_records(c.genesis, key(8), range(1, 6)))
            assert await leech.request_sync(server.peer_id) == 5  # only the new ones
            assert sum(got) == 45
            served = server.counters.sync_served
            # a minute passes: its last whole session is too old to spare it anything
            server.sync._served.served(leech.peer_id, 0, trio.current_time() - RESEND_AFTER_S)
            assert await leech.request_sync(server.peer_id) == 45  # a minute later: all
            assert server.counters.sync_served == served + 45
        finally:
            store.close()


async def test_records_waiting_for_their_task_are_not_pulled_again(tmp_path: Path) -> None:
    """Records for a task not seen yet wait in admission's pool, not the store; their
    sender used to send them again on every sync (12-32k records a minute from one
    peer in the mixed attack). The client now lists them as held."""
    async with open_cluster(tmp_path, 1) as c:
        server = c.nodes[0]
        # author 7 labelled a task nobody here has: seqs 1..30 past no gap at all
        c.stores[0].save_records(make_records(c.genesis, key(7), range(1, 31)))
        async with pooling_client(c, tmp_path, key(1)) as (client, ingest, store):
            await client.connect(server.listen_addrs()[0])
            await wait_until(lambda: server.peer_id in client.peers())
            await client.request_sync(server.peer_id)  # the sync on connect may bring them
            await wait_until(lambda: ingest.admission.pending == 30)
            assert store.count() == 0
            served = server.counters.sync_served
            for _ in range(3):
                assert await client.request_sync(server.peer_id) == 0
            assert server.counters.sync_served == served  # none sent again


async def test_the_pool_is_listed_only_to_peers_that_filled_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                ) -> None:
    """A peer serves from its store, so only one that stored records for a task we lack
    can send them again: the pool goes into the hello to that peer only. Listed to every
    peer, a pool of 1,000 Sybil records put ~40 KB into every sync session's hello."""
    hellos: list[tuple[int, set[bytes]]] = []  # (session, authors listed as held)
    real = fr.iter_hello_frames

    def spy(net: bytes, clock: dict[bytes, int], have: dict[bytes, list[int]] | None = None,
            ) -> Iterator[bytes]:
        hellos.append((len(hellos), set(have or {})))
        return real(net, clock, have)
    monkeypatch.setattr(fr, "iter_hello_frames", spy)
    async with open_cluster(tmp_path, 2) as c:
        gap, honest = c.nodes[0], c.nodes[1]
        c.stores[0].save_records(make_records(c.genesis, key(7), range(1, 31)))
        async with pooling_client(c, tmp_path, key(5)) as (client, ingest, _):
            for server in (gap, honest):
                await client.connect(server.listen_addrs()[0])
                await wait_until(lambda s=server: s.peer_id in client.peers())
            await client.request_sync(gap.peer_id)
            await wait_until(lambda: ingest.admission.pending == 30)
            author = key(7).public_key
            hellos.clear()
            await client.request_sync(honest.peer_id)
            assert hellos and all(author not in h for _, h in hellos), hellos
            hellos.clear()
            assert await client.request_sync(gap.peer_id) == 0
            assert hellos and all(author in h for _, h in hellos), hellos


@asynccontextmanager
async def pooling_client(c: Any, tmp: Path, k: SigningKey,
                         ) -> AsyncIterator[tuple[P2PNode, Ingest, Store]]:
    """A node of our own stack whose ingest has admission's pool (records waiting for a
    task go there, not to the store), connected to nothing yet."""
    store = open_store(tmp / "client.db")
    ingest = Ingest(store, c.genesis, Metrics(), lambda data: None)
    try:
        client: P2PNode = await c.nursery.start(partial(
            serve_p2p, k, c.genesis, c.config, store,
            lambda records, peer: _accept(ingest, records, peer)))
        client.set_pool(ingest.admission)
        yield client, ingest, store
    finally:
        store.close()


async def _accept(ingest: Ingest, records: list[Record], peer: str) -> None:
    ingest.accept(records, source=peer)
