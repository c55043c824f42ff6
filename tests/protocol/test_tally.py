"""Reward tallies: worked example, conservation (hypothesis), canonical bytes, strict decode."""

from __future__ import annotations

import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import encode_canonical
from protocol.errors import DecodeError, FloatError, TallyError, UnknownFieldError
from protocol.records import EXPIRED, Task
from protocol.tally import Tally, TallyEntry, compute_tally, decode_tally, encode_tally, tally_root

REQ, V1, V2, V3 = b"R" * 32, b"V1" * 16, b"V2" * 16, b"V3" * 16
A, B, C = b"A" * 32, b"B" * 32, b"C" * 32
TASK_ID = b"T" * 36


def task(items: tuple[bytes, ...], reward: int = 1000, bps: int = 1000) -> Task:
    return Task(title="t", labels=("yes", "no"), items=items, redundancy=3,
                reward_per_item=reward, validator_share_bps=bps)


def by_account(t: Tally) -> dict[bytes, tuple[int, int, int]]:
    return {e.account: (e.amount, e.agreed, e.disagreed) for e in t.entries}


def test_worked_example() -> None:
    t = task((b"i1", b"i2", b"i3"), reward=1000, bps=1000)  # validators' part 100 per item
    finals = {b"i1": ("yes", (V1, V2, V3)), b"i2": (EXPIRED, (V1, V2)),
              b"i3": ("no", (V1, V2, V3))}
    anns = [(b"i1", A, "yes"), (b"i1", B, "yes"), (b"i1", C, "no"),
            (b"i2", A, "yes"), (b"i3", A, "yes"), (b"i3", B, "yes")]
    tally = compute_tally(t, TASK_ID, REQ, finals, anns)
    # i1: 33 to each validator (+1 to R); 450 to A and B.   i2: 50 per validator, 900 to R.
    # i3: 33 per validator (+1 to R); nobody agreed: 900 to R.
    assert by_account(tally) == {
        V1: (116, 0, 0), V2: (116, 0, 0), V3: (66, 0, 0),
        A: (450, 1, 1), B: (450, 1, 1), C: (0, 0, 1),
        REQ: (1802, 0, 0),
    }
    assert tally.total == 3000 == sum(e.amount for e in tally.entries)
    assert [e.account for e in tally.entries] == sorted(by_account(tally))


def test_uneven_split_remainder_goes_to_requester() -> None:
    t = task((b"i1",), reward=10, bps=0)
    tally = compute_tally(t, TASK_ID, REQ, {b"i1": ("yes", (V1,))},
                          [(b"i1", A, "yes"), (b"i1", B, "yes"), (b"i1", C, "yes")])
    assert by_account(tally) == {A: (3, 1, 0), B: (3, 1, 0), C: (3, 1, 0), REQ: (1, 0, 0)}


def test_bad_inputs_raise_tally_errors() -> None:
    t = task((b"i1", b"i2"))
    ok = {b"i1": ("yes", (V1,)), b"i2": ("no", (V1,))}
    with pytest.raises(TallyError, match="missing"):
        compute_tally(t, TASK_ID, REQ, {b"i1": ("yes", (V1,))}, [])
    with pytest.raises(TallyError, match="not a task label"):
        compute_tally(t, TASK_ID, REQ, {**ok, b"i2": ("maybe", (V1,))}, [])
    with pytest.raises(TallyError, match="distinct validators"):
        compute_tally(t, TASK_ID, REQ, {**ok, b"i2": ("no", ())}, [])
    with pytest.raises(TallyError, match="distinct validators"):
        compute_tally(t, TASK_ID, REQ, {**ok, b"i2": ("no", (V1, V1))}, [])
    with pytest.raises(TallyError, match="twice"):
        compute_tally(t, TASK_ID, REQ, ok, [(b"i1", A, "yes"), (b"i1", A, "no")])
    with pytest.raises(TallyError, match="task lacks"):
        compute_tally(t, TASK_ID, REQ, ok, [(b"zz", A, "yes")])


