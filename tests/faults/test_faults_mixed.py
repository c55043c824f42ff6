"""Mixed attack (issue 13): every attack class at once against four real validators.

Four ``annot run`` processes. First an honest task (``ITEMS`` items, three
labels each) is labelled with nobody attacking: its rate is items final on
every node per second, from the first submission. Then, for ``ATTACK_S``
seconds, every attack class of the fault suite runs at once, each bounded in
count (the attackers come from the other scenarios):

- malformed ``/meshsub/1.1.0`` frames from fresh identities (``attack_edge``);
- large gossip: ~140 KB task records published while fresh peers join
  (``attack_gossip``'s interleaved-writes case);
- bitswap want floods of ``sendDontHave`` wants from slow readers (``attack_edge``);
- a fork split: one annotator, one seq, two labels, one to node 0 and one to node 2;
- Sybil volume: annotations from fresh keys for a task that does not exist;
- a Byzantine validator: votes signed with node 3's key, 3,000 entries, round 2^31;
- seq gaps: a peer serving by sync one author's records past a missing seq;
- RPC abuse: JSON nested 2,000 deep, bad cursors, a rebinding ``Host``.

During the attack the same size of honest task is labelled again, and once more
after it. Asserted: no node exits; the attacked rate is at least
``MIN_RATE_RATIO`` of the unattacked one (the mean of before and after: the
machine is shared and its load drifts); every node's RSS, sampled all along,
stays under ``MAX_RSS_MB``; and each store grows by no more than
:func:`store_bound`: the growth of the unattacked task (the honest records,
their votes and certificates), the fork variant and the large task records
anyone may publish, plus ``STORE_SLACK`` for SQLite pages and WAL. The configured pools (admission's
``pending_max`` records waiting for a task, bitswap want-lists) live in memory
and add nothing to disk; the RSS bound covers them. It runs under ``make faults``
only (``ANNOT_FAULTS_FULL=1``): a minute of attack, and a timing bound.
"""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio
from harness import Cluster
from libp2p.peer.id import ID

from node.core.config import Config
from node.p2p.frames import encode_batch
from node.p2p.host import open_host
from node.store.db import open_store
from protocol import cid as cidlib
from protocol.keys import Signer, SigningKey
from protocol.records import PREVOTE, Annotation, Task, Vote, VoteEntry, sign_record

from .common import HTTPRPC, RPCFailure, Workload, make_workload
from .summary import add, note
from .test_faults_attack_edge import attack_bitswap, attack_pubsub, attack_rpc, metric
from .test_faults_attack_records import _flood, open_attacker

pytestmark = pytest.mark.slow

ITEMS = 200  # a task long enough that one late vote does not decide its rate
ATTACK_S = float(os.environ.get("ANNOT_MIXED_ATTACK_S", "60"))  # shorter to bisect
MIN_RATE_RATIO = 0.8
MAX_RSS_MB = 250
STORE_SLACK = 4 << 20  # SQLite pages, indexes and WAL beyond the bounded records
PENDING_MAX = 1_000  # admission's pool, set in every node's config.toml
SYBIL_ROUNDS, SYBILS = 4, 1_000
BYZ_VOTES = 20
BIG_TASKS = 4
BIG_ITEMS = 4_000  # ~140 KB per task record
FORKER = SigningKey(b"\xf7" * 32)
GAP_AUTHOR = SigningKey(b"\xf9" * 32)
# to find which class costs what: e.g. ANNOT_MIXED_ATTACKS=sybil,seq_gap (default: all)
ONLY = [a for a in os.environ.get("ANNOT_MIXED_ATTACKS", "").split(",") if a]


def _store_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.glob("store.db*"))


def _write_admission(c: Cluster) -> None:
    for i in range(c.n):
        cfg = c.home(i) / "config.toml"
        text = cfg.read_text()
        assert "pending_max = 10000\n" in text
        cfg.write_text(text.replace("pending_max = 10000\n", f"pending_max = {PENDING_MAX}\n"))


