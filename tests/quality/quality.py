"""Replay the public crowd data sets through both aggregation rules.

Run from the repository root::

    .venv/bin/python -m tests.quality.quality [DATA_DIR]

``DATA_DIR`` defaults to ``<repo>/../shared/data/crowd``. For each data set it
prints answers, items, workers, classes, the accuracy against gold of
``majority`` and ``dawid-skene`` (the exact code validators run, fed the CSV
rows as ``(item, worker, label)`` with ids as UTF-8 bytes), the seconds each
took, and the published majority / Dawid-Skene accuracies where the data
set's README gives them (crowd-kit's benchmark).
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from protocol.aggregate import dawid_skene, majority

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "crowd"
SETS = (
    "d_Duck_Identification", "d_jn_product", "d_sentiment", "s4_Dog_data",
    "s4_Face_Sentiment_Identification",
)
PUBLISHED = {"d_jn_product": ("0.897", "0.940"), "d_sentiment": ("0.932", "0.960")}

Ann = tuple[bytes, bytes, str]


def load(folder: Path) -> tuple[list[Ann], dict[bytes, str]]:
    """Answers and gold labels; columns by position (the sets name them differently)."""
    with (folder / "answer.csv").open(newline="") as f:
        answers = [(r[0].encode(), r[1].encode(), r[2]) for r in list(csv.reader(f))[1:] if r]
    with (folder / "truth.csv").open(newline="") as f:
        truth = {r[0].encode(): r[1] for r in list(csv.reader(f))[1:] if r}
    return answers, truth


def run_majority(answers: list[Ann], labels: list[str]) -> dict[bytes, str]:
    by_item: dict[bytes, list[Ann]] = {}
    for a in answers:
        by_item.setdefault(a[0], []).append(a)
    out: dict[bytes, str] = {}
    for item, anns in by_item.items():
        label = majority(anns, labels)
        assert label is not None  # redundancy 1: every listed item has a label
        out[item] = label
    return out


def accuracy(found: dict[bytes, str], truth: dict[bytes, str]) -> float:
    return sum(found.get(item) == label for item, label in truth.items()) / len(truth)


def main(argv: list[str]) -> int:
    data = Path(argv[0]) if argv else DEFAULT_DATA
    if not data.is_dir():
        print(f"no crowd data at {data}", file=sys.stderr)
        return 1
    head = ("data set", "answers", "items", "workers", "K", "MV acc", "MV s", "DS acc", "DS s",
            "pub MV", "pub DS")
    print("{:<34} {:>7} {:>6} {:>7} {:>2} {:>7} {:>6} {:>7} {:>6} {:>6} {:>6}".format(*head))
    for name in SETS:
        answers, truth = load(data / name)
        labels = sorted({label for _, _, label in answers})
        start = time.perf_counter()
        mv = accuracy(run_majority(answers, labels), truth)
        mv_s = time.perf_counter() - start
        start = time.perf_counter()
        ds = accuracy(dawid_skene(answers, labels), truth)
        ds_s = time.perf_counter() - start
        pub_mv, pub_ds = PUBLISHED.get(name, ("-", "-"))
        print(f"{name:<34} {len(answers):>7} {len({a[0] for a in answers}):>6} "
              f"{len({a[1] for a in answers}):>7} {len(labels):>2} {mv:>7.4f} {mv_s:>6.2f} "
              f"{ds:>7.4f} {ds_s:>6.2f} {pub_mv:>6} {pub_ds:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
