"""Benchmark 4, finality: 4 validators, a task of 2,000 items with redundancy 3.

node0 publishes the task (``task.create``); 3 annotators' labels (6,000
annotations, pre-signed here, item by item) are submitted to node0 in JSON-RPC
batches as fast as it accepts them. An item's last annotation is written when
the batch carrying it is sent; it is final on every node when its certificate
row is committed in all 4 stores (read read-only at 20 Hz). Items final per
second = items / (last item final everywhere - first annotation sent).

Baseline: the same task and annotations on a one-validator network (one
process: no gossip, no vote exchange) — what the node's own pipeline costs.
Where the time goes (:mod:`tests.bench.phases`): five phases per item and node,
annotation spread, proposal, prevote, precommit, certificate, each a row (p50,
with p99 and its share of the time in the notes), and printed as one line.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from protocol.cid import cid_from_str, cid_str
from tests.bench.common import RPC, AnnotationMaker, Figure, StoreWatch, p50_p99, verify_limit
from tests.bench.phases import PHASES, PhaseWatch, describe
from tests.harness import Cluster

LABELS = ("cat", "dog")
ANNOTATORS = 3
BATCH = 255  # 85 items' worth of annotations per request
POLL_S = 0.02


def run_network(c: Cluster, items_n: int, max_s: float) -> tuple[dict[str, Any], str, list[str]]:
    rpc = RPC(c.home(0))
    items = [cid_str(b"finality item %d" % i) for i in range(items_n)]
    task = rpc.call("task.create", title="bench", labels=list(LABELS), items=items,
                    redundancy=ANNOTATORS, reward_per_item=10, validator_share_bps=1000)["task"]
    watches = [StoreWatch(c.home(i) / "store.db") for i in range(c.n)]
    # every node holds the task before the labels come
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
            w.db.execute("SELECT 1 FROM records WHERE kind='task'").fetchone() for w in watches):
        time.sleep(0.05)
    for w in watches:
        w.close()
    mk = AnnotationMaker(c.genesis.network_id, ANNOTATORS, tag="finality")
    tid = cid_from_str(task)
    recs = []
    for i, item in enumerate(items):
        iid = cid_from_str(item)
        # 2 of 3 agree, so every item has a clear majority
        for a in range(ANNOTATORS):
            recs.append((iid, mk.make(a, i + 1, tid, iid, LABELS[(i + (a == 2)) % 2])))
    nv = len(c.genesis.validators)
    watch = PhaseWatch([c.home(i) / "store.db" for i in range(c.n)], c.genesis.network_id,
                       [k.public_key for k in c.keys], nv * 2 // 3 + 1)
    watch.poll()
    last_sent: dict[bytes, float] = {}
    cids: dict[bytes, list[bytes]] = {}
    for iid, r in recs:
        cids.setdefault(iid, []).append(r.cid)
    done: list[float] = []
    errors: list[BaseException] = []

    def write() -> None:  # in a thread, so the stores are polled every POLL_S meanwhile
        try:
            for k in range(0, len(recs), BATCH):
                chunk = recs[k:k + BATCH]
                now = time.monotonic()
                for iid, _ in chunk:
                    last_sent[iid] = now
                rpc.submit_batch([r.data for _, r in chunk])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.append(time.monotonic())

    t_first = time.monotonic()
    writer = threading.Thread(target=write)
    writer.start()
    deadline = t_first + max_s
    while time.monotonic() < deadline and not (
            done and all(len(f) >= items_n for f in watch.final)):
        watch.poll()
        time.sleep(POLL_S)
    writer.join(timeout=max(0.0, deadline - time.monotonic()) + 30)
    if errors:
        raise errors[0]
    t_written = done[0]
    rpc.close()
    watch.close()
    lat, ends = [], []
    for iid, t in last_sent.items():
        ts = [f.get(iid) for f in watch.final]
        if all(x is not None for x in ts):
            end = max(ts)  # type: ignore[type-var]
            ends.append(end)
            lat.append(end - t)
    p50, p99 = p50_p99(lat)
    span = (max(ends) - t_first) if ends else None
    phases = watch.breakdown({i: (t, cids[i]) for i, t in last_sent.items()})
    return ({"items": items_n, "final_everywhere": len(ends), "p50_s": p50, "p99_s": p99,
             "items_per_s": len(ends) / span if span else 0.0,
             "write_s": t_written - t_first, "span_s": span, "phases": phases}, task, items)


def run(root: Path, quick: bool = False, rpc_bench: Any = None) -> list[Figure]:
    items_n = 200 if quick else 2_000
    max_s = 60 if quick else 120
    with Cluster(root / "single", n=1) as c1:
        c1.start()
        single, _, _ = run_network(c1, items_n, max_s)
    rpc_figs: list[Figure] = []
    with Cluster(root / "four", n=4) as c:
        c.start()
        c.wait_connected()
        four, task, items = run_network(c, items_n, max_s)
        if rpc_bench is not None:
            try:
                rpc_figs = rpc_bench(c, task, items)
            except Exception as exc:
                rpc_figs = [Figure("rpc", f"FAILED: {exc!r}"[:90], None, "", met=False)]
    ms = 1000.0
    ok = four["final_everywhere"] == items_n

    def m(x: float | None) -> float | None:
        return None if x is None else x * ms

    # each item's 3 annotations are verified by the 3 nodes they are gossiped to
    limit, lname = verify_limit(ANNOTATORS * (c.n - 1))
    phase_rows = []
    for k, p in enumerate(PHASES):
        f4, f1 = four["phases"].get(p, {}), single["phases"].get(p, {})
        phase_rows.append(Figure(
            "finality", f"phase {k + 1} {p}, p50 (p99, share in notes)", m(f4.get("p50_s")),
            "ms", m(f1.get("p50_s")), "1-validator p50", "-", None,
            {"p99_ms": m(f4.get("p99_s")), "share": f4.get("share"),
             "single_p99_ms": m(f1.get("p99_s")), "single_share": f1.get("share")}))
    print(f"finality, where the time goes (p50/p99, share), 4 validators: "
          f"{describe(four['phases'])}\n  1 validator: {describe(single['phases'])}", flush=True)
    return [
        Figure("finality", "p50 last annotation->final on all 4", m(four["p50_s"]), "ms",
               m(single["p50_s"]), "1-validator p50", "<= 1,000 ms",
               ok and four["p50_s"] is not None and four["p50_s"] <= 1.0, {"four": four}),
        Figure("finality", "p99 last annotation->final on all 4", m(four["p99_s"]), "ms",
               m(single["p99_s"]), "1-validator p99", "<= 2,000 ms",
               ok and four["p99_s"] is not None and four["p99_s"] <= 2.0, {"single": single}),
        Figure("finality", f"items final/s ({items_n:,} items, r=3)", four["items_per_s"],
               "items/s", single["items_per_s"], "1-validator items/s", ">= 1,000 items/s",
               ok and four["items_per_s"] >= 1000, {}, limit, lname),
        *phase_rows,
        *rpc_figs,
    ]


if __name__ == "__main__":
    from tests.bench.common import main
    main(run)
