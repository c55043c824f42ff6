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
)
# The bugs these tests found earlier are in the git log (their fixing commits), not
# here: the summary prints only what this run measured.


def render(totals: Counter[str], notes: dict[str, Any],
           outcomes: Counter[str] | None = None) -> str:
    """The run's counters; ``outcomes`` (passed / failed / error / skipped tests, as
    counted by ``tests.faults.run``) when known."""
    lines = ["annot fault suite summary" + (" (full)" if FULL else " (quick)")]
    for key, label in LABELS:
        lines.append(f"  {label:<46} {totals.get(key, 0):>10,}")
    if outcomes is not None:
        text = ", ".join(f"{outcomes[k]} {k}" for k in ("passed", "failed", "error", "skipped"))
        lines.append(f"  {'tests in this run':<46} {text}")
    for key in sorted(notes):
        lines.append(f"  {key:<46} {notes[key]}")
    return "\n".join(lines)
