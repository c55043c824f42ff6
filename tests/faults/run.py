"""``python -m tests.faults.run [--quick] [pytest args…]``: the fault suite and its summary.

Runs ``tests/faults`` under pytest (the full, slow version unless ``--quick``)
and prints the totals every test reported: crash cycles, records checked,
partitions healed, attack throughput ratio, fuzz inputs tried, failures.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    args = [a for a in argv if a != "--quick"]
    fd, path = tempfile.mkstemp(prefix="annot-faults-", suffix=".jsonl")
    os.close(fd)
    os.environ["ANNOT_FAULTS_SUMMARY"] = path
    os.environ["ANNOT_FAULTS_FULL"] = "0" if quick else "1"
    here = Path(__file__).resolve().parent
    try:
        code = pytest.main([str(here), "-p", "no:logging", *args])
        from tests.faults import summary  # after the env is set: FULL is read at import
        totals, notes = summary.load(path)
        print()
        print(summary.render(totals, notes))
    finally:
        os.unlink(path)
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
