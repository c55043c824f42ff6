"""Adversarial peers: py-libp2p hosts in the test process against real node processes.

Two honest nodes (processes). Attackers (Noise + Yamux, the project's own
p2p stack with other keys and a throwaway store) connect to both and
- flood gossip with forged signatures, other-network records and garbage,
  one identity after another (each is banned after ``invalid_threshold``);
- replay old, valid records (harmless duplicates: nothing new is stored);
- fork their own log (two records with one seq): both nodes keep evidence;
- open sync streams and never finish them (half-open), and send a sync
  frame whose length prefix is far over the cap.
Meanwhile honest records go in over node 1's RPC and must reach node 0;
the throughput ratio (during attack / without) is printed, and asserted by
``make faults`` only: a workload that takes a fraction of a second measures the
machine's mood as much as the attack (a clean-clone CI run once saw a 0.13 s
baseline, ten times its usual speed), and timing claims belong to the long runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio
from harness import Cluster
from libp2p.peer.id import ID

from node.core.config import Config
from node.p2p import P2PNode, serve_p2p
from node.p2p.frames import SYNC_PROTOCOL, encode_batch
from node.store.db import open_store
from protocol.genesis import Genesis
from protocol.keys import SigningKey
from protocol.records import Annotation, Record, sign_record

from .common import HTTPRPC, make_workload, rejected_counts
from .summary import FULL, add, note, scale

HONEST_ITEMS = scale(60, 150)  # x3 annotations per workload
MIN_SYBILS = scale(3, 8)  # flooding identities, one after another; more while the honest
MAX_SYBILS = 24  # measurement runs, so that every moment of it is under a flood
MIN_RATIO = 0.3  # claim (make faults): floods cost honest traffic at most 70% of its rate
# (measured 0.56: 169 vs 300 rec/s, with the machine at load 10 on 2 cores)
BASELINE_RUNS = 3  # the baseline is the median of these, each a task of its own


@asynccontextmanager
async def open_attacker(tmp: Path, key: SigningKey, genesis: Genesis) -> AsyncIterator[P2PNode]:
    store = open_store(tmp / f"attacker-{key.peer_id[-6:]}.db")

    async def ignore(records: list[Record], peer: str) -> None:
        return None

    try:
        async with trio.open_nursery() as nursery:
            node: P2PNode = await nursery.start(partial(
                serve_p2p, key, genesis, Config.for_tests(), store, ignore))
            yield node
            nursery.cancel_scope.cancel()
    finally:
        store.close()


def honest_rate(c: Cluster, seq: int, tag: bytes, timeout: float = 120.0,
                window: list[tuple[float, float]] | None = None) -> float:
    """Records/s from node 1's RPC until node 0 holds them all (gossip + sync); the
    (start, end) monotonic times are appended to ``window``."""
    w = make_workload(c.genesis.network_id, seq, HONEST_ITEMS, tag=tag)
    datas = [w.task.data] + [r.data for r in w.annotations]
    rpc0, rpc1 = HTTPRPC.from_home(c.home(0)), HTTPRPC.from_home(c.home(1))
    try:
        before = rpc0.call("node.status")["record_count"]
        t0 = time.monotonic()
        for i in range(0, len(datas), 32):
            for res in rpc1.submit_batch(datas[i:i + 32]):
                assert isinstance(res, dict), res
        deadline = t0 + timeout
        while rpc0.call("node.status")["record_count"] < before + len(datas):
            assert time.monotonic() < deadline, "honest records did not reach node 0"
            time.sleep(0.05)
        t1 = time.monotonic()
        if window is not None:
            window.append((t0, t1))
        return len(datas) / (t1 - t0)
    finally:
        rpc0.close()
        rpc1.close()


def forged(rec: Record) -> bytes:
    sig_at = rec.data.rindex(rec.signature)
    return rec.data[:sig_at] + bytes(64) + rec.data[sig_at + 64:]


async def flood(attacker: P2PNode, victims: list[str], payloads: list[bytes],
                limit_s: float, window: list[tuple[float, float]]) -> int:
    """Publish bad payloads until every victim dropped us (or time/limit runs out);
    the flood's (start, end) monotonic times are appended to ``window``."""
    sent, t0 = 0, time.monotonic()
    with trio.move_on_after(limit_s):
        for p in payloads:
            if not any(v in attacker.peers() for v in victims):
                break
            await attacker.gossip.publish_payload(p)
            sent += 1
            await trio.sleep(0.01)
    window.append((t0, time.monotonic()))
    return sent