class Run:
    """The cluster, one RPC connection per node, and what the attack left behind."""

    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.rpcs = [HTTPRPC.from_home(c.home(i)) for i in range(c.n)]
        self.rss_max = [0.0] * c.n
        self.sent: dict[str, int] = {}
        self.deadline = 0.0  # trio's clock
        self.deadline_wall = 0.0  # time.monotonic()

    def close(self) -> None:
        for r in self.rpcs:
            r.close()

    def sample_rss(self) -> None:
        for i in range(self.c.n):
            p = self.c.procs[i]
            assert p.poll() is None, f"node{i} exited:\n{self.c.log_tail(i)}"
            rss = psutil.Process(p.pid).memory_info().rss / 2**20
            self.rss_max[i] = max(self.rss_max[i], rss)

    def publish(self, w: Workload) -> None:
        """Publish ``w``'s task at node 1 and wait for it on every node."""
        for res in self.rpcs[1].submit_batch([w.task.data]):
            assert isinstance(res, dict), res
        task = cidlib.cid_to_str(w.task.cid)

        def known(r: HTTPRPC) -> bool:
            try:
                r.call("task.get", task=task)
            except RPCFailure:  # not here yet
                return False
            return True
        for _ in range(600):
            if all(known(r) for r in self.rpcs):
                return
            time.sleep(0.1)
        raise AssertionError(f"task {task} not on every node in 60 s")

    def label(self, w: Workload) -> float:
        """Submit ``w``'s annotations at node 1; seconds until every item is final on
        every node."""
        task = cidlib.cid_to_str(w.task.cid)
        t0 = time.monotonic()
        data = [a.data for a in w.annotations]
        for k in range(0, len(data), 64):
            for res in self.rpcs[1].submit_batch(data[k:k + 64]):
                assert isinstance(res, dict), res

        def final(r: HTTPRPC) -> bool:
            try:
                return bool(r.call("task.get", task=task)["items_final"] == len(w.items))
            except Exception:  # not there yet
                return False
        for _ in range(int(300 / 0.05)):
            if all(final(r) for r in self.rpcs):
                return time.monotonic() - t0
            time.sleep(0.05)
        raise AssertionError(f"task {task} not final on every node in 300 s")


def store_bound(unattacked_growth: int, fork_bytes: int, big_bytes: int) -> int:
    """The most a store may grow while the attacked honest task is labelled: what the
    same task grew it by unattacked, the fork variant and the valid large task records
    (anyone may publish a task; nothing labels it), plus SQLite's slack. Nothing else an
    attacker sends is stored; the pools (pending_max records, want-lists) are memory."""
    return unattacked_growth + fork_bytes + big_bytes + STORE_SLACK


# ---------------------------------------------------------------- the attack classes

async def pause(run: Run, seconds: float) -> None:
    """Sleep ``seconds``, but not past the end of the attack."""
    await trio.sleep(max(0.0, min(seconds, run.deadline - trio.current_time())))


async def pubsub_frames(run: Run, tmp: Path) -> None:
    threshold = Config.for_tests().gossip.invalid_threshold
    for k in range(8):
        if trio.current_time() > run.deadline:
            break
        victim = ID.from_base58(run.c.peer_id(k % 4))
        async with open_host(SigningKey(bytes([0xa0 + k]) * 32), Config.for_tests().p2p) as h:
            await h.connect(run.c.addr(k % 4))
            n = await attack_pubsub(h, victim, threshold + 5)
            run.sent["malformed_frames"] = run.sent.get("malformed_frames", 0) + n
        await pause(run, ATTACK_S / 8)


async def bitswap_floods(run: Run, tmp: Path) -> None:
    for k in range(4):
        if trio.current_time() > run.deadline:
            break
        victim = ID.from_base58(run.c.peer_id(k % 4))
        async with open_host(SigningKey(bytes([0xb0 + k]) * 32), Config.for_tests().p2p) as h:
            await h.connect(run.c.addr(k % 4))
            with trio.move_on_after(max(0.0, min(ATTACK_S / 4,
                                                 run.deadline - trio.current_time()))):
                await attack_bitswap(h, victim, 2)
                run.sent["bitswap_want_frames"] = run.sent.get("bitswap_want_frames", 0) + 2
                await trio.sleep(ATTACK_S / 4)  # a slow reader that never reads its replies


