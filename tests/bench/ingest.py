"""Benchmark 1, ingest: decode + verify + save of signed annotations at one node.

The node's own code does the work, batched as the node batches it: records
arrive in gossip messages / sync frames of up to 256, each is decoded and
verified (``Ingest.decode`` = ``decode_record`` + network rules), then the
batch goes through ``Ingest.accept`` (one store transaction, subscribers
told). A second figure is the RPC path, ``Ingest.submit``, one record and one
transaction per call. Baseline: raw PyNaCl verify of the same records, with
sign-bytes prepared beforehand — the physical limit of a one-core verifier.
All are timed alternately on the same slices of records (4 rounds).

The annotations name real tasks (stored first, untimed): admission control
stores only annotations of known tasks. Batches are accepted as a client's
(source "rpc"), so each commit is fsynced, as group commit saves them. A third
figure is the cost of durability: the same batched ingest on a durable store
(``durable=True``, ``synchronous=FULL``: one fsync per batch) against a
``durable=False`` store (``synchronous=NORMAL``, never fsynced).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import nacl.signing
import trio

from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.core.verifier import Verifier
from node.store.db import Saved, open_store
from protocol.cid import cid_bytes
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.records import Record, Task, sign_bytes, sign_record
from tests.bench.common import AnnotationMaker, Figure, verify_limit

BATCH = 256
REQUESTER = SigningKey(b"\x02" * 32)
ITEMS_PER_TASK = 4_096


def make_tasks_and_annotations(net: bytes, n: int, authors: int = 100,
                               tag: str = "annotator", task_seq: int = 1,
                               redundancy: int = 3) -> tuple[list[Record], list[Record]]:
    """Tasks of up to 4,096 items (signed by ``REQUESTER``, seqs from ``task_seq``) and
    ``n`` annotations of them by ``authors`` keys of ``tag``, three per item,
    round-robin over the authors so each author's seqs stay contiguous. With
    ``redundancy`` > 3 no item ever has enough labels: consensus stays idle."""
    n_items = -(-n // 3)
    items = [cid_bytes(b"item %d" % k) for k in range(n_items)]
    labels = ("cat", "dog", "fox")
    tasks = [sign_record(net, REQUESTER, task_seq + t, Task(
        f"bench {tag} {t}", labels, tuple(items[k:k + ITEMS_PER_TASK]), redundancy, 10, 0))
        for t, k in enumerate(range(0, n_items, ITEMS_PER_TASK))]
    mk = AnnotationMaker(net, authors, tag)
    anns = [mk.make(i % authors, i // authors + 1, tasks[(i // 3) // ITEMS_PER_TASK].cid,
                    items[i // 3], labels[i % 3]) for i in range(n)]
    return tasks, anns


def _with_tasks(ingest: Ingest, tasks: list[Record]) -> Ingest:
    ingest.accept(tasks, source="bench")
    return ingest


def bench_genesis() -> Genesis:
    return Genesis("bench", (Validator(SigningKey(b"\x01" * 32).peer_id, 1),))


def raw_verify_seconds(recs: list[Record], net: bytes) -> float:
    work = [(r.author, sign_bytes(net, r.kind, r.author, r.seq, r.body), r.signature)
            for r in recs]
    t0 = time.perf_counter()
    for pk, msg, sig in work:
        nacl.signing.VerifyKey(pk).verify(msg, sig)
    return time.perf_counter() - t0


def batched_ingest_seconds(ingest: Ingest, blobs: list[bytes], source: str = "rpc") -> float:
    """Seconds to decode, verify and accept ``blobs`` in batches from ``source``: "rpc"
    (a client's batch: one fsynced commit each, as group commit saves it) or a peer's
    id (gossip or sync: committed without an fsync of its own)."""
    t0 = time.perf_counter()
    for i in range(0, len(blobs), BATCH):
        ingest.accept([ingest.decode(b) for b in blobs[i:i + BATCH]], source=source)
    return time.perf_counter() - t0


def batched_ingest_rate(blobs: list[bytes], genesis: Genesis, path: Path,
                        tasks: list[Record], durable: bool = True, source: str = "rpc"
                        ) -> float:
    store = open_store(path, durable=durable)
    try:
        ingest = _with_tasks(Ingest(store, genesis, Metrics(), lambda data: None), tasks)
        elapsed = batched_ingest_seconds(ingest, blobs, source)
        assert store.count("annotation") == len(blobs)
    finally:
        store.close()
    return len(blobs) / elapsed


def pipelined_ingest_seconds(ingest: Ingest, verifier: Verifier, blobs: list[bytes],
                             source: str = "rpc") -> float:
    """Seconds to ingest ``blobs`` in batches with the node's pipeline: each batch decoded
    on the loop and its signatures checked on every core (``Verifier``, as gossip and
    sync do), then accepted in one commit whose fsync runs in a worker thread (as group
    commit does); the next batch is decoded and verified meanwhile."""
    async def main() -> None:
        send, recv = trio.open_memory_channel[list[Record]](1)

        async def produce() -> None:
            async with send:
                for i in range(0, len(blobs), BATCH):
                    checked = await verifier.decode_all(blobs[i:i + BATCH])
                    await send.send([r for r in checked if isinstance(r, Record)])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            async with recv:
                async for records in recv:
                    # as group commit saves a client batch: committed, then its fsync in
                    # a worker thread while the loop decodes the next batch
                    ingest.accept_reasons(records, source=source, sync=False)
                    await trio.to_thread.run_sync(ingest.sync_wal)
    t0 = time.perf_counter()
    trio.run(main)
    return time.perf_counter() - t0


def interleaved(recs: list[Record], genesis: Genesis, path: Path, tasks: list[Record],
                rounds: int = 4) -> tuple[float, float, float]:
    """(raw verify rec/s, batched ingest rec/s on the loop, pipelined ingest rec/s),
    measured alternately on the same slices (the ingests on distinct records), so a
    neighbour's load on this shared machine hits all alike."""
    store = open_store(path)
    ingest = _with_tasks(Ingest(store, genesis, Metrics(), lambda data: None), tasks)
    verifier = Verifier(genesis.network_id, genesis.params.limits())
    seen = [0]
    ingest.subscribe(lambda new: seen.__setitem__(0, seen[0] + len(new)))
    raw_s = ing_s = pipe_s = 0.0
    n_ing = n_pipe = 0
    step = -(-len(recs) // rounds)
    try:
        for k in range(0, len(recs), step):
            part = recs[k:k + step]
            raw_s += raw_verify_seconds(part, genesis.network_id)
            half = len(part) // 2
            ing_s += batched_ingest_seconds(ingest, [r.data for r in part[:half]])
            pipe_s += pipelined_ingest_seconds(ingest, verifier, [r.data for r in part[half:]])
            n_ing, n_pipe = n_ing + half, n_pipe + len(part) - half
        assert seen[0] == len(recs) == store.count("annotation"), (seen[0], store.count())
        assert verifier.offloaded == n_pipe, (verifier.offloaded, n_pipe)
    finally:
        store.close()
    return len(recs) / raw_s, n_ing / ing_s, n_pipe / pipe_s


def submit_rate(blobs: list[bytes], genesis: Genesis, path: Path,
                tasks: list[Record]) -> float:
    store = open_store(path)
    ingest = _with_tasks(Ingest(store, genesis, Metrics(), lambda data: None), tasks)
    try:
        t0 = time.perf_counter()
        for b in blobs:
            assert ingest.submit(b)[1] is Saved.NEW
        elapsed = time.perf_counter() - t0
    finally:
        store.close()
    return len(blobs) / elapsed


def run(quick: bool = False) -> list[Figure]:
    # 40,000: each pipelined slice is 20 batches, so filling and draining the pipeline
    # (the first decode and the last fsync overlap nothing) weighs little
    n = 3_000 if quick else 40_000
    genesis = bench_genesis()
    net = genesis.network_id
    tasks, recs = make_tasks_and_annotations(net, n, authors=100)
    blobs = [r.data for r in recs]
    raw_verify_seconds(recs[:200], net)  # warm-up: first-use costs
    with tempfile.TemporaryDirectory() as d:
        raw, batched, pipelined = interleaved(recs, genesis, Path(d) / "a.db", tasks)
        single = submit_rate(blobs[: n // 8], genesis, Path(d) / "b.db", tasks)
        part = blobs[: n // 2]
        synced = batched_ingest_rate(part, genesis, Path(d) / "c.db", tasks, durable=True)
        unsynced = batched_ingest_rate(part, genesis, Path(d) / "d.db", tasks, durable=False)
    notes = {"records": n, "batch": BATCH, "bytes_per_record": sum(map(len, blobs)) // n,
             "store": "durable=True (synchronous=FULL: one fsync per batch)"}
    limit, lname = verify_limit()
    return [
        Figure("ingest", "decode+verify+save, batched, fsync on", pipelined, "rec/s",
               raw, "raw PyNaCl verify, 1 core", ">= 0.75x", pipelined / raw >= 0.75,
               {**notes, "how": "decode on the loop, signatures on "
                f"{os.cpu_count()} worker threads (as gossip and sync), fsync in a thread "
                "(as group commit); next batch verified while the last is saved"},
               limit, lname),
        Figure("ingest", "same, all on one thread (as before the pipeline)", batched, "rec/s",
               raw, "raw PyNaCl verify, 1 core", "-", None, notes, limit, lname),
        Figure("ingest", "Ingest.submit, 1 record/txn, fsync each", single,
               "rec/s", raw, "raw PyNaCl verify, 1 core", "-", None, {}, limit, lname),
        Figure("ingest", "batched, fsync on (durable=True) vs off", synced, "rec/s",
               unsynced, "durable=False store", "-", None,
               {"records": len(part), "fsync_cost": f"{1 - synced / unsynced:.1%}"},
               limit, lname),
    ]


if __name__ == "__main__":
    from tests.bench.common import table
    print(table(run()))
