"""Proposals: weighted majority, tie-break, EXPIRED, propose() readiness, purity."""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.aggregate import majority, propose
from protocol.errors import AggregationError, DuplicateAnnotationError
from protocol.grouping import TIE_TAG, tie_key
from protocol.records import EXPIRED, Task

LABELS = ("cat", "dog", "fox")
ITEM = b"item-1"
REPO = Path(__file__).resolve().parents[2]
MINE = ("grouping", "aggregate", "dawid_skene", "tally", "ledger")


def anns(*pairs: tuple[bytes, str], item: bytes = ITEM) -> list[tuple[bytes, bytes, str]]:
    return [(item, author, label) for author, label in pairs]


def make_task(items: tuple[bytes, ...], rule: str = "majority", redundancy: int = 2) -> Task:
    return Task(title="t", labels=LABELS, items=items, redundancy=redundancy,
                reward_per_item=100, validator_share_bps=1000, rule=rule)


def test_plurality_wins() -> None:
    a = anns((b"a", "cat"), (b"b", "dog"), (b"c", "dog"))
    assert majority(a, LABELS, redundancy=3) == "dog"


def test_weights_override_headcount() -> None:
    a = anns((b"a", "cat"), (b"b", "dog"), (b"c", "dog"))
    assert majority(a, LABELS, {b"a": 5}, redundancy=3) == "cat"
    assert majority(a, LABELS, {b"a": 2}, redundancy=3, default_weight=2) == "dog"


def test_short_item_waits_then_expires() -> None:
    a = anns((b"a", "cat"))
    assert majority(a, LABELS, redundancy=2) is None
    assert majority(a, LABELS, redundancy=2, closed=True) == EXPIRED
    assert majority([], LABELS, redundancy=1) is None
    assert majority([], LABELS, redundancy=1, closed=True) == EXPIRED
    full = anns((b"a", "cat"), (b"b", "cat"))
    assert majority(full, LABELS, redundancy=2, closed=True) == "cat"


def test_tie_break_is_hash_of_item_and_label() -> None:
    a = anns((b"a", "cat"), (b"b", "dog"))
    want = min(("cat", "dog"), key=lambda lab: hashlib.sha256(
        TIE_TAG + ITEM + b"\x00" + lab.encode()).digest())
    assert majority(a, LABELS, redundancy=2) == want
    # the schema's order plays no part
    assert majority(a, tuple(reversed(LABELS)), redundancy=2) == want
    assert tie_key(ITEM, want) < tie_key(ITEM, "dog" if want == "cat" else "cat")


def test_tie_break_is_unbiased_across_items() -> None:
    wins = {"cat": 0, "dog": 0}
    for n in range(400):
        item = n.to_bytes(4, "big")
        label = majority(anns((b"a", "cat"), (b"b", "dog"), item=item), LABELS, redundancy=2)
        assert label is not None and label in wins
        wins[label] += 1
    assert 150 < wins["cat"] < 250  # binomial(400, 1/2): far inside 5 sigma


def test_bad_inputs_raise_aggregation_errors() -> None:
    with pytest.raises(DuplicateAnnotationError):
        majority(anns((b"a", "cat"), (b"a", "dog")), LABELS)
    with pytest.raises(AggregationError, match="not one of"):
        majority(anns((b"a", "owl")), LABELS)
    with pytest.raises(AggregationError, match="one item"):
        majority(anns((b"a", "cat")) + anns((b"a", "cat"), item=b"other"), LABELS)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(AggregationError):
            majority(anns((b"a", "cat")), LABELS, {b"a": bad})  # type: ignore[dict-item]
    with pytest.raises(AggregationError, match="reserved"):
        majority([], ("x", EXPIRED))
    with pytest.raises(AggregationError, match="distinct"):
        majority([], ("x", "x"))
    with pytest.raises(AggregationError, match="redundancy"):
        majority([], LABELS, redundancy=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=3), st.sampled_from(LABELS),
                          st.integers(1, 5)), min_size=1, max_size=12,
                unique_by=lambda t: t[0]),
       st.randoms(use_true_random=False))
def test_majority_ignores_input_order(votes: list[tuple[bytes, str, int]], rnd: object) -> None:
    a = anns(*((author, label) for author, label, _ in votes))
    weights = {author: w for author, _, w in votes}
    first = majority(a, LABELS, weights)
    shuffled = list(a)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert majority(shuffled, LABELS, dict(reversed(weights.items()))) == first
    top = max(sum(w for _, lab, w in votes if lab == x) for x in LABELS)
    assert first is not None and sum(w for _, lab, w in votes if lab == first) == top


def test_propose_majority_is_per_item() -> None:
    task = make_task((b"i1", b"i2", b"i3"))
    a = anns((b"a", "cat"), (b"b", "cat"), item=b"i1") + anns((b"a", "dog"), item=b"i2")
    assert propose(task, a, closed=False) == {b"i1": "cat", b"i2": None, b"i3": None}
    assert propose(task, a, closed=True) == {b"i1": "cat", b"i2": EXPIRED, b"i3": EXPIRED}


def test_propose_dawid_skene_waits_for_every_item() -> None:
    task = make_task((b"i1", b"i2"), rule="dawid-skene")
    a = anns((b"a", "cat"), (b"b", "cat"), item=b"i1") + anns((b"a", "dog"), item=b"i2")
    assert propose(task, a, closed=False) == {b"i1": None, b"i2": None}
    assert propose(task, a, closed=True) == {b"i1": "cat", b"i2": EXPIRED}
    a += anns((b"b", "dog"), item=b"i2")
    assert propose(task, a, closed=False) == {b"i1": "cat", b"i2": "dog"}


def test_propose_rejects_foreign_items_and_rules() -> None:
    task = make_task((b"i1",))
    with pytest.raises(AggregationError, match="task lacks"):
        propose(task, anns((b"a", "cat"), item=b"zz"), closed=False)
    bad = Task(title="t", labels=LABELS, items=(b"i1",), redundancy=1, reward_per_item=1,
               validator_share_bps=0, rule="median")
    with pytest.raises(AggregationError, match="unknown aggregation rule"):
        propose(bad, [], closed=False)


def test_protocol_modules_import_nothing_forbidden() -> None:
    code = ("import sys; base = set(sys.modules); "
            + "; ".join(f"import protocol.{m}" for m in MINE)
            + "; print(' '.join(sorted(set(sys.modules) - base)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout.split()
    roots = {m.split(".")[0] for m in out}
    assert not roots & {"trio", "libp2p", "sqlite3", "socket", "random", "time", "numpy"}


@pytest.mark.parametrize("name", MINE)
def test_no_floats_in_deciding_code(name: str) -> None:
    tree = ast.parse((REPO / "protocol" / f"{name}.py").read_text())
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), name
        assert not isinstance(node, ast.Div), f"true division in {name}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"float", "round"}, name
