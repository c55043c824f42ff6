"""annot's aggregation rules on a crowd set, offline, and the side-by-side table with crowd-kit.

The rules are the validators' exact code (:mod:`protocol.aggregate`), fed the
set's first answers per (worker, item) as ``(item, worker, label)`` with ids as
UTF-8 bytes and redundancy 1 (every item gets a label). Used by
``make quality`` (:mod:`tests.quality.quality`) and by the CI test
``tests/quality/test_quality_vs_crowdkit.py``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from protocol.aggregate import dawid_skene, majority
from tests.quality.crowdkit import METHODS, CrowdSet

RULES = ("majority", "dawid-skene")
Ann = tuple[bytes, bytes, str]


def triples(cs: CrowdSet) -> list[Ann]:
    return [(i.encode(), w.encode(), label) for i, w, label in cs.answers]


def run_rule(rule: str, cs: CrowdSet) -> dict[str, str]:
    """item -> label by ``rule`` over the set's first answers."""
    anns = triples(cs)
    if rule == "dawid-skene":
        return {k.decode(): v for k, v in dawid_skene(anns, cs.labels).items()}
    by_item: dict[bytes, list[Ann]] = {}
    for a in anns:
        by_item.setdefault(a[0], []).append(a)
    out: dict[str, str] = {}
    for item, group in by_item.items():
        label = majority(group, cs.labels)
        if label is None:  # unreachable at redundancy 1
            raise AssertionError(f"majority gave no label for item {item!r}")
        out[item.decode()] = label
    return out


def annot_accuracies(cs: CrowdSet) -> tuple[dict[str, float], dict[str, float]]:
    """Accuracy against gold and seconds of each annot rule on ``cs``."""
    acc: dict[str, float] = {}
    secs: dict[str, float] = {}
    for rule in RULES:
        started = time.perf_counter()
        found = run_rule(rule, cs)
        secs[rule] = time.perf_counter() - started
        acc[rule] = sum(found.get(i) == t for i, t in cs.truth.items()) / len(cs.truth)
    return acc, secs


def best_of(crowdkit: Mapping[str, float | None]) -> tuple[str, float]:
    """The best measured crowd-kit method and its accuracy (first in :data:`METHODS`
    order on a tie); ``None`` marks a method a partial run did not measure."""
    measured = {m: a for m in METHODS if (a := crowdkit.get(m)) is not None}
    top = max(measured.values())
    return next(m for m, a in measured.items() if a == top), top


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def table(rows: list[tuple[CrowdSet, dict[str, float], Mapping[str, float | None]]]
          ) -> tuple[str, bool]:
    """The side-by-side table, and whether annot's best rule >= crowd-kit's best on every set
    and annot's majority >= crowd-kit's MV."""
    head = ["data set", "answers", "dropped", "items", "K", "annot MV", "annot DS",
            *(f"ck {m}" for m in METHODS), "best", "annot>=best"]
    fmt = "{:<34} {:>7} {:>7} {:>6} {:>2} {:>8} {:>8}" + " {:>11}" * len(METHODS) + \
        " {:>14} {:>11}"
    lines = [fmt.format(*head)]
    ok = True
    for cs, annot, ck in rows:
        method, top = best_of(ck)
        mv = ck["MV"]
        good = max(annot.values()) >= top and (mv is None or annot["majority"] >= mv)
        ok &= good
        lines.append(fmt.format(
            cs.name, len(cs.answers), cs.dropped, len({a[0] for a in cs.answers}),
            len(cs.labels), f"{annot['majority']:.4f}", f"{annot['dawid-skene']:.4f}",
            *(_cell(ck.get(m)) for m in METHODS), f"{method} {top:.4f}",
            "yes" if good else "NO"))
    return "\n".join(lines), ok


__all__ = ["RULES", "annot_accuracies", "best_of", "run_rule", "table", "triples"]
