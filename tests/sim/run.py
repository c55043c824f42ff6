"""Run the consensus simulator over many seeds, or prove it catches broken rules.

    python -m tests.sim.run --seeds 10000
    python -m tests.sim.run --seeds 200 --broken quorum-half

Prints the seed rate and every violation; exits 1 if any seed fails (for a
``--broken`` run: 0 when a violation was found, so CI can assert the catch).
"""

from __future__ import annotations

import argparse
import sys
import time

from protocol.consensus import Engine, _Item
from protocol.genesis import Genesis

from .sim import EngineFactory, run_seed


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


def run_seeds(start: int, count: int, factory: EngineFactory | None = None,
              byz_max: bool = False) -> tuple[list[str], float]:
    """(violations, seconds) for seeds start .. start+count-1."""
    t0 = time.perf_counter()
    found: list[str] = []
    for seed in range(start, start + count):
        found += run_seed(seed, factory, byz_max)
    return found, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sim.run", description=__doc__)
    ap.add_argument("--seeds", type=int, default=1000, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="the first seed")
    ap.add_argument("--broken", choices=sorted(BROKEN), help="run a deliberately broken rule")
    args = ap.parse_args(argv)
    factory = BROKEN[args.broken] if args.broken else None
    found, secs = run_seeds(args.start, args.seeds, factory, byz_max=bool(args.broken))
    for v in found[:50]:
        print(v)
    if len(found) > 50:
        print(f"... and {len(found) - 50} more")
    rate = args.seeds / secs if secs else float("inf")
    print(f"{args.seeds} seeds from {args.start} in {secs:.2f} s ({rate:.0f} seeds/s), "
          f"{len(found)} violations")
    if args.broken:
        return 0 if any(v.startswith("SAFETY") for v in found) else 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