KEYS = [bytes([k]) * 32 for k in range(8)]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Task, dict[bytes, tuple[str, tuple[bytes, ...]]],
                                        list[tuple[bytes, bytes, str]]]:
    n = draw(st.integers(1, 6))
    items = tuple(b"item%d" % i for i in range(n))
    t = task(items, reward=draw(st.integers(0, 10**15)), bps=draw(st.integers(0, 10_000)))
    finals = {}
    anns = []
    for item in items:
        value = draw(st.sampled_from(("yes", "no", EXPIRED)))
        validators = tuple(draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4,
                                         unique=True)))
        finals[item] = (value, validators)
        for author in draw(st.lists(st.sampled_from(KEYS), max_size=5, unique=True)):
            anns.append((item, author, draw(st.sampled_from(("yes", "no")))))
    return t, finals, anns


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.sampled_from(KEYS), st.randoms(use_true_random=False))
def test_conservation_and_canonical_form(scenario: tuple[Task, dict[bytes, tuple[str, tuple[
        bytes, ...]]], list[tuple[bytes, bytes, str]]], requester: bytes,
        rnd: random.Random) -> None:
    t, finals, anns = scenario
    tally = compute_tally(t, TASK_ID, requester, finals, anns)
    assert sum(e.amount for e in tally.entries) == t.reward_per_item * len(t.items)
    for e in tally.entries:
        assert all(type(x) is int and x >= 0 for x in (e.amount, e.agreed, e.disagreed))
        assert e.amount or e.agreed or e.disagreed
    counted = sum(e.agreed + e.disagreed for e in tally.entries)
    assert counted == sum(1 for item, _, _ in anns if finals[item][0] != EXPIRED)
    shuffled = list(anns)
    rnd.shuffle(shuffled)
    again = compute_tally(t, TASK_ID, requester, dict(reversed(finals.items())), shuffled)
    assert again == tally
    data = encode_tally(tally)
    assert decode_tally(data) == tally
    assert tally_root(again) == tally_root(tally) and len(tally_root(tally)) == 32


def sample() -> Tally:
    return Tally(TASK_ID, REQ, 10, (TallyEntry(A, 4, 1, 0), TallyEntry(B, 6, 0, 1)))


def test_decode_is_strict() -> None:
    good = {"entries": [[A, 4, 1, 0], [B, 6, 0, 1]], "requester": REQ, "task": TASK_ID,
            "total": 10}
    assert decode_tally(encode_canonical(good)) == sample()
    with pytest.raises(UnknownFieldError):
        decode_tally(encode_canonical({**good, "extra": 1}))
    with pytest.raises(TallyError, match="not sorted"):
        decode_tally(encode_canonical({**good, "entries": [[B, 6, 0, 1], [A, 4, 1, 0]]}))
    with pytest.raises(TallyError, match="sum"):
        decode_tally(encode_canonical({**good, "total": 11}))
    with pytest.raises(TallyError, match="all zero"):
        decode_tally(encode_canonical({**good, "entries": [[A, 0, 0, 0], [B, 10, 0, 1]]}))
    with pytest.raises(DecodeError):
        decode_tally(encode_canonical({**good, "total": -10}))
    with pytest.raises(FloatError):
        decode_tally(msgpack.packb({**good, "total": 10.0}, use_bin_type=True))
    unsorted = msgpack.packb(dict(reversed(list(good.items()))), use_bin_type=True)
    with pytest.raises(DecodeError):
        decode_tally(unsorted)
    with pytest.raises(DecodeError):
        decode_tally(encode_tally(sample()) + b"\x00")


def test_root_is_pinned() -> None:
    # Golden value: changing the encoding or the domain tag must be deliberate.
    assert tally_root(sample()).hex() == GOLDEN_ROOT


GOLDEN_ROOT = "332ab23dbcee01fc546a5c762384e9e30ae2c023d83e071d4cbbe67b9eb2d90b"