def sign_sybils(net: bytes) -> list[list[bytes]]:
    """Per round, ``SYBILS`` annotations from fresh keys for a task nobody published."""
    item = cidlib.cid_bytes(b"mixed ghost item")
    out = []
    for k in range(SYBIL_ROUNDS):
        ghost = cidlib.cid_bytes(b"a task nobody published %d" % k)
        out.append([sign_record(net, SigningKey((k << 20 | j).to_bytes(4, "big") * 8), 1,
                                Annotation(ghost, item, "cat")).data
                    for j in range(1, SYBILS + 1)])
    return out


async def sybils(run: Run, tmp: Path, rounds: list[list[bytes]]) -> None:
    for k, recs in enumerate(rounds):
        if trio.current_time() > run.deadline:
            break
        await _flood(tmp, SigningKey(bytes([0xc0 + k]) * 32), run.c.genesis,
                     [run.c.addr(i) for i in range(4)],
                     [encode_batch(recs[i:i + 64]) for i in range(0, len(recs), 64)])
        run.sent["sybil_records"] = run.sent.get("sybil_records", 0) + len(recs)
        await pause(run, ATTACK_S / (SYBIL_ROUNDS + 1))


def sign_byzantine(c: Cluster, task: bytes) -> list[bytes]:
    """Votes with node 3's validator key: 3,000 entries (genesis limit 256), round 2^31,
    items that do not exist."""
    return [sign_record(c.genesis.network_id, c.keys[3], 10_000 + s, Vote(
        PREVOTE, 2**31, tuple(VoteEntry(task, cidlib.cid_bytes(b"ghost %d %d" % (s, k)), "cat")
                              for k in range(3_000)))).data for s in range(BYZ_VOTES)]


async def byzantine_votes(run: Run, tmp: Path, byz: list[bytes]) -> None:
    await pause(run, 6.0)  # while the honest task is labelled
    await _flood(tmp, SigningKey(b"\xd0" * 32), run.c.genesis,
                 [run.c.addr(i) for i in range(3)], [encode_batch([d]) for d in byz])
    run.sent["byzantine_votes"] = len(byz)


async def fork_split(run: Run, tmp: Path, x: bytes, y: bytes) -> None:
    """One seq, two labels: ``x`` gossiped to node 0 and ``y`` to node 2 at once, by two
    peers each connected to one of them (the RPC refuses a reused seq, so a forker
    goes around it)."""
    async with trio.open_nursery() as nursery:
        for key, i, d in ((b"\xd4", 0, x), (b"\xd5", 2, y)):
            nursery.start_soon(_flood, tmp, SigningKey(key * 32), run.c.genesis,
                               [run.c.addr(i)], [encode_batch([d])])
    run.sent["fork_variants"] = 2


async def large_gossip(run: Run, tmp: Path, tasks: list[bytes]) -> None:
    """Big task records published while fresh peers join node 0 (finding 2)."""
    async with open_attacker(tmp, SigningKey(b"\xd1" * 32), run.c.genesis) as a:
        for i in range(4):
            await a.connect(run.c.addr(i))
        await trio.sleep(1.0)
        async with trio.open_nursery() as nursery:
            async def join(k: int) -> None:
                await trio.sleep(0.2 * k)
                async with open_attacker(tmp, SigningKey(bytes([0xd8 + k]) * 32),
                                         run.c.genesis) as joiner:
                    await joiner.connect(run.c.addr(0))
                    await trio.sleep(3.0)
            for k in range(3):
                nursery.start_soon(join, k)
            for d in tasks:
                a.publish_nowait(d)
                await trio.sleep(0.3)
        run.sent["large_task_records"] = len(tasks)
        await trio.sleep(3.0)


