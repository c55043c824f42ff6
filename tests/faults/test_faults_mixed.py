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

The p2p attackers run in a process of their own at nice 19 (``mixed_attackers``:
an attacker's CPU is its own machine's, not the nodes'); the RPC abuse is a
thread of this process. The honest rate is measured the same way with and
without attack: tasks of ``ITEMS`` items are labelled back to back (each
published, labelled at node 1, final on every node) for ``CALM_S`` seconds before
the attack, for the whole attack, and for ``CALM_S`` seconds after it; a rate is
items over labelling time. Asserted: no node exits; every attack class sent all
it was asked to; the attacked rate is at least ``MIN_RATE_RATIO`` of the
unattacked one (before and after together: the machine is shared and its load
drifts); every node's RSS, sampled all along, stays under ``MAX_RSS_MB``; and
each store grows by no more than :func:`store_bound`: the growth of as many
unattacked tasks (the honest records, their votes, certificates and tallies),
the fork variant and the large task records anyone may publish, plus
``STORE_SLACK`` for SQLite pages and WAL. The configured pools (admission's ``pending_max`` records
waiting for a task, bitswap want-lists) live in memory and add nothing to disk;
the RSS bound covers them. It runs under ``make faults``
only (``ANNOT_FAULTS_FULL=1``): a minute of attack, and a timing bound.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import trio
from harness import Cluster

from protocol import cid as cidlib
from protocol.keys import SigningKey
from protocol.records import Annotation, Task, sign_record

from .common import HTTPRPC, RPCFailure, Workload, make_workload
from .mixed_attackers import BYZ_VOTES, CLASSES, SYBIL_ROUNDS, SYBILS, attacker_dir
from .summary import add, note
from .test_faults_attack_edge import attack_rpc, metric

pytestmark = pytest.mark.slow

ITEMS = 200  # a task long enough that one late vote does not decide its rate
CALM_S = 20.0  # honest tasks labelled back to back before the attack, and again after
ATTACK_S = float(os.environ.get("ANNOT_MIXED_ATTACK_S", "60"))  # shorter to bisect
MIN_RATE_RATIO = 0.8
MAX_RSS_MB = 250
STORE_SLACK = 4 << 20  # SQLite pages, indexes and WAL beyond the bounded records
PENDING_MAX = 1_000  # admission's pool, set in every node's config.toml
BIG_TASKS = 4
BIG_ITEMS = 4_000  # ~140 KB per task record
FORKER = SigningKey(b"\xf7" * 32)
TESTS = Path(__file__).resolve().parents[1]
# to find which class costs what: e.g. ANNOT_MIXED_ATTACKS=sybil,seq_gap (default: all;
# "none": no attacker at all, "rpc": the RPC abuse, or any of mixed_attackers.CLASSES)
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
        self.submit_s: list[float] = []  # per labelled task: seconds to submit its labels
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
        self.submit_s.append(time.monotonic() - t0)

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


@dataclass
class Labelled:
    """Honest tasks labelled back to back: how many, their items and labelling time."""

    tasks: int = 0
    items: int = 0
    seconds: float = 0.0  # from each task's first submission to final on every node
    times: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.items / self.seconds


def label_for(run: Run, seq: int, seconds: float, tag: bytes,
              first: Workload | None = None) -> tuple[Labelled, int]:
    """Label tasks of ``ITEMS`` items one after another (each published, labelled,
    final on every node) until ``seconds`` have passed; ``first`` (published already)
    goes first. Returns what was labelled and the next free task seq."""
    got = Labelled()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if first is not None:
            w, first = first, None
        else:
            w = make_workload(run.c.genesis.network_id, seq, ITEMS, tag=tag)
            seq += 1
            run.publish(w)
        t = run.label(w)
        got.tasks, got.items, got.seconds = got.tasks + 1, got.items + ITEMS, got.seconds + t
        got.times.append(t)
    return got, seq


def _has_task(r: HTTPRPC, data: bytes) -> bool:
    try:
        r.call("task.get", task=cidlib.cid_to_str(cidlib.cid_bytes(data)))
    except RPCFailure:
        return False
    return True


def store_bound(unattacked_growth: int, fork_bytes: int, big_bytes: int) -> int:
    """The most a store may grow while the attacked honest tasks are labelled: what the
    same tasks grew it by unattacked, the fork variant and the valid large task records
    (anyone may publish a task; nothing labels it), plus SQLite's slack. Nothing else an
    attacker sends is stored; the pools (pending_max records, want-lists) are memory."""
    return unattacked_growth + fork_bytes + big_bytes + STORE_SLACK


# ---------------------------------------------------------------- the attackers

def start_attackers(run: Run, tmp: Path, stores: Path, hot: Workload, x: bytes, y: bytes,
                    big: list[bytes]) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """Start the p2p attackers (``mixed_attackers``) in a process of their own at nice
    19, their stores in ``stores``; return it, the file it writes when its attack
    begins and the one with what it sent."""
    c = run.c
    gpath, ready, out = tmp / "mixed-genesis.json", tmp / "attack.ready", tmp / "attack.out"
    gpath.write_text(c.genesis.to_json())
    # the fork split always: the scenario's evidence checks expect it
    only = sorted({*(a for a in ONLY or CLASSES if a in CLASSES), "fork"})
    spec = {"addrs": [c.addr(i) for i in range(4)], "peer_ids": [c.peer_id(i) for i in range(4)],
            "genesis": str(gpath), "stores": str(stores),
            "attack_s": ATTACK_S, "only": only,
            "task": hot.task.cid.hex(), "byz_seed": c.keys[3].seed.hex(),
            "big": [d.hex() for d in big], "fork": [x.hex(), y.hex()],
            "ready": str(ready), "out": str(out)}
    (tmp / "attack.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    proc = subprocess.Popen([sys.executable, "-m", "tests.faults.mixed_attackers",
                             str(tmp / "attack.json")], cwd=TESTS.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "attack.log", "wb"))
    return proc, ready, out


