"""Smoke test of the benchmark suite: ``--quick`` for ingest and RPC writes a results
file in which every figure has a positive value and baseline; a benchmark that raises
makes the suite exit 1; ``--readme`` writes the README table from a results file and
from nothing else. No timing is asserted: speed targets live in the benchmark
(``make bench``), never in tests."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import run as bench_run
from tests.bench.common import Figure

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    run = subprocess.run(
        [sys.executable, "-m", "tests.bench.run", "--quick", "--only", "ingest,rpc",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)  # a hang guard, not a target
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return out, json.loads(out.read_text())


def test_quick_bench_writes_measured_figures(quick_report: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    _, report = quick_report
    assert report["errors"] == {} and report["quick"] is True
    names = {(f["bench"], f["name"]) for f in report["figures"]}
    assert {b for b, _ in names} == {"ingest", "rpc"}
    assert len(names) == len(report["figures"])  # no row twice
    for f in report["figures"]:
        assert not f["unit"].startswith("FAILED"), f
        for key in ("value", "baseline", "ratio"):  # measured, positive, finite numbers
            assert isinstance(f[key], float | int) and 0 < f[key] < math.inf, (key, f)
        assert f["baseline_name"], f  # every figure names what it is compared with
    assert {"date", "nproc", "python", "cpu", "loadavg"} <= report["machine"].keys()


def test_a_failing_benchmark_fails_the_run(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> list[Figure]:
        raise RuntimeError("the node did not start")

    def ok() -> list[Figure]:
        return [Figure("fine", "a figure", 2.0, "x", 1.0, "one", ">= 1", True)]

    monkeypatch.setattr(bench_run, "_suite", lambda root, quick, only: [("fine", ok),
                                                                      ("boom", boom)])
    out = tmp_path / "results.json"
    assert bench_run.main(["--out", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["errors"] == {"boom": "RuntimeError: the node did not start"}
    failed = [f for f in report["figures"] if f["bench"] == "boom"]
    assert len(failed) == 1 and failed[0]["met"] is False
    monkeypatch.setattr(bench_run, "_suite", lambda root, quick, only: [("fine", ok)])
    assert bench_run.main(["--out", str(out)]) == 0


def test_readme_table_comes_from_the_results_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def figures() -> list[Figure]:
        return [Figure("ingest", "records/s", 1234.5, "rec/s", 2000.0, "raw verify", ">= 0.5x",
                       True),
                Figure("ingest", "p99", 42.0, "ms", 40.0, "baseline p99", "<= 10 ms", False),
                Figure("rpc", "req/s", 500.0, "req/s", 500.0, "/healthz", "-", None)]

    monkeypatch.setattr(bench_run, "_suite", lambda root, quick, only: [("x", figures)])
    results = tmp_path / "results.json"
    assert bench_run.main(["--quick", "--out", str(results)]) == 0
    report = json.loads(results.read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{bench_run.BEGIN}\nan old table\n{bench_run.END}\n"
                      "after\n", encoding="utf-8")
    assert bench_run.main(["--out", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{bench_run.END}\nafter\n")
    assert "an old table" not in text
    section = text[text.index(bench_run.BEGIN):text.index(bench_run.END)]
    assert report["machine"]["date"] in section and "QUICK" in section
    for f in report["figures"]:
        assert f"{f['bench']}: {f['name']}" in section
    assert "1,234 rec/s" in section and "1 of 2 targets met" in section
    # a second run changes nothing: the section is a function of the results file
    assert bench_run.main(["--out", str(results), "--readme", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == text
    no_markers = tmp_path / "plain.md"
    no_markers.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no benchmark markers"):
        bench_run.main(["--out", str(results), "--readme", str(no_markers)])
