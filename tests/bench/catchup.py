"""Benchmark 3, catch-up: a node joins a network that already holds N records.

Nodes 0 and 1 get N pre-signed annotations (100 authors) of real tasks (the
tasks' records count in N; redundancy 4, so no item completes and nobody
votes) written straight into their stores before they start; a joiner starts
empty once they run, and syncs (``/annot/sync/1.1.0`` from both peers, as it
would in a real network). The figure is N / seconds from the joiner's start
until its store holds all N (read read-only at 20 Hz); the rate from its first
record is noted too.

Two joins in the same run: node2 with ``sync.verify_threads = 1`` (a frame's
records verified one after another, as before issue 17), then, node2 stopped,
node3 with the default (one verify thread per core, sessions with both peers
splitting the records). Baseline: the same
records decoded, verified and saved in-process through ``Ingest`` in batches —
the work a joining node cannot skip, on one core. Limit: raw verify x cores.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from node.store.db import open_store
from tests.bench.common import Figure, StoreWatch, verify_limit
from tests.bench.ingest import batched_ingest_rate, make_tasks_and_annotations
from tests.harness import Cluster

THREADS_KEY = "verify_threads = 0"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc): less sensitive than
    wall time to what else the shared machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def join(c: Cluster, i: int, n: int, threads: int, max_s: float) -> dict[str, Any]:
    """Start node ``i`` (never started: an empty store) with ``sync.verify_threads =
    threads``; time its catch-up, then stop it."""
    home = c.home(i)
    cfg = home / "config.toml"
    text = cfg.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("verify_threads = "))
    cfg.write_text(text.replace(line, f"verify_threads = {threads}"))
    t0 = time.monotonic()
    c.start(i, wait=False)
    watch: StoreWatch | None = None
    first = done = None
    deadline = t0 + max_s
    have = 0
    while time.monotonic() < deadline:
        try:  # the daemon creates its store, then its tables
            if watch is None and (home / "store.db").exists():
                watch = StoreWatch(home / "store.db")
            have = watch.count() if watch is not None else 0
        except sqlite3.OperationalError:
            have = 0
        now = time.monotonic()
        if have and first is None:
            first = now
        if have >= n:
            done = now
            break
        time.sleep(0.05)
    if watch is not None:
        watch.close()
    cpu = cpu_seconds(c.procs[i].pid)
    c.stop(i)
    return {"joiner_cpu_s": cpu, "cpu_ms_per_1000_records": 1e6 * cpu / max(have, 1),
            "threads": threads or "one per core", "completed": done is not None,
            "have": have, "rate": n / (done - t0) if done else have / (deadline - t0),
            "seconds_from_start": None if done is None else done - t0,
            "rate_from_first_record": None if done is None or first is None
            else n / (done - first)}


def run(root: Path, quick: bool = False) -> list[Figure]:
    n = 10_000 if quick else 100_000
    max_s = 60 if quick else 120
    with Cluster(root / "nodes", n=4) as c:
        assert THREADS_KEY in (c.home(2) / "config.toml").read_text()
        # annotations of real tasks (admission holds back those of an unknown task);
        # redundancy 4, so no item completes and the figure is sync alone, no voting
        tasks, recs = make_tasks_and_annotations(c.genesis.network_id, n, authors=100,
                                                 tag="catchup", redundancy=4)
        n += len(tasks)
        store = open_store(c.home(0) / "store.db")
        store.save_records(tasks)
        for k in range(0, len(recs), 20_000):
            store.save_records(recs[k:k + 20_000])
        store.close()  # checkpoints the WAL into the file
        for side in ("store.db-wal", "store.db-shm"):
            (c.home(1) / side).unlink(missing_ok=True)
        shutil.copyfile(c.home(0) / "store.db", c.home(1) / "store.db")  # the same records
        c.start(0, 1)
        # two joiners, one after the other, so neither meets the other's leftovers
        # (a restarted joiner finds its old sessions still open at the servers)
        before = join(c, 2, n, 1, max_s)
        after = join(c, 3, n, 0, max_s)
        sample = [r.data for r in recs[: min(n, 20_000)]]
    with tempfile.TemporaryDirectory() as d:
        # a peer's records, as sync saves them: no fsync of their own
        base = batched_ingest_rate(sample, c.genesis, Path(d) / "b.db", tasks,
                                   source="peer")
    limit, lname = verify_limit()  # the joiner alone verifies, on every core
    notes = {"records": n, "held_by": 2, "after": after, "before": before}
    return [
        Figure("catch-up", f"records/s, join a network of {n:,}", after["rate"], "rec/s",
               base, "in-process decode+verify+save", ">= 10,000 rec/s",
               after["completed"] and after["rate"] >= 10_000, notes, limit, lname),
        Figure("catch-up", "same join, sync.verify_threads = 1 (before)", before["rate"],
               "rec/s", base, "in-process decode+verify+save", "-", None, {}, limit, lname),
        Figure("catch-up", "joiner CPU per 1,000 records, default threads",
               after["cpu_ms_per_1000_records"], "ms", before["cpu_ms_per_1000_records"],
               "verify_threads = 1", "-", None),
    ]


if __name__ == "__main__":
    from tests.bench.common import main
    main(run)
