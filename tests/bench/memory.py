"""Benchmark 6, memory: RSS of a node holding 1,000,000 and 10,000,000 records.

The records (annotations by 1,000 authors, 1,000 or 10,000 seqs each, for a
task the node does not hold) are signed here by 2 worker processes and written
straight into a store, 50,000 per transaction (through ``Store.save_records``
up to 1M; the 10M store by two ``executemany`` into the same schema, resumable,
at most ``$ANNOT_BENCH_BUILD_S`` (600) s per run); the file is
cached (``$ANNOT_BENCH_CACHE``, default ~/.cache/annot-bench) and copied into
the node's home, so only the first run pays for it. The node then runs (RPC
up, consensus restored, sync and gossip serving); RSS is sampled from /proc
after it settles and after a status call (which counts the records), and the
peak (VmHWM) is noted.

Baselines, same run: an idle node with an empty store, and a bare
``python -c "import libp2p"``.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from node.store.db import open_store
from protocol.cid import cid_bytes
from protocol.records import Record
from tests.bench.common import RPC, AnnotationMaker, Figure, rss_mb
from tests.harness import ROOT, Cluster

CHUNK = 50_000


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def node_rss(c: Cluster, settle_s: float = 3.0) -> tuple[float, float]:
    c.start()
    pid = c.procs[0].pid
    time.sleep(settle_s)
    rpc = RPC(c.home(0))
    rpc.call("node.status")
    rpc.close()
    samples = []
    for _ in range(5):
        samples.append(rss_mb(pid))
        time.sleep(0.2)
    return max(samples), _hwm_mb(pid)


def import_libp2p_rss() -> float:
    code = ("import libp2p\nfor l in open('/proc/self/status'):\n"
            "    l.startswith('VmRSS:') and print(int(l.split()[1]) / 1024)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60)
    return float(out.stdout.strip())


def held_rss(root: Path, n: int) -> dict[str, float]:
    """A one-node network whose store holds ``n`` records (from the cache): its RSS."""
    with Cluster(root, n=1) as c:
        t0 = time.monotonic()
        cached = fill_store(c.genesis.network_id, n, c.home(0) / "store.db")
        gen_s = time.monotonic() - t0
        store = open_store(c.home(0) / "store.db")
        count = store.count()
        store.close()
        db_mb = (c.home(0) / "store.db").stat().st_size / 2**20
        rss, hwm = node_rss(c)
    return {"records": count, "rss_mb": rss, "peak_rss_mb": hwm, "store_mb": db_mb,
            "from_cache": cached, "generate_or_copy_s": gen_s}


def run(root: Path, quick: bool = False) -> list[Figure]:
    sizes = (50_000,) if quick else (1_000_000, 10_000_000)
    with Cluster(root / "empty", n=1) as c:
        idle, idle_hwm = node_rss(c)
    bare = import_libp2p_rss()
    out = []
    for k, n in enumerate(sizes):
        held = held_rss(root / f"full{k}", n)
        big = n >= 10_000_000
        out.append(Figure(
            "memory", f"node RSS holding {held['records']:,.0f} records", held["rss_mb"],
            "MB", idle, "idle node, empty store",
            "<= 150 MB at 10M" if big else "-", held["rss_mb"] <= 150 if big else None,
            {**held, "idle_node_rss_mb": idle, "idle_node_peak_mb": idle_hwm}))
    out.append(Figure("memory", "idle node RSS (empty store)", idle, "MB", bare,
                      "python -c 'import libp2p'", "-", None,
                      {"import_libp2p_rss_mb": bare}))
    return out


_MAKER: list[AnnotationMaker] = []
TASK = cid_bytes(b"bench task mem")
LABELS = ("cat", "dog", "fox")
AUTHORS = 1000
CACHE = Path(os.environ.get("ANNOT_BENCH_CACHE", Path.home() / ".cache" / "annot-bench"))
# a build past this stops and resumes at the next run (make bench stays bounded)
BUILD_BUDGET_S = float(os.environ.get("ANNOT_BENCH_BUILD_S", "600"))

Row = tuple[bytes, bytes, int, bytes, bytes, bytes, str]


def _init(net: bytes) -> None:
    _MAKER.append(AnnotationMaker(net, AUTHORS, tag="mem"))


def _rows(span: tuple[int, int]) -> list[Row]:
    """Records ``span`` as the rows ``Store.save_records`` writes for a new annotation
    (cid, author, seq, data, task, item, label): tuples pickle far faster than Records."""
    mk = _MAKER[0]
    out = []
    for i in range(*span):
        r = mk.make(i % AUTHORS, i // AUTHORS + 1, TASK, cid_bytes(b"item %d" % (i // 3)),
                    LABELS[i % 3])
        out.append((r.cid, r.author, r.seq, r.data, TASK, r.body.item,  # type: ignore[union-attr]
                    r.body.label))  # type: ignore[union-attr]
    return out


def _bulk_save(db: sqlite3.Connection, rows: list[Row]) -> None:
    """What ``save_records`` does for records that are all new and conflict-free, as two
    ``executemany`` (the clock is set once at the end: every author's seqs are 1..k)."""
    db.execute("BEGIN")  # one transaction (the connection is in autocommit mode)
    try:
        db.executemany("INSERT INTO records(cid, author, seq, kind, task, item, data, received)"
                       " VALUES (?,?,?,'annotation',?,?,?,0)",
                       [(c, a, s, t, it, d) for c, a, s, d, t, it, _ in rows])
        db.executemany("INSERT INTO annotations(task, item, author, label, seq, cid)"
                       " VALUES (?,?,?,?,?,?)",
                       [(t, it, a, lb, s, c) for c, a, s, _, t, it, lb in rows])
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def fill_store(net: bytes, n: int, dest: Path) -> bool:
    """Put n records in the store at ``dest``: signed by 2 worker processes and written
    50,000 per transaction, once; later runs copy the cached file. True if cached.

    Up to 1,000,000 records go through ``Store.save_records``; a larger store (10M) is
    written by :func:`_bulk_save` into the store's own schema (same rows, same indexes,
    the clock from the records), which is what makes it affordable once, and is checked
    after: ``Store.count`` and the vector clock must say n records."""
    cache = CACHE / f"mem-{net[:8].hex()}-{n}-v1.db"
    hit = cache.exists()
    if not hit:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        if n <= 1_000_000:
            for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                p.unlink(missing_ok=True)
            _save_chunks(net, n, tmp)
        else:
            _bulk_chunks(net, n, tmp)  # resumes a build an earlier run left unfinished
        store = open_store(tmp)
        count, clock = store.count(), sum(store.clock().values())
        store.close()  # checkpoints the WAL into the file
        if count != n or clock != n:
            raise RuntimeError(f"{tmp}: {count} records, clock sums to {clock}; wanted {n}")
        tmp.rename(cache)
    for p in (dest, Path(f"{dest}-wal"), Path(f"{dest}-shm")):
        p.unlink(missing_ok=True)
    shutil.copyfile(cache, dest)
    return hit


def _spans(n: int) -> list[tuple[int, int]]:
    return [(k, min(n, k + 10_000)) for k in range(0, n, 10_000)]


def _save_chunks(net: bytes, n: int, path: Path) -> None:
    store = open_store(path)
    batch: list[Record] = []
    with multiprocessing.get_context("fork").Pool(2, _init, (net,)) as pool:
        for part in pool.imap(_chunk, _spans(n)):
            batch += part
            if len(batch) >= CHUNK:
                store.save_records(batch)
                batch = []
    if batch:
        store.save_records(batch)
    store.close()


def _bulk_chunks(net: bytes, n: int, path: Path) -> None:
    """Write records 0..n-1 into ``path`` in order, 50,000 per transaction, resuming
    after the records a previous, interrupted build committed (chunks commit in order,
    so they are records 0..k-1). Bounded: past ``BUILD_BUDGET_S`` it stops, keeps what
    it wrote for the next run, and raises."""
    open_store(path).close()  # the schema, by the store's own migrations
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # a cache file, never the node's: an OS crash mid-build costs a rebuild, not data
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")  # 1 GB: the random-key indexes stay in memory
    deadline = time.monotonic() + BUILD_BUDGET_S
    # indexes that are not constraints are dropped while writing and made again at the
    # end from their own SQL (sorted builds, far cheaper than 10M random inserts)
    secondary = db.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND "
                           "name IN ('records_kind', 'records_task', 'annotations_author')"
                           ).fetchall()
    if secondary:
        Path(f"{path}.indexes").write_text("".join(f"{n}\t{q}\n" for n, q in secondary))
    for name, _ in secondary:
        db.execute(f"DROP INDEX {name}")
    done = int(db.execute("SELECT max(rowid) FROM records").fetchone()[0] or 0)
    if done % 10_000:
        raise RuntimeError(f"{path}: {done} records, not a whole number of chunks; delete it")
    if done:
        print(f"  memory: resuming a build at {done:,} of {n:,} records", flush=True)
    spans = _spans(n)[done // 10_000:]
    window = CHUNK // 10_000  # spans signed at once: what the workers run ahead is bounded
    with multiprocessing.get_context("fork").Pool(2, _init, (net,)) as pool:
        pending = pool.map_async(_rows, spans[:window])
        for k in range(window, len(spans) + window, window):
            parts = pending.get()
            if k < len(spans):
                pending = pool.map_async(_rows, spans[k:k + window])
            batch = [row for part in parts for row in part]
            if batch:
                _bulk_save(db, batch)  # while the workers sign the next window
                done += len(batch)
                if done % 1_000_000 == 0:
                    print(f"  memory: {done:,} of {n:,} records written", flush=True)
            if time.monotonic() > deadline:
                raise RuntimeError(f"building {n:,} records took over {BUILD_BUDGET_S:.0f} s"
                                   f" ({done:,} written; the next run resumes)")
    db.execute("INSERT INTO clock(author, seq) SELECT author, max(seq) FROM records "
               "GROUP BY author")
    stash = Path(f"{path}.indexes")  # a resumed build finds the dropped indexes' SQL here
    for _, sql in secondary or [tuple(line.split("\t", 1)) for line in
                                stash.read_text().splitlines()]:
        db.execute(sql)
    stash.unlink(missing_ok=True)
    db.close()


def _chunk(span: tuple[int, int]) -> list[Record]:
    mk = _MAKER[0]
    return [mk.make(i % AUTHORS, i // AUTHORS + 1, TASK, cid_bytes(b"item %d" % (i // 3)),
                    LABELS[i % 3]) for i in range(*span)]


if __name__ == "__main__":
    from tests.bench.common import main
    main(run)
