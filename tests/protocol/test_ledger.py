"""The ledger: order-free sum of final tallies, zero-sum balances, reputation weights."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.aggregate import majority
from protocol.errors import MissingTallyError, TallyError
from protocol.ledger import (
    EMPTY_LEDGER,
    NEUTRAL_REPUTATION,
    Account,
    apply_tally,
    build_ledger,
    encode_ledger,
    ledger_root,
    reputation,
    reputation_weights,
)
from protocol.tally import Tally, TallyEntry

R1, R2, A, B, V = b"r1", b"r2", b"a", b"b", b"v"


def tally(task: bytes, requester: bytes, *entries: tuple[bytes, int, int, int]) -> Tally:
    return Tally(task, requester, sum(e[1] for e in entries),
                 tuple(TallyEntry(*e) for e in sorted(entries)))


T1 = tally(b"t1", R1, (A, 60, 2, 0), (B, 30, 0, 2), (V, 10, 0, 0))
T2 = tally(b"t2", R2, (A, 5, 0, 1), (R2, 5, 0, 0))
T3 = tally(b"t3", R1, (B, 100, 4, 0))


def test_sums_tallies() -> None:
    ledger = build_ledger([T1, T2, T3])
    assert ledger.tasks == (b"t1", b"t2", b"t3")
    assert ledger.account(A) == Account(A, earned=65, paid=0, agreed=2, disagreed=1)
    assert ledger.account(R1) == Account(R1, earned=0, paid=200)
    assert ledger.balance(R2) == 5 - 10
    assert ledger.account(b"nobody") == Account(b"nobody")
    assert sum(a.balance for a in ledger.accounts) == 0


def test_order_of_finalization_does_not_matter() -> None:
    roots = set()
    for order in itertools.permutations([T1, T2, T3]):
        incremental = EMPTY_LEDGER
        for t in order:
            incremental = apply_tally(incremental, t)
        assert incremental == build_ledger(order)
        roots.add(ledger_root(incremental))
    assert len(roots) == 1
    assert encode_ledger(build_ledger([T3, T1])) == encode_ledger(build_ledger([T1, T3]))


def test_each_tally_enters_once() -> None:
    with pytest.raises(TallyError, match="once"):
        build_ledger([T1, T1])
    with pytest.raises(TallyError, match="once"):
        apply_tally(build_ledger([T1]), T1)
    with pytest.raises(TallyError, match="not its total"):
        build_ledger([Tally(b"t9", R1, 7, (TallyEntry(A, 6, 0, 0),))])


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_reputation_is_laplace_smoothed_bps(agreed: int, disagreed: int) -> None:
    r = reputation(agreed, disagreed)
    assert type(r) is int and 1 <= r <= 9_999
    assert r == max(1, (agreed + 1) * 10_000 // (agreed + disagreed + 2))
    assert reputation(0, 0) == NEUTRAL_REPUTATION == 5_000


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([A, B, V, R1]), st.integers(0, 10**12),
                          st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=6,
                unique_by=lambda e: e[0]).map(lambda es: [e for e in es if any(e[1:])])
       .filter(bool), st.integers(1, 20))
def test_balances_always_sum_to_zero(entries: list[tuple[bytes, int, int, int]],
                                     copies: int) -> None:
    tallies = [tally(b"task%d" % i, R2 if i % 2 else R1, *entries) for i in range(copies)]
    ledger = build_ledger(reversed(tallies))
    assert sum(a.balance for a in ledger.accounts) == 0
    assert ledger == build_ledger(tallies)


def test_reputation_weights_use_only_named_final_tallies() -> None:
    final = {b"t1": T1, b"t2": T2, b"t3": T3}
    w = reputation_weights(final, (b"t1",), authors=(A, b"newcomer"))
    assert w == {A: reputation(2, 0), B: reputation(0, 2), b"newcomer": NEUTRAL_REPUTATION}
    assert reputation_weights(final, ()) == {}
    both = reputation_weights(final, (b"t3", b"t1", b"t1"))
    assert both[B] == reputation(4, 2)
    with pytest.raises(MissingTallyError) as err:
        reputation_weights({b"t1": T1}, (b"t1", b"t5", b"t4"))
    assert err.value.tasks == (b"t4", b"t5")
    with pytest.raises(TallyError, match="filed under"):
        reputation_weights({b"t2": T1}, (b"t2",))


def test_reputation_weights_steer_majority() -> None:
    t4 = tally(b"t4", R1, (A, 1, 8, 0), (B, 1, 0, 2))
    w = reputation_weights({b"t4": t4}, (b"t4",))  # A 9,000; B 2,500; c neutral 5,000
    votes = [(b"x", A, "yes"), (b"x", B, "no"), (b"x", b"c", "no")]
    assert majority(votes, ("yes", "no")) == "no"
    assert majority(votes, ("yes", "no"), w, default_weight=NEUTRAL_REPUTATION) == "yes"
