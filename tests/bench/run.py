"""The benchmark suite: ``python -m tests.bench.run [--quick] [--only a,b] [--out FILE]``.

``python -m tests.bench.run --readme`` (``make bench-readme``) instead writes the
table of the latest results file into README.md, between its benchmark markers.

Runs, in order, ingest, gossip, catch-up, finality (with the RPC benchmark
against its validator), clients (group-commit submissions, gateway reads under
ingest), memory, items_dir, payout; prints one table and writes
``tests/bench/results.json``. Every figure stands beside a baseline measured
in the same run, as a ratio, because absolute numbers drift on shared
machines. Loopback only; every loop is bounded, so the whole suite finishes in
under 10 minutes on a 2-core machine. ``--quick`` runs everything at reduced
size, a smoke test, not a measurement.

Speed targets live here and only here; the tests never assert timings. Exits 1
when a benchmark raised (its row says FAILED), 0 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench import (
    catchup,
    clients,
    finality,
    gossip,
    ingest,
    items_dir,
    memory,
    payout,
    rpc,
)
from tests.bench.common import Figure, machine, table, verify_limit

BENCHES = ("ingest", "gossip", "catchup", "finality", "rpc", "clients", "memory", "items_dir",
           "payout")
RESULTS = Path(__file__).resolve().parent / "results.json"
README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- bench-table: begin (written by make bench-readme from tests/bench/results.json) -->"
END = "<!-- bench-table: end -->"


def _suite(root: Path, quick: bool, only: set[str]) -> list[tuple[str, Callable[[], list[Figure]]]]:
    out: list[tuple[str, Callable[[], list[Figure]]]] = []
    if "ingest" in only:
        out.append(("ingest", lambda: ingest.run(quick)))
    if "gossip" in only:
        out.append(("gossip", lambda: gossip.run(root / "gossip", quick)))
    if "catchup" in only:
        out.append(("catchup", lambda: catchup.run(root / "catchup", quick)))
    if "finality" in only:
        # the RPC benchmark reuses the finality network's validator (2,000 final items)
        def fin() -> list[Figure]:
            bench = (lambda c, t, i: rpc.bench(c, t, i, 2.0 if quick else 5.0)) \
                if "rpc" in only else None
            return finality.run(root / "finality", quick, bench)
        out.append(("finality", fin))
    elif "rpc" in only:
        out.append(("rpc", lambda: rpc.run(root / "rpc", quick)))
    if "clients" in only:
        out.append(("clients", lambda: clients.run(root / "clients", quick)))
    if "memory" in only:
        out.append(("memory", lambda: memory.run(root / "memory", quick)))
    if "items_dir" in only:
        out.append(("items_dir", lambda: items_dir.run(root / "items_dir", quick)))
    if "payout" in only:
        out.append(("payout", lambda: payout.run(root / "payout", quick)))
    return out


def header(info: dict[str, Any], quick: bool) -> str:
    return (f"annot benchmarks — {info['date']}, {info['nproc']} cores ({info['cpu']}), "
            f"Python {info['python']}, load avg {info['loadavg'][0]:.1f}"
            f"{' — QUICK (smoke test, not a measurement)' if quick else ''}")


def readme_section(report: dict[str, Any]) -> str:
    """The README's benchmark block, made only from a results file."""
    fields = {f.name for f in dataclasses.fields(Figure)}
    figures = [Figure(**{k: v for k, v in f.items() if k in fields}) for f in report["figures"]]
    met = [f for f in figures if f.met is not None]
    lines = [BEGIN, "```", header(report["machine"], report["quick"]), table(figures), "```",
             "", f"{sum(bool(f.met) for f in met)} of {len(met)} targets met"
             + (f"; benchmarks that failed: {', '.join(sorted(report['errors']))}"
                if report["errors"] else "") + ".", END]
    return "\n".join(lines)


def write_readme(results: Path, readme: Path) -> None:
    """Replace the text between the markers in ``readme`` with ``results``' table."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: no benchmark markers ({BEGIN} … {END})")
    section = readme_section(json.loads(results.read_text(encoding="utf-8")))
    readme.write_text(text[:start] + section + text[end + len(END):], encoding="utf-8")
    print(f"{readme}: benchmark table from {results}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes: a smoke test")
    ap.add_argument("--only", default=",".join(BENCHES),
                    help=f"comma-separated subset of {','.join(BENCHES)}")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--readme", type=Path, nargs="?", const=README,
                    help="write the table of --out (the latest results) into this README")
    args = ap.parse_args(argv)
    if args.readme:
        write_readme(args.out, args.readme)
        return 0
    only = {b.strip() for b in args.only.split(",") if b.strip()}
    unknown = only - set(BENCHES)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    limit, lname = verify_limit()  # the same run's raw verify rate, before the load starts
    print(f"# limit: {lname} = {limit:,.0f} verifications/s", flush=True)
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="annot-bench-") as d:
        for name, fn in _suite(Path(d), args.quick, only):
            t0 = time.monotonic()
            print(f"# {name} …", flush=True)
            try:
                figs = fn()
            except Exception as exc:
                errors[name] = "".join(traceback.format_exception_only(exc)).strip()
                traceback.print_exc()
                figs = [Figure(name, f"FAILED: {errors[name][:80]}", None, "", met=False)]
            timings[name] = time.monotonic() - t0
            figures += figs
            print(table(figs), flush=True)
    info = machine()
    report = {"machine": info, "quick": args.quick, "seconds": time.monotonic() - started,
              "bench_seconds": timings, "errors": errors,
              "figures": [f.to_json() for f in figures]}
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(header(info, args.quick))
    print(table(figures))
    met = [f for f in figures if f.met is not None]
    print(f"\n{sum(bool(f.met) for f in met)}/{len(met)} targets met; "
          f"{report['seconds']:.0f} s; results in {args.out}")
    if errors:
        print(f"benchmarks that failed: {', '.join(sorted(errors))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