async def seq_gap_server(run: Run, tmp: Path) -> None:
    """A peer holding one author's records past a missing seq; every node syncs from it
    every second for the whole attack (the records name a task nobody has: the pool)."""
    net = run.c.genesis.network_id
    ghost = cidlib.cid_bytes(b"the gap author's task")
    recs = [sign_record(net, Signer(GAP_AUTHOR), s, Annotation(
        ghost, cidlib.cid_bytes(b"gap %d" % s), "cat")) for s in range(1, 201) if s != 3]
    key = SigningKey(b"\xd2" * 32)
    store = open_store(tmp / f"attacker-{key.peer_id[-6:]}.db", durable=False)  # its store
    store.save_records(recs)
    store.close()
    async with open_attacker(tmp, key, run.c.genesis) as a:
        for i in range(4):
            await a.connect(run.c.addr(i))
        await trio.sleep_until(run.deadline)
        run.sent["seq_gap_records_served"] = a.counters.sync_served


def rpc_abuse(run: Run) -> None:
    for k in range(int(ATTACK_S / 2)):
        if time.monotonic() > run.deadline_wall:
            break
        attack_rpc(run.c, k % 4)
        run.sent["rpc_abuse_requests"] = run.sent.get("rpc_abuse_requests", 0) + 4
        time.sleep(2.0)


# ---------------------------------------------------------------- the scenario

