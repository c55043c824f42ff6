"""``python -m tests.faults.run [--quick] [pytest args…]``: the fault suite and its summary.

Runs ``tests/faults`` under pytest (the full, slow version unless ``--quick``)
and prints the totals every test reported: crash cycles, records checked,
partitions healed, attack throughput ratio, fuzz inputs tried, and how many
tests passed, failed, errored or were skipped in this run (nothing hard-coded).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest


class _Outcomes:
    """A pytest plugin counting this run's test outcomes (failures found = failed)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or report.outcome != "passed":
            kind = report.outcome if report.when == "call" or report.skipped else "error"
            self.counts[kind] += 1


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    args = [a for a in argv if a != "--quick"]
    fd, path = tempfile.mkstemp(prefix="annot-faults-", suffix=".jsonl")
    os.close(fd)
    os.environ["ANNOT_FAULTS_SUMMARY"] = path
    os.environ["ANNOT_FAULTS_FULL"] = "0" if quick else "1"
    here = Path(__file__).resolve().parent
    try:
        outcomes = _Outcomes()
        code = pytest.main([str(here), "-p", "no:logging", *args], plugins=[outcomes])
        from tests.faults import summary  # after the env is set: FULL is read at import
        totals, notes = summary.load(path)
        print()
        print(summary.render(totals, notes, outcomes.counts))
    finally:
        os.unlink(path)
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
