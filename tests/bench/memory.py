"""Benchmark 6, memory: RSS of a node holding 1,000,000 records.

The records (annotations by 1,000 authors, 1,000 seqs each, for a task the
node does not hold) are signed here by 2 worker processes and written straight
into a store through ``Store.save_records``, 50,000 per transaction; the file is
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


def run(root: Path, quick: bool = False) -> list[Figure]:
    n = 50_000 if quick else 1_000_000
    with Cluster(root / "empty", n=1) as c:
        idle, idle_hwm = node_rss(c)
    bare = import_libp2p_rss()
    with Cluster(root / "full", n=1) as c:
        t0 = time.monotonic()
        cached = fill_store(c.genesis.network_id, n, c.home(0) / "store.db")
        gen_s = time.monotonic() - t0
        store = open_store(c.home(0) / "store.db")
        count = store.count()
        store.close()
        db_mb = (c.home(0) / "store.db").stat().st_size / 2**20
        full, full_hwm = node_rss(c)
    notes = {"records": count, "generate_and_save_s": gen_s, "from_cache": cached,
             "store_mb": db_mb,
             "peak_rss_mb": full_hwm, "idle_node_rss_mb": idle, "idle_node_peak_mb": idle_hwm,
             "import_libp2p_rss_mb": bare}
    return [
        Figure("memory", f"node RSS holding {count:,} records", full, "MB", idle,
               "idle node, empty store", "<= 250 MB", full <= 250, notes),
        Figure("memory", "idle node RSS (empty store)", idle, "MB", bare,
               "python -c 'import libp2p'", "-", None),
    ]


_MAKER: list[AnnotationMaker] = []
TASK = cid_bytes(b"bench task mem")
LABELS = ("cat", "dog", "fox")
CACHE = Path(os.environ.get("ANNOT_BENCH_CACHE", Path.home() / ".cache" / "annot-bench"))


def _init(net: bytes) -> None:
    _MAKER.append(AnnotationMaker(net, 1000, tag="mem"))


def _chunk(span: tuple[int, int]) -> list[Record]:
    mk = _MAKER[0]
    return [mk.make(i % 1000, i // 1000 + 1, TASK, cid_bytes(b"item %d" % (i // 3)),
                    LABELS[i % 3]) for i in range(*span)]


def fill_store(net: bytes, n: int, dest: Path) -> bool:
    """Put n records in the store at ``dest``: signed by 2 worker processes and saved
    50,000 per transaction, once; later runs copy the cached file. True if cached."""
    cache = CACHE / f"mem-{net[:8].hex()}-{n}-v1.db"
    hit = cache.exists()
    if not hit:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            p.unlink(missing_ok=True)
        store = open_store(tmp)
        spans = [(k, min(n, k + 10_000)) for k in range(0, n, 10_000)]
        batch: list[Record] = []
        with multiprocessing.get_context("fork").Pool(2, _init, (net,)) as pool:
            for part in pool.imap(_chunk, spans):
                batch += part
                if len(batch) >= CHUNK:
                    store.save_records(batch)
                    batch = []
        if batch:
            store.save_records(batch)
        store.close()  # checkpoints the WAL into the file
        tmp.rename(cache)
    for p in (dest, Path(f"{dest}-wal"), Path(f"{dest}-shm")):
        p.unlink(missing_ok=True)
    shutil.copyfile(cache, dest)
    return hit


if __name__ == "__main__":
    import json
    import tempfile

    from tests.bench.common import table
    with tempfile.TemporaryDirectory() as d:
        figs = run(Path(d), "--quick" in sys.argv)
    print(table(figs))
    print(json.dumps(figs[0].notes))