async def test_mixed_attack_keeps_honest_work_final(cluster_factory: Any,
                                                    tmp_path: Path) -> None:
    c: Cluster = cluster_factory(4)
    _write_admission(c)
    await trio.to_thread.run_sync(c.start)
    await trio.to_thread.run_sync(c.wait_connected)
    net = c.genesis.network_id
    homes = [c.home(i) for i in range(4)]
    run = Run(c)
    try:
        # 1. unattacked: the honest rate and how much the honest task grows each store
        size0 = [_store_bytes(h) for h in homes]
        calm = make_workload(net, 1, ITEMS, tag=b"mixed calm")
        await trio.to_thread.run_sync(run.publish, calm)
        calm_s = await trio.to_thread.run_sync(run.label, calm)
        await trio.sleep(3.0)  # the tally and its votes
        size1 = [_store_bytes(h) for h in homes]
        grown = [b - a for a, b in zip(size0, size1, strict=True)]
        run.sample_rss()

        # 2. the same size of task under every attack at once
        hot = make_workload(net, 2, ITEMS, tag=b"mixed attacked")
        x = sign_record(net, FORKER, 1, Annotation(hot.task.cid, hot.items[0], "cat")).data
        y = sign_record(net, FORKER, 1, Annotation(hot.task.cid, hot.items[0], "dog")).data
        big_key = SigningKey(b"\xd3" * 32)
        big = [sign_record(net, big_key, s, Task(f"big {s}", ("a", "b"), tuple(
            cidlib.cid_bytes(b"big %d %d" % (s, k)) for k in range(BIG_ITEMS)), 3, 1, 1000)).data
            for s in range(1, BIG_TASKS + 1)]
        # signed ahead: the attackers share this process (and its GIL) with the client
        sybil, byz = sign_sybils(net), sign_byzantine(c, hot.task.cid)
        hot_s = 0.0
        await trio.to_thread.run_sync(run.publish, hot)
        t_attack = time.monotonic()
        run.deadline, run.deadline_wall = trio.current_time() + ATTACK_S, t_attack + ATTACK_S
        with trio.fail_after(ATTACK_S + 180):
            async with trio.open_nursery() as nursery:
                attacks: dict[str, Any] = {
                    "pubsub": partial(pubsub_frames, run, tmp_path),
                    "bitswap": partial(bitswap_floods, run, tmp_path),
                    "seq_gap": partial(seq_gap_server, run, tmp_path),
                    "sybil": partial(sybils, run, tmp_path, sybil),
                    "byzantine": partial(byzantine_votes, run, tmp_path, byz),
                    "large_gossip": partial(large_gossip, run, tmp_path, big),
                    "rpc": partial(trio.to_thread.run_sync, rpc_abuse, run)}
                for name in ONLY or attacks:  # ANNOT_MIXED_ATTACKS=none: no attack at all
                    if name == "none":
                        continue
                    nursery.start_soon(attacks[name])

                async def sample() -> None:
                    while trio.current_time() < run.deadline:
                        await trio.to_thread.run_sync(run.sample_rss)
                        await trio.sleep(0.5)
                nursery.start_soon(sample)
                # the forker splits an item of the honest task before its labels come
                # (the fork rule then leaves it out everywhere; a fork that lands while
                # an item is being decided delays that item by the evidence's trip)
                nursery.start_soon(fork_split, run, tmp_path, x, y)
                await trio.sleep(5.0)  # every attacker at work
                hot_s = await trio.to_thread.run_sync(run.label, hot)
        attack_s = time.monotonic() - t_attack
        await trio.sleep(3.0)
        run.sample_rss()
        size2 = [_store_bytes(h) for h in homes]
        r = run.rpcs
        kinds = [await trio.to_thread.run_sync(lambda q=q: q.call("node.status")) for q in r]
        evidence = [await trio.to_thread.run_sync(lambda q=q: q.call("evidence.list"))
                    for q in r]
        peers = [await trio.to_thread.run_sync(lambda q=q: q.call("node.peers")) for q in r]
        metrics = [await trio.to_thread.run_sync(q.metrics) for q in r]
        # 3. unattacked again: the machine's load drifts (it is shared), so the reference
        # rate is the mean of the unattacked runs before and after the attack
        after = make_workload(net, 3, ITEMS, tag=b"mixed calm after")
        await trio.to_thread.run_sync(run.publish, after)
        after_s = await trio.to_thread.run_sync(run.label, after)
        run.sample_rss()
    finally:
        run.close()
    calm_rate, hot_rate = (ITEMS / calm_s + ITEMS / after_s) / 2, ITEMS / hot_s
    growth = [b - a for a, b in zip(size1, size2, strict=True)]
    bounds = [store_bound(g, len(x), sum(map(len, big))) for g in grown]
    bans = sum(metric(t, "annot_p2p_bans_total") for t in metrics)
    charged = sum(metric(t, "annot_p2p_faults_total") for t in metrics)
    figures = [
        f"honest task of {ITEMS} items: unattacked {calm_rate:.1f} items/s (before "
        f"{calm_s:.1f}s, after {after_s:.1f}s), attacked {hot_rate:.1f} items/s "
        f"({hot_s:.1f}s): ratio {hot_rate / calm_rate:.2f}",
        f"attack {attack_s:.0f}s: " + ", ".join(f"{k} {v:,}" for k, v in sorted(run.sent.items())),
        "RSS max MB per node: " + ", ".join(f"{m:.0f}" for m in run.rss_max),
        "store growth under attack MiB per node: " + ", ".join(
            f"{g / 2**20:.2f} (bound {b / 2**20:.2f})" for g, b in zip(growth, bounds,
                                                                       strict=True)),
        f"offenders: {charged:.0f} faults charged, {bans:.0f} bans (all nodes)",
    ]
    for line in figures:
        print(f"[mixed] {line}")
    add(adversarial_messages=sum(run.sent.values()))
    note(mixed_attack=f"rate ratio {hot_rate / calm_rate:.2f} ({calm_rate:.1f} -> "
         f"{hot_rate:.1f} items/s), RSS max {max(run.rss_max):.0f} MB, store growth max "
         f"{max(growth) / 2**20:.2f} MiB")
    for i, st in enumerate(kinds):
        by_kind = st["records_by_kind"]
        # the honest annotations of both tasks and one fork variant; no Sybil, no gap record
        assert by_kind.get("annotation") == 2 * 3 * ITEMS + 1, (i, by_kind)
        assert by_kind.get("task") == 2 + BIG_TASKS, (i, by_kind)
        assert [e["kind"] for e in evidence[i]["evidence"]
                if e["author"] == FORKER.peer_id] == ["fork"], evidence[i]
        held = {p["peer_id"] for p in peers[i]["peers"]}
        assert {c.peer_id(j) for j in range(4) if j != i} <= held, (i, held)
    assert bans >= 1 and charged >= 1, figures
    assert max(run.rss_max) <= MAX_RSS_MB, figures
    for g, b in zip(growth, bounds, strict=True):
        assert g <= b, figures
    assert hot_rate >= MIN_RATE_RATIO * calm_rate, figures
