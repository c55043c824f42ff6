"""The simulator: 1,000 seeds hold safety and liveness; broken rules are caught."""

from __future__ import annotations

import pytest

from .run import BROKEN, run_seeds
from .sim import run_seed


def test_thousand_seeds_hold_safety_and_liveness() -> None:
    found, _ = run_seeds(0, 1_000)
    assert found == []


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_broken_rule_is_caught(rule: str) -> None:
    for seed in range(400):
        if any(v.startswith("SAFETY") for v in run_seed(seed, BROKEN[rule], byz_max=True)):
            return
    pytest.fail(f"the simulator did not catch the broken rule {rule!r} in 400 seeds")


def test_same_seed_same_run() -> None:
    assert run_seed(7) == run_seed(7) == []
