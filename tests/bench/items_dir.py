"""Benchmark 7, a 100,000-item task as a folder: create, sync to a joiner, label, memory.

A requester folder of N small files (100 folders of N/100; N = 100,000, or 10,000
with ``--quick``) becomes a task with ``annot task create --items-dir`` on a
one-validator network (node 0); node 1 joins afterwards. Figures:

* create: N / seconds for the whole CLI command (import, batched ``block.put`` —
  the node writes each batch's blocks with two syncs — the node's own walk of the
  directory, signing); baseline: the same folder imported in-process
  (:class:`FileImporter` and :class:`DirectoryBuilder`, no RPC, no disk);
* joiner catch-up: node 1 starts empty; seconds until its ``task.items`` says the
  directory is resolved (task record by sync, directory blocks by bitswap, N rows
  saved); baseline: the in-process walk of the same directory blocks;
* labels: L items (the first of the folder) get 3 labels each, signed here and
  submitted to the joiner; items final per second until the joiner holds all L
  certificates (labels gossiped to the validator, certificates back); baseline: the
  same on the validator itself for another L items (no hop through the joiner);
* memory: RSS of the validator and of the joiner holding the labelled task;
  baseline: the validator idle before the task (empty store), measured here.

Bounded: the whole benchmark has a time budget (``BUDGET_S``); every wait and the
CLI command get what is left of it, and running out raises (the row says FAILED).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from node.rpc.client import RPCClientError
from protocol.cid import cid_from_str
from protocol.unixfs import FileImporter
from protocol.unixfs_dir import DirectoryBuilder, walk_files
from tests.bench.common import RPC, AnnotationMaker, Figure, rss_mb
from tests.harness import ANNOT, ROOT, Cluster

BUDGET_S = {False: 1500.0, True: 420.0}  # the whole benchmark, full / --quick
LABELLED = {False: 500, True: 200}  # items labelled, on each of the two nodes
ANNOTATORS = 3
LABELS = ("a", "b")


class Budget:
    """What is left of the benchmark's time; ``left()`` raises once it is spent."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, what: str) -> float:
        s = self.end - time.monotonic()
        if s <= 0:
            raise TimeoutError(f"items_dir benchmark out of time before {what}")
        return s


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


def _resolved(c: Cluster, node: int, task: str) -> bool:
    """Whether ``node`` holds the task and has resolved its directory."""
    try:
        return bool(c.rpc(node, "task.items", task=task, limit=1)["resolved"])
    except RPCClientError as exc:
        if "not found" in str(exc):  # the task record has not come yet
            return False
        raise


def _items(c: Cluster, task: str, n: int) -> list[str]:
    """The first ``n`` items of the task (in path order), from node 0."""
    got: list[str] = []
    cursor = None
    while len(got) < n:
        page = c.rpc(0, "task.items", task=task, limit=min(1000, n - len(got)),
                     **({"cursor": cursor} if cursor else {}))
        got += [row["item"] for row in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    return got[:n]


def _label(c: Cluster, node: int, task: str, items: list[str], mk: AnnotationMaker,
           first_seq: int, budget: Budget) -> float:
    """Submit 3 labels for each of ``items`` to ``node``; seconds until ``node`` holds
    all their certificates."""
    tid = cid_from_str(task)
    recs = []
    for k, item in enumerate(items):
        iid = cid_from_str(item)
        for a in range(ANNOTATORS):  # 2 of 3 agree: a clear majority
            recs.append(mk.make(a, first_seq + k, tid, iid, LABELS[(k + (a == 2)) % 2]).data)
    before = c.status(node)["final_items"]
    rpc = RPC(c.home(node))
    t0 = time.perf_counter()
    for i in range(0, len(recs), 300):
        rpc.submit_batch(recs[i:i + 300])
    c.wait(lambda: c.status(node)["final_items"] >= before + len(items),
           budget.left("labels final"), f"{len(items)} items final on node {node}",
           interval=0.1)
    return time.perf_counter() - t0


def run(root: Path, quick: bool = False) -> list[Figure]:
    budget = Budget(BUDGET_S[quick])
    n = 10_000 if quick else 100_000
    n_labelled = LABELLED[quick]
    folder = make_folder(root, n)
    base_s, blocks, dir_root = import_in_process(folder)
    t0 = time.perf_counter()
    assert sum(1 for _ in walk_files(blocks.__getitem__, dir_root)) == n
    walk_s = time.perf_counter() - t0
    del blocks
    with Cluster(root / "nodes", n=2, validators=1) as c:
        c.start(0)
        time.sleep(2)
        idle = rss_mb(c.procs[0].pid)
        t0 = time.perf_counter()
        out = subprocess.run(
            [*ANNOT, "--home", str(c.home(0)), "task", "create", "--json", "--title", "bench",
             "--label", LABELS[0], "--label", LABELS[1], "--redundancy", str(ANNOTATORS),
             "--items-dir", str(folder)],
            cwd=ROOT, capture_output=True, text=True, timeout=budget.left("create"),
            check=True)
        create_s = time.perf_counter() - t0
        print(f"  created in {create_s:.1f} s", flush=True)
        task = json.loads(out.stdout)["task"]
        record = c.rpc(0, "block.get", cid=task)
        c.wait(lambda: _resolved(c, 0, task), budget.left("validator resolved"),
               "validator resolved")
        validator_rss = rss_mb(c.procs[0].pid)
        items = _items(c, task, 2 * n_labelled)
        t0 = time.perf_counter()
        c.start(1)
        c.wait(lambda: _resolved(c, 1, task), budget.left("joiner resolved"),
               "joiner resolved", interval=0.1)
        sync_s = time.perf_counter() - t0
        assert c.rpc(1, "task.get", task=task)["item_count"] == n
        joiner_rss_synced = rss_mb(c.procs[1].pid)
        mk = AnnotationMaker(c.genesis.network_id, ANNOTATORS, tag="items_dir")
        base_label_s = _label(c, 0, task, items[n_labelled:], mk, 1, budget)
        label_s = _label(c, 1, task, items[:n_labelled], mk, n_labelled + 1, budget)
        time.sleep(2)
        mem = [rss_mb(c.procs[i].pid) for i in (0, 1)]
    notes: dict[str, Any] = {"items": n, "task_record_bytes": record["size"], "folders": 100,
                             "labelled_items": n_labelled, "annotators": ANNOTATORS}
    return [
        Figure("items_dir", f"create: items/s, task of {n:,} files (CLI)", n / create_s,
               "items/s", n / base_s, "in-process import, no RPC", "-", None,
               {**notes, "seconds": round(create_s, 1)}),
        Figure("items_dir", f"joiner catch-up: all {n:,} items (s)", sync_s, "s", walk_s,
               "in-process walk of the directory", "-", None, notes),
        Figure("items_dir", f"labels via the joiner: items final/s ({n_labelled})",
               n_labelled / label_s, "items/s", n_labelled / base_label_s,
               "labels submitted to the validator", "-", None, notes),
        Figure("items_dir", "memory: validator RSS with the labelled task", mem[0], "MB",
               idle, "idle node, empty store", "-", None,
               {**notes, "validator_rss_after_create_mb": round(validator_rss, 1)}),
        Figure("items_dir", "memory: joiner RSS with the labelled task", mem[1], "MB", idle,
               "idle node, empty store", "-", None,
               {**notes, "joiner_rss_after_sync_mb": round(joiner_rss_synced, 1)}),
    ]
