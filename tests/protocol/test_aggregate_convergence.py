"""Dawid-Skene's convergence stop and its integer arithmetic (issue 16).

The EM loop stops after the first round in which no posterior moved by more
than ``TOLERANCE`` (an integer comparison), or at the cap. What must hold:

* the stop is real: on a set that converges before the cap, a larger cap gives
  the identical labels (and a cap of 1 does not, so the rounds matter);
* every number the validators compare is an integer: the posteriors, priors
  and confusion entries of a real run, checked value by value, and no float
  literal, true division or ``float()`` anywhere in the module's code;
* the result does not depend on the order of the annotations, of the labels, or
  on what the authors are called (integer sums commute), for any input
  hypothesis draws, with the default cap and convergence stop.
"""

from __future__ import annotations

import ast
import hashlib
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import dawid_skene as ds_module
from protocol.dawid_skene import ITERATIONS, SCALE, TOLERANCE, dawid_skene
from protocol.grouping import group_by_item
from tests.quality.crowdkit import load_set
from tests.quality.offline import triples

Ann = tuple[bytes, bytes, str]


def skilled(seed: int, items: int = 60, workers: int = 8,
            low: float = 0.55) -> tuple[list[Ann], dict[bytes, str]]:
    """Workers of accuracy ``low``..0.95 on 3 classes, 5 answers per item."""
    rnd = random.Random(seed)
    skill = {b"w%d" % w: low + (0.95 - low) * w / (workers - 1) for w in range(workers)}
    truth = {b"i%03d" % i: rnd.choice("abc") for i in range(items)}
    out = []
    for item, gold in truth.items():
        for w in rnd.sample(sorted(skill), 5):
            label = gold if rnd.random() < skill[w] else rnd.choice([x for x in "abc" if x != gold])
            out.append((item, w, label))
    return out, truth


def test_converged_runs_ignore_a_larger_cap() -> None:
    duck = load_set("d_Duck_Identification")
    anns = triples(duck)
    first = dawid_skene(anns, duck.labels)
    assert dawid_skene(anns, duck.labels, iterations=1000) == first
    assert dawid_skene(anns, duck.labels, iterations=1) != first


def test_the_stop_is_the_first_round_that_moves_no_posterior_more_than_tolerance() -> None:
    anns, _ = skilled(3)
    groups = group_by_item(anns, "abc")
    run = {cap: ds_module._run(groups, ("a", "b", "c"), {}, 1, cap) for cap in range(1, 41)}

    def moved(a: int, b: int) -> int:
        return max(abs(x - y) for k in range(3) for x, y in zip(run[a][k], run[b][k],
                                                                  strict=True))

    stop = min(c for c in range(2, 40) if all(run[d] == run[c] for d in range(c, 41)))
    assert 3 <= stop < 40
    assert moved(stop, stop - 1) <= TOLERANCE < moved(stop - 1, stop - 2)
    assert all(moved(c, c - 1) > TOLERANCE for c in range(2, stop))


def test_every_value_is_an_integer() -> None:
    anns, _ = skilled(5)
    groups = group_by_item(anns, "abc")
    posteriors = ds_module._run(groups, ("a", "b", "c"), {b"w1": 3}, 1, ITERATIONS)
    cells = [[] for _ in range(8 * 3)]  # type: list[list[int]]
    for i, entries in enumerate(groups.values()):
        for author, label in entries:
            cells[int(author[1:]) * 3 + "abc".index(label)].append(i)
    priors, confusion = ds_module._m_step(posteriors, cells, 8, 3)
    for value in [*priors, *(v for row in confusion for v in row),
                  *(v for row in posteriors for v in row)]:
        assert type(value) is int and 0 <= value <= SCALE
    for i in range(len(groups)):  # floor division loses at most 1 per class
        assert SCALE - 3 <= sum(posteriors[k][i] for k in range(3)) <= SCALE


def test_no_float_in_the_code() -> None:
    tree = ast.parse(Path(ds_module.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), node.lineno
        assert not (isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.Div)), \
            node.lineno
        assert not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("float", "round")), node.lineno


def test_learns_who_is_good() -> None:
    """Workers from near-random (0.35) to good (0.95), 5 per item: weighing them by
    their learnt confusion beats the plain vote (measured: 126-133 -> 127-143 of 150;
    with 0.55..0.95 workers the vote is already at 97% and the two are within 2 items)."""
    for seed in range(4):
        anns, truth = skilled(seed, items=150, low=0.35)
        mv = dawid_skene(anns, "abc", iterations=0)
        em = dawid_skene(anns, "abc")
        right = [sum(found[i] == t for i, t in truth.items()) for found in (mv, em)]
        assert right[1] > right[0], (seed, right)


def _renamed(anns: list[Ann]) -> list[Ann]:
    return [(i, hashlib.sha256(w).digest(), label) for i, w, label in anns]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([b"i%d" % i for i in range(6)]),
                          st.sampled_from([b"w%d" % w for w in range(5)]),
                          st.sampled_from("xyz")), max_size=30, unique_by=lambda a: a[:2]),
       st.randoms(use_true_random=False))
def test_order_labels_and_author_names_do_not_matter(answers: list[Ann],
                                                    rnd: random.Random) -> None:
    first = dawid_skene(answers, "xyz")
    assert set(first) == {a[0] for a in answers} and set(first.values()) <= set("xyz")
    shuffled = list(answers)
    rnd.shuffle(shuffled)
    assert dawid_skene(shuffled, "zxy") == first
    assert dawid_skene(_renamed(shuffled), "yzx") == first
