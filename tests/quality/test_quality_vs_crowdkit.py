"""annot's truth inference against crowd-kit's, on every crowd set in tests/data/crowd.

crowd-kit is not installed by the ``test`` extra (it takes minutes), so its
accuracies come from ``tests/data/crowd/crowdkit_accuracy.json``, written by
``make quality`` when it ran crowd-kit 1.4.2 on the same first answers per
(worker, item). annot's accuracies are recomputed here from the CSVs by the
validators' own code. The file's SHA-256 of each set must match the CSVs, so a
data change without a new ``make quality`` run fails rather than passing on
stale figures. A method the file marks ``null`` (not measured: the file's
``note`` says why) is left out of "the best"; MV and DS must be there.
"""

from __future__ import annotations

import functools

import pytest

from tests.quality.crowdkit import METHODS, digest, load_accuracies, load_set, set_names
from tests.quality.offline import annot_accuracies, best_of

SAVED = load_accuracies()["sets"]


@functools.cache
def annot(name: str) -> dict[str, float]:
    return annot_accuracies(load_set(name))[0]


def test_the_file_covers_every_set_with_its_current_data() -> None:
    assert sorted(SAVED) == set_names() and len(SAVED) >= 5
    for name, entry in SAVED.items():
        assert entry["sha256"] == digest(name), f"{name} changed since make quality ran"
        assert set(entry["accuracy"]) == set(METHODS)
        measured = [a for a in entry["accuracy"].values() if a is not None]
        assert entry["accuracy"]["MV"] is not None and entry["accuracy"]["DS"] is not None
        assert all(0.0 < a <= 1.0 for a in measured)


@pytest.mark.parametrize("name", sorted(SAVED))
def test_dawid_skene_at_least_the_best_crowdkit_method(name: str) -> None:
    method, best = best_of(SAVED[name]["accuracy"])
    got = annot(name)["dawid-skene"]
    assert got >= best, f"{name}: annot dawid-skene {got:.4f} < crowd-kit {method} {best:.4f}"


@pytest.mark.parametrize("name", sorted(SAVED))
def test_majority_at_least_crowdkit_majority_vote(name: str) -> None:
    got = annot(name)["majority"]
    want = SAVED[name]["accuracy"]["MV"]
    assert got >= want, f"{name}: annot majority {got:.4f} < crowd-kit MV {want:.4f}"
