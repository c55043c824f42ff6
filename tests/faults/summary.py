"""The fault suite's numbers: each test adds to counters, the run prints them.

Counters go to a JSON-lines file named by ``ANNOT_FAULTS_SUMMARY`` (set by
``python -m tests.faults.run``) and to an in-process dict that the conftest
prints at the end of a pytest session. ``FULL`` (``ANNOT_FAULTS_FULL=1``)
selects the long version of every test; without it each test runs its quick
version, the part that belongs in ``make test``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

FULL = os.environ.get("ANNOT_FAULTS_FULL") == "1"
TOTALS: Counter[str] = Counter()
NOTES: dict[str, Any] = {}


def scale(quick: int, full: int) -> int:
    return full if FULL else quick


def add(**counts: int) -> None:
    TOTALS.update(counts)
    _write({"add": counts})


def note(**values: Any) -> None:
    NOTES.update(values)
    _write({"note": values})


def _write(entry: dict[str, Any]) -> None:
    path = os.environ.get("ANNOT_FAULTS_SUMMARY")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def load(path: str) -> tuple[Counter[str], dict[str, Any]]:
    totals: Counter[str] = Counter()
    notes: dict[str, Any] = {}
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            totals.update(e.get("add", {}))
            notes.update(e.get("note", {}))
    return totals, notes


LABELS = (
    ("crash_cycles", "crash cycles (SIGKILL + restart)"),
    ("records_checked", "acknowledged records checked after crashes"),
    ("partitions_healed", "partitions / bad links healed"),
    ("fuzz_inputs", "fuzz inputs tried"),
    ("adversarial_messages", "adversarial messages sent"),
    ("disk_faults", "disk faults injected"),
    ("failures_found", "failures found (and fixed; see report)"),
)


# what these tests found, each fixed in the same change (file: symptom -> fix)
FIXED = (
    "node/p2p/sync.py: one peer's half-open sync streams held all 16 server slots, honest"
    " peers got 'busy' for 20 s -> at most 2 sessions per peer, the excess penalized",
    "node/p2p/sync.py: oversized length prefixes / broken varints on sync streams were"
    " only logged -> FrameError, counted and charged to the peer",
    "node/blockstore.py: a full or read-only disk raised a bare OSError (RPC -32603)"
    " -> BlockWriteError (a BlockStoreError, still an OSError)",
    "node/store.py: integrity_check() raised sqlite3.DatabaseError on a malformed file"
    " -> returns the problem",
)


def render(totals: Counter[str], notes: dict[str, Any]) -> str:
    lines = ["annot fault suite summary" + (" (full)" if FULL else " (quick)")]
    totals = Counter(totals)
    totals["failures_found"] = max(totals.get("failures_found", 0), len(FIXED))
    for key, label in LABELS:
        lines.append(f"  {label:<46} {totals.get(key, 0):>10,}")
    lines += [f"    fixed: {f}" for f in FIXED]
    for key in sorted(notes):
        lines.append(f"  {key:<46} {notes[key]}")
    return "\n".join(lines)
