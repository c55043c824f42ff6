"""Sync between real in-process nodes: catch-up, gaps, wrong network, strict frames."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
from p2p_cluster import key, make_genesis, make_records, open_cluster, wait_until

from node.p2p import frames as fr
from protocol.encoding import encode_canonical

NET = bytes(range(32))


def test_hello_chunks_and_round_trip() -> None:
    clock = {bytes([i % 256, i // 256]) * 16: i for i in range(fr.CLOCK_ENTRIES_PER_FRAME + 5)}
    frames = [fr.decode_frame(f, 512, 262_144) for f in fr.hello_frames(NET, clock)]
    assert [f.more for f in frames if isinstance(f, fr.Hello)] == [True, False]
    got = {a: s for f in frames if isinstance(f, fr.Hello) for a, s in f.clock}
    assert got == clock
    assert fr.decode_frame(fr.hello_frames(NET, {})[0], 512, 1024) == fr.Hello(NET, (), False)
    assert fr.decode_frame(fr.encode_recs([b"r"]), 512, 1024) == fr.Recs((b"r",))
    assert fr.decode_frame(fr.encode_done(), 512, 1024) == fr.Done()
    assert fr.decode_frame(fr.encode_error("no"), 512, 1024) == fr.ErrorFrame("no")


@pytest.mark.parametrize("bad, why", [
    (encode_canonical({"t": "nope"}), "unknown type"),
    (encode_canonical({"t": "done", "x": 1}), "fields"),
    (encode_canonical({"r": [b"a"] * 3, "t": "recs"}), "at most 2"),
    (encode_canonical({"r": ["s"], "t": "recs"}), "must be bytes"),
    (fr.encode_hello(NET[:31], [], False), "32-byte network id"),
    (encode_canonical({"clock": [[b"a", 1]], "more": False, "net": NET, "t": "hello"}),
     "author"),
    (encode_canonical({"clock": [], "more": 1, "net": NET, "t": "hello"}), "more"),
    (encode_canonical([1, 2]), "expected a map"),
    (b"\xc1", "malformed"),
    (b"\x81\xa1t\xa4done" + b"\x00", "trailing"),
])
def test_bad_frames_say_why(bad: bytes, why: str) -> None:
    with pytest.raises(fr.FrameError, match=why):
        fr.decode_frame(bad, 2, 1024)


async def test_late_node_catches_up_with_gaps(tmp_path: Path) -> None:
    g = make_genesis()
    a_recs = make_records(g, key(0), range(1, 1501))
    b_recs = make_records(g, key(1), [s for s in range(1, 601) if s % 7])  # gaps
    random.Random(1).shuffle(b_recs)
    with trio.fail_after(30):
        async with open_cluster(tmp_path, 3, genesis=g) as c:
            c.stores[0].save_records(a_recs[:1000])
            c.stores[0].save_records(b_recs[:300])
            c.stores[1].save_records(a_recs[500:])
            c.stores[1].save_records(b_recs[200:])
            await c.connect(0, 1)
            want = {bytes(r.cid) for r in a_recs + b_recs}
            await wait_until(lambda: c.stores[0].count() == len(want)
                             and c.stores[1].count() == len(want), timeout=20)
            # a third node joins late and gets everything from one peer
            await c.connect(2, 0)
            await wait_until(lambda: c.stores[2].count() == len(want), timeout=20)
            for s in c.stores:
                assert {r.cid for r in a_recs + b_recs if s.has(r.cid)} == want
                assert s.clock()[key(0).public_key] == 1500
                assert s.clock()[key(1).public_key] == 6  # seq 7 never existed
                assert s.forks() == []
            # the counter moves when the session ends, after the last record is stored
            await wait_until(lambda: c.nodes[2].counters.sync_records >= len(want))
            # on demand: author 0 (no gap) moves nothing; author 1's records past its
            # permanent gap (seq 7) are re-sent every time, by design of the clock, but
            # the receiver skips records it holds without verifying them again
            assert await c.nodes[2].request_sync(c.nodes[0].peer_id) == 0
            assert c.stores[2].count() == len(want)


async def test_peer_with_other_genesis_is_disconnected(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_cluster(tmp_path, 1) as c:
            other = await c.add(1, genesis=make_genesis("elsewhere"))
            c.stores[1].save_records(make_records(make_genesis("elsewhere"), key(1), [1, 2]))
            await c.connect(1, 0)
            await wait_until(lambda: not c.nodes[0].peers() and not other.peers())
            assert c.nodes[0].host.is_banned(other.peer_id)
            assert c.stores[0].count() == 0


async def test_sync_catch_up_rate(tmp_path: Path) -> None:
    n = 10_000
    g = make_genesis()
    writers = [key(i) for i in range(4)]
    records = [r for w in writers for r in make_records(g, w, range(1, n // 4 + 1))]
    with trio.fail_after(60):
        async with open_cluster(tmp_path, 2, genesis=g) as c:
            c.stores[0].save_records(records)
            t0 = trio.current_time()
            await c.connect(1, 0)
            await wait_until(lambda: c.stores[1].count() == n, timeout=50, step=0.01)
            dt = trio.current_time() - t0
    print(f"sync catch-up: {n} records in {dt:.2f}s = {n / dt:,.0f} records/s")
