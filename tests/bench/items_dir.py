"""Benchmark 7, a 100,000-item task as a folder: create, sync to a joiner, memory.

A requester folder of N small files (100 folders of N/100; N = 100,000, or 10,000
with ``--quick``) becomes a task with ``annot task create --items-dir`` on a
one-validator network (node 0). Figures:

* create: N / seconds for the whole CLI command (import, batched ``block.put``,
  the node's own walk of the directory, signing); baseline: the same folder
  imported in-process (:class:`FileImporter` and :class:`DirectoryBuilder`, no RPC);
* sync to a joiner: node 1 starts empty; seconds until its ``task.items`` says the
  directory is resolved (task record by sync, directory blocks by bitswap, N rows
  saved); baseline: the in-process walk of the same directory blocks;
* memory: RSS of the validator and of the joiner holding the task; baseline: an idle
  node with an empty store (measured here the same way).

The task is not labelled here (finality throughput has its own benchmark); the
note gives the size of the task record, which stays constant whatever N.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from protocol.unixfs import FileImporter
from protocol.unixfs_dir import DirectoryBuilder, walk_files
from tests.bench.common import Figure, rss_mb
from tests.harness import ANNOT, ROOT, Cluster


def make_folder(root: Path, n: int) -> Path:
    folder = root / "items"
    for i in range(n):
        sub = folder / f"batch-{i % 100:03d}"
        if i < 100:
            sub.mkdir(parents=True)
        (sub / f"sample-{i:06d}.txt").write_bytes(b"sample %d\n" % i)
    return folder


def import_in_process(folder: Path) -> tuple[float, dict[bytes, bytes], bytes]:
    t0 = time.perf_counter()
    builder = DirectoryBuilder()
    blocks: dict[bytes, bytes] = {}
    for path in sorted(folder.rglob("*.txt")):
        importer = FileImporter()
        blocks.update(importer.update(path.read_bytes()))
        blocks.update(importer.finish())
        assert importer.root is not None
        builder.add_file(path.relative_to(folder).as_posix(), importer.root, importer.tsize)
    root, _, dir_blocks = builder.finish()
    blocks.update(dir_blocks)
    return time.perf_counter() - t0, blocks, root


def run(root: Path, quick: bool = False) -> list[Figure]:
    n = 10_000 if quick else 100_000
    folder = make_folder(root, n)
    base_s, blocks, dir_root = import_in_process(folder)
    t0 = time.perf_counter()
    assert sum(1 for _ in walk_files(blocks.__getitem__, dir_root)) == n
    walk_s = time.perf_counter() - t0
    with Cluster(root / "nodes", n=2, validators=1) as c:
        c.start(0)
        idle = rss_mb(c.procs[0].pid)
        t0 = time.perf_counter()
        out = subprocess.run(
            [*ANNOT, "--home", str(c.home(0)), "task", "create", "--json", "--title", "bench",
             "--label", "a", "--label", "b", "--items-dir", str(folder)],
            cwd=ROOT, capture_output=True, text=True, timeout=1800, check=True)
        create_s = time.perf_counter() - t0
        task = json.loads(out.stdout)["task"]
        record = c.rpc(0, "block.get", cid=task)
        c.wait(lambda: c.rpc(0, "task.items", task=task, limit=1)["resolved"], 600,
               "validator resolved")
        t0 = time.perf_counter()
        c.start(1)
        c.wait(lambda: c.rpc(1, "task.items", task=task, limit=1)["resolved"], 1200,
               "joiner resolved", interval=0.1)
        sync_s = time.perf_counter() - t0
        assert c.rpc(1, "task.get", task=task)["item_count"] == n
        time.sleep(2)
        mem = [rss_mb(c.procs[i].pid) for i in (0, 1)]
    notes = {"items": n, "task_record_bytes": record["size"], "folders": 100}
    return [
        Figure("items_dir", f"create: items/s, task of {n:,} files (CLI)", n / create_s,
               "items/s", n / base_s, "in-process import, no RPC", "-", None,
               {**notes, "seconds": round(create_s, 1)}),
        Figure("items_dir", f"sync: joiner has all {n:,} items (s)", sync_s, "s", walk_s,
               "in-process walk of the directory", "-", None, notes),
        Figure("items_dir", "memory: validator RSS with the task", mem[0], "MB", idle,
               "idle node, empty store", "-", None, notes),
        Figure("items_dir", "memory: joiner RSS with the task", mem[1], "MB", idle,
               "idle node, empty store", "-", None, notes),
    ]
