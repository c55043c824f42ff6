"""crowd-kit's aggregators on the crowd sets, and the accuracy file the CI test reads.

crowd-kit (Toloka's library of truth-inference methods) is the reference annot's
rules are measured against. It is pinned in the ``quality`` extra of
``pyproject.toml`` (crowd-kit 1.4.2 with the scikit-learn and pandas it works
with), never a runtime dependency and not in the ``test`` extra: it pulls in
transformers and pyarrow and takes minutes to install. So ``make quality``
installs it, runs every method here on every set in ``tests/data/crowd`` in the
same run as annot's rules, and writes what it measured to
``tests/data/crowd/crowdkit_accuracy.json``; the CI test
(``tests/quality/test_quality_vs_crowdkit.py``) recomputes annot's accuracies
from the CSVs and compares them with that file. The file records the SHA-256 of
each set's CSVs, so a changed data set without a new ``make quality`` run fails
the test instead of comparing against stale figures.

Both sides see the same answers: one per (worker, item), the first in the file
(:func:`first_answers`), as the network keeps the first annotation of an author
on an item. Methods run with crowd-kit's defaults (MACE and GLAD are seeded, so
every run gives the same figures).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CROWD = Path(__file__).resolve().parents[1] / "data" / "crowd"
ACCURACY_FILE = CROWD / "crowdkit_accuracy.json"
METHODS = ("MV", "Wawa", "DS", "OneCoinDS", "GLAD", "MACE")
CROWDKIT_VERSION = "1.4.2"

Row = tuple[str, str, str]  # (item, worker, label) as in the CSV


@dataclass(frozen=True, slots=True)
class CrowdSet:
    """One data set: first answers per (worker, item), gold labels, what was dropped."""

    name: str
    answers: list[Row]
    truth: dict[str, str]
    dropped: int  # later answers by a worker to an item already answered

    @property
    def labels(self) -> list[str]:
        return sorted({label for _, _, label in self.answers})


def first_answers(rows: Sequence[Row]) -> tuple[list[Row], int]:
    """The first answer of each (item, worker) pair, in file order, and how many were dropped."""
    seen: set[tuple[str, str]] = set()
    out: list[Row] = []
    for item, worker, label in rows:
        if (item, worker) in seen:
            continue
        seen.add((item, worker))
        out.append((item, worker, label))
    return out, len(rows) - len(out)


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [r for r in list(csv.reader(f))[1:] if r]  # columns by position


def load_set(name: str, data: Path = CROWD) -> CrowdSet:
    rows = _rows(data / name / "answer.csv")
    answers, dropped = first_answers([(r[0], r[1], r[2]) for r in rows])
    truth = {r[0]: r[1] for r in _rows(data / name / "truth.csv")}
    return CrowdSet(name, answers, truth, dropped)


def set_names(data: Path = CROWD) -> list[str]:
    """Every folder of ``data`` holding an ``answer.csv`` and a ``truth.csv``, sorted."""
    return sorted(p.name for p in data.iterdir()
                  if (p / "answer.csv").is_file() and (p / "truth.csv").is_file())


def digest(name: str, data: Path = CROWD) -> str:
    """SHA-256 over a set's answer.csv then truth.csv: what the figures were measured on."""
    h = hashlib.sha256()
    for part in ("answer.csv", "truth.csv"):
        h.update((data / name / part).read_bytes())
    return h.hexdigest()


def accuracy(found: dict[str, str], truth: dict[str, str]) -> float:
    return sum(found.get(item) == label for item, label in truth.items()) / len(truth)


def _methods() -> dict[str, Callable[[], Any]]:
    from crowdkit.aggregation import (  # the quality extra: see the module docstring
        GLAD,
        MACE,
        DawidSkene,
        MajorityVote,
        OneCoinDawidSkene,
        Wawa,
    )
    return {"MV": MajorityVote, "Wawa": Wawa, "DS": DawidSkene, "OneCoinDS": OneCoinDawidSkene,
            "GLAD": GLAD, "MACE": MACE}


def run_crowdkit(cs: CrowdSet, say: Callable[[str], None] = lambda _: None
                 ) -> tuple[dict[str, float], dict[str, float]]:
    """Accuracy and seconds of every crowd-kit method on ``cs``."""
    import pandas as pd
    frame = pd.DataFrame(cs.answers, columns=["task", "worker", "label"])
    acc: dict[str, float] = {}
    secs: dict[str, float] = {}
    for name, make in _methods().items():
        started = time.perf_counter()
        found = make().fit_predict(frame)
        secs[name] = time.perf_counter() - started
        acc[name] = accuracy({str(k): str(v) for k, v in found.items()}, cs.truth)
        say(f"   crowd-kit {name:<9} {cs.name}: {acc[name]:.4f} in {secs[name]:.1f} s")
    return acc, secs


def save_accuracies(results: dict[str, dict[str, float | None]], data: Path = CROWD,
                    path: Path = ACCURACY_FILE, note: str = "") -> None:
    """Write the measured crowd-kit accuracies, with each set's digest, for the CI test.
    ``None``: a method not measured (``make quality`` measures every one; a file
    written from a partial run says so rather than inventing a figure). Full float
    precision: a tie with annot (the same number of items right) must compare equal."""
    import crowdkit
    doc = {
        "crowd_kit": getattr(crowdkit, "__version__", CROWDKIT_VERSION),
        "answers": "first answer per (worker, item)",
        "written_by": "make quality (python -m tests.quality.quality --crowdkit)",
        **({"note": note} if note else {}),
        "sets": {name: {"sha256": digest(name, data), "accuracy": {
            m: a for m, a in acc.items()}}
            for name, acc in sorted(results.items())},
    }
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_accuracies(path: Path = ACCURACY_FILE) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


__all__ = [
    "ACCURACY_FILE", "CROWD", "METHODS", "CrowdSet", "accuracy", "digest", "first_answers",
    "load_accuracies", "load_set", "run_crowdkit", "save_accuracies", "set_names",
]
