"""Benchmark 3, catch-up: a node joins a network that already holds N records.

Nodes 0 and 1 get N pre-signed annotations (100 authors) of real tasks (the
tasks' records count in N) written straight into their stores before they
start; node2 starts empty once they run, and syncs (``/annot/sync/1.1.0``
from both peers, as it would in a real network). The
figure is N / seconds from node2's process start until its store holds all N
(read read-only at 20 Hz); the time from its first record is noted too.

Baseline: the same records decoded, verified and saved in-process through
``Ingest`` in batches — the work a joining node cannot skip, on one core — so
the ratio is what the network protocol costs on top.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from node.store.db import open_store
from tests.bench.common import Figure, StoreWatch, verify_limit
from tests.bench.ingest import batched_ingest_rate, make_tasks_and_annotations
from tests.harness import Cluster


def run(root: Path, quick: bool = False) -> list[Figure]:
    n = 10_000 if quick else 100_000
    with Cluster(root / "nodes", n=3) as c:
        # annotations of real tasks (admission holds back those of an unknown task);
        # redundancy 4, so no item completes and the figure is sync alone, no voting
        tasks, recs = make_tasks_and_annotations(c.genesis.network_id, n, authors=100,
                                                 tag="catchup", redundancy=4)
        n += len(tasks)
        for i in (0, 1):
            store = open_store(c.home(i) / "store.db")
            store.save_records(tasks)
            for k in range(0, len(recs), 20_000):
                store.save_records(recs[k:k + 20_000])
            store.close()
        c.start(0, 1)
        watch = StoreWatch(c.home(2) / "store.db")
        t0 = time.monotonic()
        c.start(2, wait=False)
        first = done = None
        deadline = t0 + (60 if quick else 120)
        have = 0
        while time.monotonic() < deadline:
            have = watch.count()
            now = time.monotonic()
            if have and first is None:
                first = now
            if have >= n:
                done = now
                break
            time.sleep(0.05)
        watch.close()
        sample = [r.data for r in recs[: min(n, 20_000)]]
    with tempfile.TemporaryDirectory() as d:
        # a peer's records, as sync saves them: no fsync of their own
        base = batched_ingest_rate(sample, c.genesis, Path(d) / "b.db", tasks,
                                   source="peer")
    rate = n / (done - t0) if done else have / (deadline - t0)
    notes = {"records": n, "held_by": 2, "completed": done is not None, "have": have,
             "seconds_from_start": None if done is None else done - t0,
             "seconds_from_first_record": None if done is None or first is None
             else done - first,
             "rate_from_first_record": None if done is None or first is None
             else n / (done - first)}
    limit, lname = verify_limit()  # the joiner alone verifies, on every core
    return [Figure("catch-up", f"records/s, join a network of {n:,}", rate, "rec/s", base,
                   "in-process decode+verify+save", ">= 10,000 rec/s",
                   done is not None and rate >= 10_000, notes, limit, lname)]


if __name__ == "__main__":
    import json
    import sys

    from tests.bench.common import table
    with tempfile.TemporaryDirectory() as d:
        figs = run(Path(d), "--quick" in sys.argv)
    print(table(figs))
    print(json.dumps(figs[0].notes))
