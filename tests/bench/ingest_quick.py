"""Ingest throughput: decode + verify + save of signed annotations vs raw PyNaCl verify.

Run from the repository root::

    .venv/bin/python -m tests.bench.ingest_quick [--records 10000] [--batch 256]

Both rates are measured in the same run on the same records, so the ratio says how much
the protocol and the store cost on top of the signature check itself.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import nacl.signing

from node.store.db import Saved, open_store
from protocol.cid import cid_bytes
from protocol.keys import Signer, SigningKey
from protocol.records import Annotation, Record, decode_record, sign_bytes, sign_record

NET = hashlib.sha256(b"annot bench network").digest()


def make_records(n: int, authors: int = 100) -> list[Record]:
    signers = [Signer(SigningKey(hashlib.sha256(b"bench %d" % i).digest())) for i in range(authors)]
    task = cid_bytes(b"bench task")
    labels = ("cat", "dog", "fox")
    out = []
    for i in range(n):
        signer = signers[i % authors]
        seq = i // authors + 1
        out.append(sign_record(NET, signer, seq, Annotation(
            task=task, item=cid_bytes(b"item %d" % (i // 3)), label=labels[i % 3])))
    return out


def bench_raw_verify(recs: list[Record]) -> float:
    """Records per second that PyNaCl alone verifies (sign-bytes prepared beforehand)."""
    work = [(r.author, sign_bytes(NET, r.kind, r.author, r.seq, r.body), r.signature)
            for r in recs]
    t0 = time.perf_counter()
    for pk, msg, sig in work:
        nacl.signing.VerifyKey(pk).verify(msg, sig)
    return len(work) / (time.perf_counter() - t0)


def bench_decode_verify(blobs: list[bytes]) -> float:
    t0 = time.perf_counter()
    for b in blobs:
        decode_record(b, NET)
    return len(blobs) / (time.perf_counter() - t0)


def bench_ingest(blobs: list[bytes], batch: int, path: Path) -> float:
    """Records per second through decode + verify + save (one transaction per batch)."""
    store = open_store(path)
    try:
        t0 = time.perf_counter()
        for i in range(0, len(blobs), batch):
            out = store.save_records([decode_record(b, NET) for b in blobs[i:i + batch]])
            assert all(s is Saved.NEW for s in out)
        elapsed = time.perf_counter() - t0
        assert store.count() == len(blobs)
    finally:
        store.close()
    return len(blobs) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=256, help="records per store transaction")
    args = ap.parse_args()

    t0 = time.perf_counter()
    recs = make_records(args.records)
    sign_rate = len(recs) / (time.perf_counter() - t0)
    blobs = [r.data for r in recs]
    avg = sum(map(len, blobs)) / len(blobs)

    raw = bench_raw_verify(recs)
    dec = bench_decode_verify(blobs)
    with tempfile.TemporaryDirectory() as d:
        ingest = bench_ingest(blobs, args.batch, Path(d) / "store.db")

    print(f"records:                      {len(blobs)} annotations, {avg:.0f} bytes each, "
          f"batch {args.batch}")
    print(f"sign (build + sign):          {sign_rate:10,.0f} records/s")
    print(f"raw PyNaCl verify:            {raw:10,.0f} records/s")
    print(f"decode + verify:              {dec:10,.0f} records/s  ({dec / raw:.2f} x raw)")
    print(f"decode + verify + save:       {ingest:10,.0f} records/s  ({ingest / raw:.2f} x raw)")


if __name__ == "__main__":
    main()