async def half_open_and_oversized(attacker: P2PNode, victim: str, streams: int) -> list[Any]:
    """Open sync streams that never finish; one announces a 1 GiB frame."""
    held = []
    for i in range(streams):
        try:
            s = await attacker.host.raw.new_stream(ID.from_base58(victim), [SYNC_PROTOCOL])
        except Exception:
            break
        if i == 0:
            await s.write(b"\x80\x80\x80\x80\x04" + b"\x00" * 4096)  # varint 2**30
        elif i == 1:
            await s.write(b"\xff" * 10)  # an invalid varint
        held.append(s)
    return held


async def test_adversarial_peers(cluster_factory: Any, tmp_path: Path) -> None:
    c: Cluster = cluster_factory(2)
    # the harness's RPC client runs its own trio loop: call it from a thread
    await trio.to_thread.run_sync(c.start)
    await trio.to_thread.run_sync(c.wait_connected)
    net = c.genesis.network_id
    victims = [c.peer_id(0), c.peer_id(1)]
    # task seqs 1..BASELINE_RUNS; the first one's annotations are replayed below
    baseline = statistics.median([await trio.to_thread.run_sync(honest_rate, c, seq, b"base")
                                  for seq in range(1, BASELINE_RUNS + 1)])

    other = Genesis("other-network", c.genesis.validators)
    old = make_workload(net, 1, HONEST_ITEMS, tag=b"base")
    sybils = [SigningKey(bytes([0xA0 + i]) * 32) for i in range(MAX_SYBILS)]
    forker = SigningKey(b"\xF0" * 32)
    sent = 0
    flood_peers: list[str] = []
    results: dict[str, Any] = {}
    honest_window: list[tuple[float, float]] = []
    floods: list[tuple[float, float]] = []
    measured = trio.Event()
    with trio.fail_after(scale(150, 400)):
        async with trio.open_nursery() as nursery:
            async def measure() -> None:
                results["attack_rate"] = await trio.to_thread.run_sync(
                    partial(honest_rate, c, BASELINE_RUNS + 1, b"attack",
                            window=honest_window))
                measured.set()
            # half-open and oversized sync streams from a peer that stays within the rules
            async with open_attacker(tmp_path, SigningKey(b"\xE0" * 32), c.genesis) as slow:
                for addr in (c.addr(0), c.addr(1)):
                    await slow.connect(addr)
                held = await half_open_and_oversized(slow, victims[0], scale(24, 40))
                sent += len(held)
                # replays and a fork from one identity
                async with open_attacker(tmp_path, forker, c.genesis) as f:
                    for addr in (c.addr(0), c.addr(1)):
                        await f.connect(addr)
                    await trio.sleep(1.0)
                    for i in range(0, len(old.annotations), 64):
                        await f.gossip.publish_payload(
                            encode_batch([r.data for r in old.annotations[i:i + 64]]))
                        sent += 1
                    # an item of the task: admission control (issue 13) stores only
                    # annotations that can matter, so only those can be fork evidence
                    item = old.items[-1]
                    for label in ("cat", "dog"):
                        rec = sign_record(net, forker, 1, Annotation(old.task.cid, item, label))
                        await f.gossip.publish_payload(encode_batch([rec.data]))
                        sent += 1
                    await trio.sleep(1.0)
                # floods, one identity after another, the honest measurement from the
                # first flood on, until both are done
                for i, k in enumerate(sybils):
                    if i >= MIN_SYBILS and measured.is_set():
                        break
                    async with open_attacker(tmp_path, k, c.genesis) as a:
                        for addr in (c.addr(0), c.addr(1)):
                            await a.connect(addr)
                        await trio.sleep(0.5)
                        if i == 0:
                            nursery.start_soon(measure)
                        good = sign_record(net, k, 1, Annotation(old.task.cid, old.items[0],
                                                                 "cat"))
                        wrong = sign_record(other.network_id, k, 1,
                                            Annotation(old.task.cid, old.items[0], "cat"))
                        payloads = [encode_batch([good.data, forged(good)]),
                                    encode_batch([wrong.data]), b"\x92garbage",
                                    encode_batch([b"\x81\xa1k\xa4vote"])] * 30
                        # bounded by the payload count; the time limit only guards a hang
                        sent += await flood(a, victims, payloads[i % 4:], 120.0, floods)
                        flood_peers.append(a.peer_id)
                        with trio.move_on_after(30):  # the ban's disconnect is asynchronous
                            while any(v in a.peers() for v in victims):
                                await trio.sleep(0.05)
                        results.setdefault("still_connected", []).extend(
                            v for v in victims if v in a.peers())
                for s in held:
                    with trio.move_on_after(1):
                        await s.reset()
    attack_rate = results["attack_rate"]
    ratio = attack_rate / baseline
    [(h0, h1)] = honest_window
    flooded = sum(max(0.0, min(h1, e) - max(h0, s)) for s, e in floods)
    rpc0, rpc1 = HTTPRPC.from_home(c.home(0)), HTTPRPC.from_home(c.home(1))
    try:
        rejected = rejected_counts(rpc0.metrics())
        rejected1 = rejected_counts(rpc1.metrics())
        peers0 = {p["peer_id"] for p in rpc0.call("node.peers")["peers"]}
        evidence = [rpc.call("evidence.list")["evidence"] for rpc in (rpc0, rpc1)]
        counts = [rpc.call("node.status")["record_count"] for rpc in (rpc0, rpc1)]
        # honest nodes still work together after the attack
        honest_after = await trio.to_thread.run_sync(honest_rate, c, BASELINE_RUNS + 2,
                                                     b"after")
    finally:
        rpc0.close()
        rpc1.close()
    add(adversarial_messages=sent)
    note(attack_throughput_ratio=f"{ratio:.2f} ({attack_rate:.0f} vs {baseline:.0f} records/s;"
                                 f" after: {honest_after:.0f})")
    print(f"honest measurement {h1 - h0:.2f} s, from {h0 - floods[0][0]:.2f} s after the first "
          f"flood began to {floods[-1][1] - h1:.2f} s before the last ended; {len(floods)} "
          f"floods, flooding during {flooded:.2f} s of it ({flooded / (h1 - h0):.0%})")
    print(f"adversary: {sent} attack messages from {len(flood_peers) + 2} identities; honest "
          f"throughput {baseline:.0f} rec/s without, {attack_rate:.0f} during "
          f"(ratio {ratio:.2f}), {honest_after:.0f} after; rejected {rejected} / {rejected1};"
          f" still connected {results.get('still_connected')}, victims {victims}")
    assert not results.get("still_connected"), "a flooding attacker was not disconnected"
    assert not set(flood_peers) & peers0, "a banned attacker is still in node.peers"
    for reason in ("SignatureError", "WrongNetworkError", "FrameError"):
        assert rejected.get(reason, 0) >= 1, (reason, rejected)
    fork_author = forker.peer_id
    for ev in evidence:
        assert [e["kind"] for e in ev if e["author"] == fork_author] == ["fork"], evidence
    assert counts[0] == counts[1], counts
    # half-open streams from one peer must not lock honest peers out of sync
    busy = c.log_tail(1, 1_000_000).count("refused sync: busy")
    assert busy == 0, f"node 1 was refused sync {busy} times while an attacker held streams"
    # the ratio is "during the floods": the honest window lies inside them
    assert floods[0][0] <= h0 and h1 <= floods[-1][1], (honest_window, floods)
    if FULL:  # a timing claim: make faults only, never make test
        assert ratio >= MIN_RATIO, (f"honest throughput under attack is {ratio:.2f} of the rate "
                                    f"without attack (claim: at least {MIN_RATIO})")
