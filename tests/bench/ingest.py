"""Benchmark 1, ingest: decode + verify + save of signed annotations at one node.

The node's own code does the work, batched as the node batches it: records
arrive in gossip messages / sync frames of up to 256, each is decoded and
verified (``Ingest.decode`` = ``decode_record`` + network rules), then the
batch goes through ``Ingest.accept`` (one store transaction, subscribers
told). A second figure is the RPC path, ``Ingest.submit``, one record and one
transaction per call. Baseline: raw PyNaCl verify of the same records, with
sign-bytes prepared beforehand — the physical limit of a one-core verifier.
Both are timed alternately on the same slices of records (8 rounds).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import nacl.signing

from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.store.db import Saved, open_store
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.records import Record, sign_bytes
from tests.bench.common import Figure, make_annotations

BATCH = 256


def bench_genesis() -> Genesis:
    return Genesis("bench", (Validator(SigningKey(b"\x01" * 32).peer_id, 1),))


def raw_verify_seconds(recs: list[Record], net: bytes) -> float:
    work = [(r.author, sign_bytes(net, r.kind, r.author, r.seq, r.body), r.signature)
            for r in recs]
    t0 = time.perf_counter()
    for pk, msg, sig in work:
        nacl.signing.VerifyKey(pk).verify(msg, sig)
    return time.perf_counter() - t0


def batched_ingest_seconds(ingest: Ingest, blobs: list[bytes]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(blobs), BATCH):
        ingest.accept([ingest.decode(b) for b in blobs[i:i + BATCH]], source="bench")
    return time.perf_counter() - t0


def batched_ingest_rate(blobs: list[bytes], genesis: Genesis, path: Path) -> float:
    store = open_store(path)
    try:
        ingest = Ingest(store, genesis, Metrics(), lambda data: None)
        elapsed = batched_ingest_seconds(ingest, blobs)
        assert store.count() == len(blobs)
    finally:
        store.close()
    return len(blobs) / elapsed


def interleaved(recs: list[Record], genesis: Genesis, path: Path, rounds: int = 8
                ) -> tuple[float, float]:
    """(raw verify rec/s, batched ingest rec/s), measured alternately on the same slices,
    so a neighbour's load on this shared machine hits both alike."""
    store = open_store(path)
    ingest = Ingest(store, genesis, Metrics(), lambda data: None)
    seen = [0]
    ingest.subscribe(lambda new: seen.__setitem__(0, seen[0] + len(new)))
    raw_s = ing_s = 0.0
    step = -(-len(recs) // rounds)
    try:
        for k in range(0, len(recs), step):
            part = recs[k:k + step]
            raw_s += raw_verify_seconds(part, genesis.network_id)
            ing_s += batched_ingest_seconds(ingest, [r.data for r in part])
        assert seen[0] == len(recs) == store.count(), (seen[0], store.count())
    finally:
        store.close()
    return len(recs) / raw_s, len(recs) / ing_s


def submit_rate(blobs: list[bytes], genesis: Genesis, path: Path) -> float:
    store = open_store(path)
    ingest = Ingest(store, genesis, Metrics(), lambda data: None)
    try:
        t0 = time.perf_counter()
        for b in blobs:
            assert ingest.submit(b)[1] is Saved.NEW
        elapsed = time.perf_counter() - t0
    finally:
        store.close()
    return len(blobs) / elapsed


def run(quick: bool = False) -> list[Figure]:
    n = 3_000 if quick else 20_000
    genesis = bench_genesis()
    net = genesis.network_id
    recs = make_annotations(net, n, authors=100)
    blobs = [r.data for r in recs]
    raw_verify_seconds(recs[:200], net)  # warm-up: first-use costs
    with tempfile.TemporaryDirectory() as d:
        raw, batched = interleaved(recs, genesis, Path(d) / "a.db")
        single = submit_rate(blobs[: n // 4], genesis, Path(d) / "b.db")
    notes = {"records": n, "batch": BATCH, "bytes_per_record": sum(map(len, blobs)) // n}
    return [
        Figure("ingest", "decode+verify+save, batched (Ingest.accept)", batched, "rec/s",
               raw, "raw PyNaCl verify", ">= 0.75x", batched / raw >= 0.75, notes),
        Figure("ingest", "RPC path, 1 record/txn (Ingest.submit)", single, "rec/s",
               raw, "raw PyNaCl verify", "-", None),
    ]


if __name__ == "__main__":
    from tests.bench.common import table
    print(table(run()))
