"""Crash: SIGKILL a validator at random moments of heavy ingest and voting.

Two validators (both needed for a quorum, so every item is voted on again
and again across the kills). Node 0 takes pre-signed annotations over RPC in
JSON-RPC batches from a thread while it votes; the test kills it after a
random delay, restarts it, resubmits what was not acknowledged, and repeats.
At the end: every acknowledged record is in node 0's store, no store holds a
fork by node 0's key, node 0 never cast two different votes for one
(task, item, round, phase), no evidence anywhere, both stores pass
``integrity_check``, and both nodes finalized every item identically.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Cluster

from node.store.db import open_store
from protocol import cid as cidlib
from protocol.records import Vote, decode_record

from .common import HTTPRPC, RPCFailure, make_workload
from .summary import add, note, scale

ITEMS = 12
BATCH = 16


def submit_until_error(home: Path, todo: list[bytes], acked: set[bytes],
                       errors: list[str]) -> None:
    """Submit ``todo`` in batches; record acknowledgements; stop at the first failure."""
    try:
        rpc = HTTPRPC.from_home(home, timeout=5.0)
    except OSError as exc:
        errors.append(repr(exc))
        return
    try:
        for i in range(0, len(todo), BATCH):
            chunk = todo[i:i + BATCH]
            for data, res in zip(chunk, rpc.submit_batch(chunk), strict=True):
                if isinstance(res, RPCFailure):
                    errors.append(res.message)  # refused: a clean error, not acknowledged
                else:
                    assert res["cid"] == cidlib.cid_to_str(cidlib.cid_bytes(data))
                    acked.add(data)
    except Exception as exc:
        errors.append(type(exc).__name__)
    finally:
        rpc.close()


def interleave(w: Any) -> list[bytes]:
    by_item: dict[bytes, list[bytes]] = {}
    for r in w.annotations:
        by_item.setdefault(r.body.item, []).append(r.data)
    return [w.task.data] + [d for item in w.items for d in by_item[item]]


def conflicting_votes(datas: list[bytes], network_id: bytes, author: bytes) -> list[str]:
    seen: dict[tuple[bytes, bytes, int, int], str | None] = {}
    out = []
    for d in datas:
        r = decode_record(d, network_id, verify=False)
        if r.author != author or not isinstance(r.body, Vote):
            continue
        for e in r.body.entries:
            k = (e.task, e.item, r.body.round, r.body.phase)
            if k in seen and seen[k] != e.value:
                out.append(f"{k}: {seen[k]!r} vs {e.value!r}")
            seen.setdefault(k, e.value)
    return out


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except Exception:
            pass
        time.sleep(0.5)
    return False


def test_sigkill_during_ingest_and_voting(cluster_factory: Any) -> None:
    cycles_wanted = scale(5, 50)  # a count, not a time budget: a slow machine runs them all
    seed = int(os.environ.get("ANNOT_FUZZ_SEED") or 20240517)
    print(f"crash: kill times from seed {seed} (replay: ANNOT_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    c: Cluster = cluster_factory(2)
    net = c.genesis.network_id
    me = c.keys[0].public_key
    c.start()
    c.wait_connected()
    acked: set[bytes] = set()
    pending: list[bytes] = []
    errors: list[str] = []
    all_items = 0
    t0 = time.monotonic()
    cycles = 0
    while cycles < cycles_wanted:
        w = make_workload(net, cycles + 1, ITEMS)
        all_items += ITEMS
        todo = pending + interleave(w)
        th = threading.Thread(target=submit_until_error, args=(c.home(0), todo, acked, errors),
                              daemon=True)
        th.start()
        time.sleep(rng.uniform(0.05, 1.5))
        os.killpg(c.procs[0].pid, signal.SIGKILL)
        th.join(15)
        assert not th.is_alive(), "the submitting thread hung after the kill"
        c.kill(0)
        cycles += 1
        pending = [d for d in todo if d not in acked]
        c.start(0)
    elapsed = time.monotonic() - t0
    # deliver the rest, then let both validators finish every task
    submit_until_error(c.home(0), pending, acked, errors)
    assert not [d for d in pending if d not in acked], f"final submit failed: {errors[-3:]}"

    def finished() -> bool:
        return all(c.status(i)["final_items"] == all_items for i in (0, 1))
    done = wait_for(finished, scale(60, 180))
    ev = [c.rpc(i, "evidence.list")["evidence"] for i in (0, 1)]
    finals = [c.status(i)["final_items"] for i in (0, 1)]
    for i in (0, 1):
        c.stop(i)
    report: list[str] = []
    for i in (0, 1):
        store = open_store(c.home(i) / "store.db", readonly=True)
        try:
            assert store.integrity_check() == [], f"node{i} store is corrupt"
            own_forks = [a for a, b in store.forks()
                         if decode_record(a, net, verify=False).author == me]
            assert not own_forks, f"node{i} holds {len(own_forks)} forks by node0's key"
            votes = [d for _, d in store.page_of_kind("vote", 0, 1_000_000)]
            bad = conflicting_votes(votes, net, me)
            assert not bad, f"node0 cast conflicting votes (seen by node{i}): {bad[:3]}"
            if i == 0:
                lost = [d for d in acked if store.get(cidlib.cid_bytes(d)) is None]
                assert not lost, f"{len(lost)} of {len(acked)} acknowledged records lost"
            report.append(f"node{i}: {store.count()} records, {len(votes)} vote records")
        finally:
            store.close()
    assert ev == [[], []], f"evidence after crashes: {ev}"
    add(crash_cycles=cycles, records_checked=len(acked))
    note(crash_seconds=f"{cycles} cycles in {elapsed:.0f}s; " + "; ".join(report))
    print(f"crash: {cycles} cycles in {elapsed:.0f}s, {len(acked)} acknowledged records kept, "
          f"finals {finals} of {all_items}; {'; '.join(report)}")
    assert done, f"items final {finals}, expected {all_items} on both nodes"
