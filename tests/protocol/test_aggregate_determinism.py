"""Issue 9's done-when, on the validators' entry point :func:`protocol.aggregate.propose`.

tests/protocol/test_dawid_skene.py covers ``dawid_skene()`` itself (shuffled
toy and real input, label order, one colluding bloc on a constant label).
What it leaves open, filled here:

* determinism across processes: fresh interpreters with different
  ``PYTHONHASHSEED`` (set and dict order of bytes/str keys change) compute
  byte-identical proposals, equal to this process's;
* order-freedom and repeatability through ``propose`` for both rules, with
  reputation weights, on real crowd data;
* adversaries that always answer *the same wrong label* for an item (a bloc
  mapping the truth to one wrong class), of growing size: Dawid-Skene is never
  worse than majority, through ``propose`` on a ``dawid-skene`` task.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from protocol.aggregate import propose
from protocol.records import Task

ROOT = Path(__file__).resolve().parents[2]
CROWD = ROOT / "tests" / "data" / "crowd"
Ann = tuple[bytes, bytes, str]


def crowd_task(name: str, rule: str, limit: int | None = None) -> tuple[Task, list[Ann]]:
    """A task over a crowd set's items (ids as 32-byte digests, like CIDs' multihashes)."""
    with (CROWD / name / "answer.csv").open(newline="") as f:
        rows = [r for r in list(csv.reader(f))[1:] if r]
    ids = list(dict.fromkeys(r[0] for r in rows))[:limit]
    item = {i: hashlib.sha256(i.encode()).digest() for i in ids}
    anns = [(item[r[0]], hashlib.sha256(r[1].encode()).digest(), r[2]) for r in rows
            if r[0] in item]
    labels = tuple(sorted({a[2] for a in anns}))
    redundancy = min(sum(1 for a in anns if a[0] == i) for i in item.values())
    task = Task(title=name, labels=labels, items=tuple(item.values()), redundancy=redundancy,
                reward_per_item=1, validator_share_bps=0, rule=rule)
    return task, anns


def digest(found: dict[bytes, str | None]) -> str:
    return hashlib.sha256(repr(sorted(found.items())).encode()).hexdigest()


CHILD = """
import importlib.util
spec = importlib.util.spec_from_file_location("determinism", {path!r})
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
for rule in ("majority", "dawid-skene"):
    task, anns = mod.crowd_task("s4_Face_Sentiment_Identification", rule)
    print(mod.digest(mod.propose(task, anns, closed=False, weights=mod.weights_of(anns))))
"""


def weights_of(anns: list[Ann]) -> dict[bytes, int]:
    """Deterministic reputation-like weights 1..5 for every other author."""
    authors = sorted({a[1] for a in anns})
    return {a: 1 + a[0] % 5 for a in authors[::2]}


def test_fresh_interpreters_with_other_hash_seeds_agree() -> None:
    want = []
    for rule in ("majority", "dawid-skene"):
        task, anns = crowd_task("s4_Face_Sentiment_Identification", rule)
        want.append(digest(propose(task, anns, closed=False, weights=weights_of(anns))))
    code = CHILD.format(path=__file__)
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True, timeout=60).stdout.split()
        assert out == want, f"PYTHONHASHSEED={seed}"


@pytest.mark.parametrize("rule", ["majority", "dawid-skene"])
def test_propose_ignores_order_and_repeats_exactly(rule: str) -> None:
    task, anns = crowd_task("s4_Dog_data", rule, limit=300)
    weights = weights_of(anns)
    first = propose(task, anns, closed=False, weights=weights)
    assert None not in first.values() and len(first) == 300
    assert propose(task, anns, closed=False, weights=weights) == first  # repeated run
    for seed in range(3):
        shuffled = list(anns)
        random.Random(seed).shuffle(shuffled)
        relabelled = Task(task.title, task.labels[::-1], task.items, task.redundancy,
                          task.reward_per_item, task.validator_share_bps, rule=rule)
        assert propose(relabelled, shuffled, closed=False, weights=dict(
            reversed(list(weights.items())))) == first


def colluded(seed: int, colluders: int, permute: bool) -> tuple[Task, list[Ann],
                                                               dict[bytes, str]]:
    """240 items, each labelled by 5 of 12 honest workers (70% accurate) and by every
    colluder. ``permute``: the bloc answers the label after the truth (one wrong label
    per item, agreed in advance); else it always answers ``c``."""
    rnd = random.Random(seed)
    labels = ("a", "b", "c")
    items = [hashlib.sha256(b"item %d" % i).digest() for i in range(240)]
    truth = {i: rnd.choice(labels) for i in items}
    anns: list[Ann] = []
    for item in items:
        gold = truth[item]
        for w in rnd.sample(range(12), 5):
            label = gold if rnd.random() < 0.7 else rnd.choice([x for x in labels if x != gold])
            anns.append((item, b"honest%02d" % w, label))
        wrong = labels[(labels.index(gold) + 1) % len(labels)] if permute else "c"
        anns += [(item, b"bloc%d" % c, wrong) for c in range(colluders)]
    task = Task(title="collusion", labels=labels, items=tuple(items), redundancy=5,
                reward_per_item=1, validator_share_bps=0, rule="dawid-skene")
    return task, anns, truth


def accuracies(seed: int, colluders: int, permute: bool) -> tuple[float, float]:
    """(Dawid-Skene, majority) accuracy, both through propose() as validators run it."""
    task, anns, truth = colluded(seed, colluders, permute)
    mv_task = Task(task.title, task.labels, task.items, task.redundancy,
                   task.reward_per_item, task.validator_share_bps, rule="majority")
    ds = propose(task, anns, closed=False)
    mv = propose(mv_task, anns, closed=False)
    return (sum(ds[i] == t for i, t in truth.items()) / len(truth),
            sum(mv[i] == t for i, t in truth.items()) / len(truth))


@pytest.mark.parametrize("colluders", [2, 3, 4, 6, 8])
def test_a_bloc_always_answering_one_label_is_ignored(colluders: int) -> None:
    """Measured: DS stays at 0.85-0.88 whatever the bloc's size; majority falls to 0.35."""
    for seed in range(3):
        ds, mv = accuracies(seed, colluders, permute=False)
        assert ds >= mv and ds > 0.8, (colluders, seed, ds, mv)


@pytest.mark.parametrize("colluders", [1, 2, 3])
def test_a_smaller_bloc_on_the_same_wrong_label_is_seen_through(colluders: int) -> None:
    """Measured: DS 0.98-1.0 while majority falls 0.83 -> 0.44 (3 colluders per 5 honest)."""
    for seed in range(3):
        ds, mv = accuracies(seed, colluders, permute=True)
        assert ds >= mv and ds > 0.95, (colluders, seed, ds, mv)


# A bloc that is the plurality on most items and always answers the same wrong label
# is indistinguishable, to unsupervised EM, from honest workers under a relabelling of
# the classes (Dawid-Skene accuracy 0.0, majority 0.25; this was a strict xfail here).
# Hidden gold items catch it: tests/protocol/test_gold.py::
# test_gold_items_catch_a_colluding_plurality.