def log_tail(tmp: Path) -> str:
    return (tmp / "attack.log").read_text()[-3000:]


def rpc_abuse(run: Run) -> None:
    for k in range(int(ATTACK_S / 2)):
        if time.monotonic() > run.deadline_wall:
            break
        attack_rpc(run.c, k % 4)
        run.sent["rpc_abuse_requests"] = run.sent.get("rpc_abuse_requests", 0) + 4
        time.sleep(2.0)


# ---------------------------------------------------------------- the scenario

@pytest.fixture
def quiet_client() -> Iterator[None]:
    """The honest client runs in this test process, which carries the heap of every test
    before it in ``make faults`` (the fuzz test's, for one): collecting it mid-attack
    paused the client's submissions, which is not what the test measures. That heap is
    frozen out of the collector for the test, and pages other tests left dirty are
    written out before the first measurement."""
    gc.collect()
    gc.freeze()
    os.sync()
    try:
        yield
    finally:
        gc.unfreeze()


async def test_mixed_attack_keeps_honest_work_final(cluster_factory: Any, tmp_path: Path,
                                                    quiet_client: None) -> None:
    c: Cluster = cluster_factory(4)
    _write_admission(c)
    await trio.to_thread.run_sync(c.start)
    await trio.to_thread.run_sync(c.wait_connected)
    net = c.genesis.network_id
    homes = [c.home(i) for i in range(4)]

    run = Run(c)
    seq = 1  # the next honest task's seq
    try:
        # 1. unattacked: the honest rate, and how much the honest tasks grow each store
        size0 = [_store_bytes(h) for h in homes]
        calm, seq = await trio.to_thread.run_sync(label_for, run, seq, CALM_S, b"calm")
        await trio.sleep(3.0)  # the last tally and its votes
        size1 = [_store_bytes(h) for h in homes]
        per_task = [(b - a) / calm.tasks for a, b in zip(size0, size1, strict=True)]
        run.sample_rss()
        calm_metrics = [await trio.to_thread.run_sync(q.metrics) for q in run.rpcs]

        # 2. the same, back to back, for the whole attack (every class at once)
        hot = make_workload(net, seq, ITEMS, tag=b"attacked")  # its first item is forked
        seq += 1
        x = sign_record(net, FORKER, 1, Annotation(hot.task.cid, hot.items[0], "cat")).data
        y = sign_record(net, FORKER, 1, Annotation(hot.task.cid, hot.items[0], "dog")).data
        big_key = SigningKey(b"\xd3" * 32)
        big = [sign_record(net, big_key, s, Task(f"big {s}", ("a", "b"), tuple(
            cidlib.cid_bytes(b"big %d %d" % (s, k)) for k in range(BIG_ITEMS)), 3, 1, 1000)).data
            for s in range(1, BIG_TASKS + 1)]
        await trio.to_thread.run_sync(run.publish, hot)
        stores = attacker_dir(tmp_path)
        proc, ready, out = start_attackers(run, tmp_path, stores, hot, x, y, big)
        try:
            with trio.fail_after(60):  # its imports and signing
                while not ready.exists():
                    assert proc.poll() is None, log_tail(tmp_path)
                    await trio.sleep(0.1)
            t_attack = time.monotonic()
            run.deadline, run.deadline_wall = trio.current_time() + ATTACK_S, t_attack + ATTACK_S
            with trio.fail_after(ATTACK_S + 180):
                async with trio.open_nursery() as nursery:
                    if "rpc" in (ONLY or ["rpc"]):
                        nursery.start_soon(trio.to_thread.run_sync, rpc_abuse, run)

                    async def sample() -> None:
                        while trio.current_time() < run.deadline:
                            await trio.to_thread.run_sync(run.sample_rss)
                            await trio.sleep(0.5)
                    nursery.start_soon(sample)
                    # the forker splits the first task's first item before its labels
                    # come (the fork rule then leaves it out everywhere)
                    await trio.sleep(2.0)
                    attacked, seq = await trio.to_thread.run_sync(
                        lambda: label_for(run, seq, ATTACK_S - 2.0, b"attacked", hot))
                with trio.move_on_after(120):  # every class ends by itself (OVERRUN_S)
                    while not out.exists():
                        assert proc.poll() in (None, 0), log_tail(tmp_path)
                        await trio.sleep(0.2)
                assert out.exists(), ("the attackers did not finish", log_tail(tmp_path))
                # the attacker's own exit is not under test: a host of its may hang
                # closing (py-libp2p); it gets 10 s, then is ended in ``finally``
                with trio.move_on_after(10):
                    while proc.poll() is None:
                        await trio.sleep(0.2)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            shutil.rmtree(stores, ignore_errors=True)
        run.sent.update(json.loads(out.read_text()))
        attack_s = time.monotonic() - t_attack
        await trio.sleep(3.0)
        run.sample_rss()
        size2 = [_store_bytes(h) for h in homes]
        r = run.rpcs
        evidence = [await trio.to_thread.run_sync(lambda q=q: q.call("evidence.list"))
                    for q in r]
        peers = [await trio.to_thread.run_sync(lambda q=q: q.call("node.peers")) for q in r]
        metrics = [await trio.to_thread.run_sync(q.metrics) for q in r]
        # 3. unattacked again: the machine's load drifts (it is shared), so the reference
        # rate is that of the unattacked runs before and after the attack together
        after, seq = await trio.to_thread.run_sync(label_for, run, seq, CALM_S, b"after")
        run.sample_rss()
        # every node holds every honest record and the large tasks by now (20 s after
        # the attack); which large tasks each has, should one be missing
        kinds = [await trio.to_thread.run_sync(lambda q=q: q.call("node.status")) for q in r]
        big_held = [[s for s, d in enumerate(big, 1) if _has_task(q, d)] for q in r]
    finally:
        run.close()
    calm_rate = (calm.items + after.items) / (calm.seconds + after.seconds)
    hot_rate = attacked.rate
    growth = [b - a for a, b in zip(size1, size2, strict=True)]
    bounds = [store_bound(int(attacked.tasks * g), len(x), sum(map(len, big)))
              for g in per_task]
    bans = sum(metric(t, "annot_p2p_bans_total") for t in metrics)
    charged = sum(metric(t, "annot_p2p_faults_total") for t in metrics)

    def spread(lab: Labelled) -> str:
        ts = sorted(lab.times)
        return f"{lab.tasks} tasks, {ts[0]:.1f}-{ts[-1]:.1f} s each"
    figures = [
        f"honest tasks of {ITEMS} items back to back: unattacked {calm_rate:.1f} items/s "
        f"(before: {calm.rate:.1f}, {spread(calm)}; after: {after.rate:.1f}, "
        f"{spread(after)}), attacked {hot_rate:.1f} items/s ({spread(attacked)}): "
        f"ratio {hot_rate / calm_rate:.2f}",
        f"attack {attack_s:.0f}s: " + ", ".join(f"{k} {v:,}" for k, v in sorted(run.sent.items())),
        "RSS max MB per node: " + ", ".join(f"{m:.0f}" for m in run.rss_max),
        "store growth under attack MiB per node: " + ", ".join(
            f"{g / 2**20:.2f} (bound {b / 2**20:.2f})" for g, b in zip(growth, bounds,
                                                                       strict=True)),
        f"offenders: {charged:.0f} faults charged, {bans:.0f} bans (all nodes)",
        "per node, by the attack's end: gossip messages in / records by sync / gossip "
        "drops (to validators, to others, ingest): " + "; ".join(
            f"{metric(t, 'annot_gossip_messages_total', direction='in'):.0f} / "
            f"{metric(t, 'annot_sync_records_total'):.0f} / "
            + ", ".join(f"{metric(t, 'annot_gossip_drops_total', where=w):.0f}"
                        for w in ("to_validator", "to_other", "ingest")) for t in metrics),
    ]
    figures.append("records served by sync per node, to validators / others: " + ", ".join(
        f"{metric(t, 'annot_sync_served_records_total', peer='validator'):.0f} / "
        f"{metric(t, 'annot_sync_served_records_total', peer='other'):.0f}" for t in metrics))
    figures.append("gossip copies dropped while their message was in validation, per node "
                   "(calm / attack): " + ", ".join(
                       f"{metric(a, 'annot_gossip_concurrent_duplicates_total'):.0f} / "
                       f"{metric(b, 'annot_gossip_concurrent_duplicates_total') - metric(a, 'annot_gossip_concurrent_duplicates_total'):.0f}"  # noqa: E501
                       for a, b in zip(calm_metrics, metrics, strict=True)))
    figures.append("task seconds, before / attacked / after: " + " / ".join(
        " ".join(f"{t:.1f}" for t in lab.times) for lab in (calm, attacked, after)))

    def lag(texts: list[str], le: str) -> list[float]:
        # event-loop lag probes over ``le`` seconds, and all probes, per node
        return [metric(t, "annot_event_loop_lag_seconds_count")
                - metric(t, "annot_event_loop_lag_seconds_bucket", le=le) for t in texts]
    for phase, (a, b) in {"calm": (None, calm_metrics), "attack": (calm_metrics, metrics)}.items():
        for le in ("0.025", "0.1"):
            late = [x - (y if a else 0) for x, y in zip(lag(b, le), lag(a or b, le),
                                                         strict=True)]
            figures.append(f"event loop woke > {float(le) * 1000:.0f} ms late ({phase}), per "
                           "node: " + ", ".join(f"{x:.0f}" for x in late))
    for phase, (a, b) in {"calm": (None, calm_metrics), "attack": (calm_metrics, metrics)}.items():
        pauses = []
        for i, t in enumerate(b):
            n = sum(metric(t, "annot_gc_pause_seconds_count", generation=g) for g in "012")
            long_ = n - sum(metric(t, "annot_gc_pause_seconds_bucket", generation=g, le="0.025")
                            for g in "012")
            total = sum(metric(t, "annot_gc_pause_seconds_sum", generation=g) for g in "012")
            if a:
                at = a[i]
                n -= sum(metric(at, "annot_gc_pause_seconds_count", generation=g) for g in "012")
                long_ -= sum(metric(at, "annot_gc_pause_seconds_count", generation=g)
                             - metric(at, "annot_gc_pause_seconds_bucket", generation=g,
                                      le="0.025") for g in "012")
                total -= sum(metric(at, "annot_gc_pause_seconds_sum", generation=g)
                             for g in "012")
            pauses.append(f"{n:.0f} ({long_:.0f} over 25 ms, {total:.2f} s)")
        figures.append(f"garbage collections ({phase}), per node: " + ", ".join(pauses))
    figures.append("gossip publishes waited for peers' queues, s per node (calm / attack): "
                   + ", ".join(f"{metric(a, 'annot_gossip_publish_wait_seconds_total'):.1f} / "
                               f"{metric(b, 'annot_gossip_publish_wait_seconds_total') - metric(a, 'annot_gossip_publish_wait_seconds_total'):.1f}"  # noqa: E501
                               for a, b in zip(calm_metrics, metrics, strict=True)))
    figures.append("items final in a later round than the first, per node: " + ", ".join(
        f"{metric(t, 'annot_items_final_after_round_0_total'):.0f} of "
        f"{metric(t, 'annot_items_final_total'):.0f}" for t in metrics))
    figures.append("of which submitting the labels: " + " ".join(
        f"{t:.2f}" for t in run.submit_s))
    for line in figures:
        print(f"[mixed] {line}")
    add(adversarial_messages=sum(run.sent.values()))
    note(mixed_attack=f"rate ratio {hot_rate / calm_rate:.2f} ({calm_rate:.1f} -> "
         f"{hot_rate:.1f} items/s), RSS max {max(run.rss_max):.0f} MB, store growth max "
         f"{max(growth) / 2**20:.2f} MiB")
    for i, st in enumerate(kinds):
        by_kind = st["records_by_kind"]
        # the honest annotations of the tasks and one fork variant; no Sybil, no gap record
        honest = calm.tasks + attacked.tasks + after.tasks
        assert by_kind.get("annotation") == honest * 3 * ITEMS + 1, (i, by_kind)
        assert by_kind.get("task") == honest + BIG_TASKS, (i, by_kind, big_held)
        assert [e["kind"] for e in evidence[i]["evidence"]
                if e["author"] == FORKER.peer_id] == ["fork"], evidence[i]
        held = {p["peer_id"] for p in peers[i]["peers"]}
        assert {c.peer_id(j) for j in range(4) if j != i} <= held, (i, held)
    assert bans >= 1 and charged >= 1, figures
    expected = {"sybil": ("sybil_records", SYBIL_ROUNDS * SYBILS),
                "byzantine": ("byzantine_votes", BYZ_VOTES), "fork": ("fork_variants", 2),
                "large_gossip": ("large_task_records", BIG_TASKS),
                "pubsub": ("malformed_frames", None), "bitswap": ("bitswap_want_frames", None),
                "seq_gap": ("seq_gap_records_served", None)}
    overran = [k for k in run.sent if k.startswith("overran:")]
    assert not overran, (overran, log_tail(tmp_path))
    for cls in ONLY or CLASSES:  # each attack class sent everything it was asked to
        if cls in expected:
            what, want = expected[cls]
            got = run.sent.get(what, 0)
            assert (got == want) if want is not None else got > 0, (cls, what, got, figures)
    assert max(run.rss_max) <= MAX_RSS_MB, figures
    for g, b in zip(growth, bounds, strict=True):
        assert g <= b, figures
    assert hot_rate >= MIN_RATE_RATIO * calm_rate, figures
