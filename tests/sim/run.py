"""Run the consensus simulator over many seeds, or prove it catches broken rules.

    python -m tests.sim.run --seeds 10000                  # normal + adversarial seeds
    python -m tests.sim.run --seeds 300 --broken no-lock   # detection rate of a bad rule
    python -m tests.sim.run --ci --json out.json           # what CI checks (test_sim.py)

Prints the seed rate, every violation, the worst heal-to-finality time (what
``LIVENESS_MS`` is set from) and, for a ``--broken`` run, in how many seeds the
broken rule was caught. Exits 1 if a real-engine seed fails, or if a broken rule
is never caught.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass

from protocol.consensus import Engine, _Item
from protocol.genesis import Genesis

from .sim import LIVENESS_MS, EngineFactory, Sim

CI_SEEDS = 300  # seeds 0..299, each in the normal and the adversarial mode
MODES = {"normal": False, "adversarial": True}


class _NoLockEngine(Engine):
    """Never locks: each round prevotes the current proposal (classic bug)."""

    def _lock(self, st: _Item, value: str, rnd: int) -> None:
        return None


def _half_quorum(genesis: Genesis, pk: bytes) -> Engine:
    total = genesis.total_weight
    return Engine(genesis, pk, quorum=lambda w: 2 * w > total)


BROKEN: dict[str, EngineFactory] = {
    "quorum-half": _half_quorum,
    "no-lock": _NoLockEngine,
}


@dataclass(frozen=True, slots=True)
class SeedRun:
    seed: int
    adversarial: bool
    violations: tuple[str, ...]
    lag: int | None  # ms from the later of heal and close to all final (< 0: earlier)
    events: int
    digest: str  # sha256 of every event processed, in order


def run_one(seed: int, factory: EngineFactory | None = None, adversarial: bool = False,
            liveness_ms: int = LIVENESS_MS) -> SeedRun:
    sim = Sim(seed, factory, adversarial, liveness_ms)
    found = sim.run()
    return SeedRun(seed, adversarial, tuple(found), sim.lag, sim.events,
                   sim.trace.hexdigest())


def run_seeds(start: int, count: int, factory: EngineFactory | None = None,
              adversarial: bool = False, liveness_ms: int = LIVENESS_MS) -> list[SeedRun]:
    return [run_one(s, factory, adversarial, liveness_ms) for s in range(start, start + count)]


def caught(runs: list[SeedRun]) -> int:
    """How many seeds saw a SAFETY violation."""
    return sum(any(v.startswith("SAFETY") for v in r.violations) for r in runs)


def trace_digest(runs: list[SeedRun]) -> str:
    """One digest over every seed's full trace."""
    h = hashlib.sha256()
    for r in runs:
        h.update(b"%d %d %s\n" % (r.seed, r.adversarial, r.digest.encode()))
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sim.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=1000, help="how many seeds to run per mode")
    ap.add_argument("--start", type=int, default=0, help="the first seed")
    ap.add_argument("--broken", choices=sorted(BROKEN), help="run a deliberately broken rule "
                    "(adversarial mode only)")
    ap.add_argument("--ci", action="store_true", help=f"the CI seed set: {CI_SEEDS} per mode")
    ap.add_argument("--liveness-ms", type=int, default=LIVENESS_MS,
                    help="the liveness bound (raise it to measure the worst case)")
    ap.add_argument("--json", help="write every seed's result here")
    args = ap.parse_args(argv)
    start, count = (0, CI_SEEDS) if args.ci else (args.start, args.seeds)
    factory = BROKEN[args.broken] if args.broken else None
    modes = {"adversarial": True} if args.broken else MODES
    runs: list[SeedRun] = []
    for name, adversarial in modes.items():
        t0 = time.perf_counter()
        part = run_seeds(start, count, factory, adversarial, args.liveness_ms)
        secs = time.perf_counter() - t0
        runs += part
        found = [v for r in part for v in r.violations]
        shown = 3 if args.broken else 20
        for v in found[:shown]:
            print(v)
        if len(found) > shown:
            print(f"... and {len(found) - shown} more")
        done = [r for r in part if r.lag is not None]
        worst = max(done, key=lambda r: r.lag or 0) if done else None
        print(f"{name}: {count} seeds from {start} in {secs:.2f} s, {len(found)} violations, "
              f"worst heal-to-finality {worst.lag if worst else '-'} ms (seed "
              f"{worst.seed if worst else '-'}; LIVENESS_MS {args.liveness_ms})")
        if args.broken:
            print(f"{args.broken}: caught in {caught(part)} of {count} seeds")
    print(f"trace digest {trace_digest(runs)}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([{
                "seed": r.seed, "adversarial": r.adversarial, "violations": list(r.violations),
                "lag": r.lag, "events": r.events, "digest": r.digest} for r in runs], f)
    if args.broken:
        return 0 if caught(runs) else 1
    return 1 if any(r.violations for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
