"""Smoke test of the benchmark suite: ``--quick`` for ingest and RPC writes a results
file in which every figure has a value, a baseline and a ratio. No timing is asserted:
speed targets live in the benchmark (``make bench``), never in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_writes_ratios(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "tests.bench.run", "--quick", "--only", "ingest,rpc",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180)  # a hang guard, not a target
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["errors"] == {}
    benches = {f["bench"] for f in report["figures"]}
    assert benches == {"ingest", "rpc"}
    for f in report["figures"]:
        assert f["value"] is not None and f["baseline"] is not None, f
        assert f["ratio"] == f["value"] / f["baseline"], f
    assert {"date", "nproc", "python", "cpu"} <= report["machine"].keys()
