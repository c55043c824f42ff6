"""Unit tests of the per-item vote state machine's rules."""

from __future__ import annotations

import pytest

from protocol.consensus import Engine
from protocol.consensus_events import (
    PROPOSE,
    CastVote,
    Evidence,
    Finalized,
    ProposalChanged,
    SetTimer,
    StartSync,
    TimeoutFired,
    VoteReceived,
    vote_bodies,
)
from protocol.errors import NotValidatorError, VoteError
from protocol.genesis import Genesis, Params, Validator
from protocol.keys import peer_id_from_public_key
from protocol.records import PRECOMMIT, PREVOTE

PKS = [bytes([i]) * 32 for i in range(1, 5)]  # four validators of weight 1: quorum is 3
ME, B, C, D = PKS
KEY = (b"task", b"item")
PARAMS = Params(round_timeout_ms=1000, round_timeout_delta_ms=500)
GENESIS = Genesis("t", tuple(Validator(peer_id_from_public_key(pk), 1) for pk in PKS), PARAMS)


def vote(who: bytes, phase: int, rnd: int, value: str | None) -> VoteReceived:
    return VoteReceived(who, KEY, phase, rnd, value, b"ref-%d-%d-%d-%s" % (
        who[0], phase, rnd, str(value).encode()))


def feed(e: Engine, *events: object) -> list[object]:
    out: list[object] = []
    for ev in events:
        out += e.handle(ev)  # type: ignore[arg-type]
    return out


def casts(actions: list[object]) -> list[CastVote]:
    return [a for a in actions if isinstance(a, CastVote)]


def started(proposal: str | None = "x") -> tuple[Engine, list[object]]:
    e = Engine(GENESIS, ME)
    out = feed(e, ProposalChanged(KEY, proposal))
    return e, out + e.start(KEY)


def test_prevotes_its_proposal_then_counts_its_own_vote_when_fed_back() -> None:
    e, out = started("x")
    assert casts(out) == [CastVote(KEY, PREVOTE, 0, "x")]
    assert casts(feed(e, vote(ME, PREVOTE, 0, "x"))) == []


def test_polka_locks_and_precommits() -> None:
    e, _ = started("x")
    out = feed(e, vote(ME, PREVOTE, 0, "x"), vote(B, PREVOTE, 0, "x"), vote(C, PREVOTE, 0, "x"))
    assert casts(out) == [CastVote(KEY, PRECOMMIT, 0, "x")]
    st = e.status(KEY)
    assert st is not None and (st.locked_value, st.locked_round) == ("x", 0)


def test_precommit_quorum_finalizes_and_drops_state() -> None:
    e, _ = started("x")
    feed(e, *(vote(v, PREVOTE, 0, "x") for v in PKS[:3]))
    out = feed(e, *(vote(v, PRECOMMIT, 0, "x") for v in (B, C, D)))
    fin = [a for a in out if isinstance(a, Finalized)]
    assert len(fin) == 1 and fin[0].value == "x" and fin[0].round == 0
    assert [v for v, _ in fin[0].precommit_refs] == sorted([B, C, D])
    assert e.finalized(KEY) == fin[0]
    assert feed(e, vote(ME, PRECOMMIT, 0, "x"), TimeoutFired(KEY, 0, PRECOMMIT)) == []
    assert e.start(KEY) == []


def test_no_proposal_waits_then_prevotes_nil() -> None:
    e, out = started(None)
    assert out == [SetTimer(KEY, 0, PROPOSE, 1000)]
    assert casts(feed(e, TimeoutFired(KEY, 0, PROPOSE))) == [CastVote(KEY, PREVOTE, 0, None)]


def test_proposal_arriving_while_waiting_votes_at_once() -> None:
    e, _ = started(None)
    assert casts(feed(e, ProposalChanged(KEY, "y"))) == [CastVote(KEY, PREVOTE, 0, "y")]


def test_mixed_prevotes_precommit_nil_after_timeout() -> None:
    e, _ = started("x")
    out = feed(e, vote(ME, PREVOTE, 0, "x"), vote(B, PREVOTE, 0, "y"), vote(C, PREVOTE, 0, None))
    assert out == [SetTimer(KEY, 0, PREVOTE, 1000)]
    assert casts(feed(e, TimeoutFired(KEY, 0, PREVOTE))) == [CastVote(KEY, PRECOMMIT, 0, None)]


def test_nil_polka_precommits_nil_at_once() -> None:
    e, _ = started("x")
    out = feed(e, *(vote(v, PREVOTE, 0, None) for v in (B, C, D)))
    assert casts(out) == [CastVote(KEY, PRECOMMIT, 0, None)]


def _to_round_one(e: Engine) -> list[object]:
    feed(e, vote(ME, PREVOTE, 0, "x"), vote(B, PREVOTE, 0, "y"), vote(C, PREVOTE, 0, None),
         TimeoutFired(KEY, 0, PREVOTE))
    out = feed(e, *(vote(v, PRECOMMIT, 0, None) for v in (ME, B, C)))
    assert out == [SetTimer(KEY, 0, PRECOMMIT, 1000)]
    return feed(e, TimeoutFired(KEY, 0, PRECOMMIT))


def test_next_round_syncs_then_prevotes_the_current_proposal() -> None:
    e, _ = started("x")
    out = _to_round_one(e)
    assert out == [StartSync(KEY), SetTimer(KEY, 1, PROPOSE, 1500)]  # timeouts grow
    assert casts(feed(e, ProposalChanged(KEY, "z"))) == [CastVote(KEY, PREVOTE, 1, "z")]


def test_next_round_without_fresh_proposal_uses_stale_one_at_timeout() -> None:
    e, _ = started("x")
    _to_round_one(e)
    assert casts(feed(e, TimeoutFired(KEY, 1, PROPOSE))) == [CastVote(KEY, PREVOTE, 1, "x")]


def test_locked_validator_prevotes_its_lock_in_later_rounds() -> None:
    e, _ = started("x")
    feed(e, *(vote(v, PREVOTE, 0, "x") for v in PKS[:3]))
    out = feed(e, vote(ME, PRECOMMIT, 0, "x"), vote(B, PRECOMMIT, 0, None),
               vote(C, PRECOMMIT, 0, None), TimeoutFired(KEY, 0, PRECOMMIT))
    assert casts(out) == [CastVote(KEY, PREVOTE, 1, "x")]  # no need to wait for the sync
    assert casts(feed(e, ProposalChanged(KEY, "z"))) == []


def test_unlocks_on_a_polka_for_another_value_in_a_later_round() -> None:
    e, _ = started("x")
    feed(e, *(vote(v, PREVOTE, 0, "x") for v in PKS[:3]))
    out = feed(e, vote(ME, PRECOMMIT, 0, "x"), vote(B, PRECOMMIT, 0, None),
               vote(C, PRECOMMIT, 0, None), TimeoutFired(KEY, 0, PRECOMMIT))
    assert casts(out) == [CastVote(KEY, PREVOTE, 1, "x")]
    out = feed(e, *(vote(v, PREVOTE, 1, "y") for v in (B, C, D)))
    st = e.status(KEY)
    assert st is not None and (st.locked_value, st.locked_round) == ("y", 1)
    assert casts(out) == [CastVote(KEY, PRECOMMIT, 1, "y")]
    feed(e, vote(ME, PRECOMMIT, 1, "y"), *(vote(v, PRECOMMIT, 1, None) for v in (B, C)))
    assert casts(feed(e, TimeoutFired(KEY, 1, PRECOMMIT))) == [CastVote(KEY, PREVOTE, 2, "y")]


def test_old_polka_does_not_unlock() -> None:
    e, _ = started("x")
    feed(e, *(vote(v, PREVOTE, 0, "x") for v in PKS[:3]))
    feed(e, *(vote(v, PREVOTE, 0, "y") for v in (D,)))  # a later-arriving round-0 vote
    st = e.status(KEY)
    assert st is not None and st.locked_value == "x"


def test_round_skip_on_more_than_a_third() -> None:
    e, _ = started("x")
    assert feed(e, vote(B, PREVOTE, 5, "y")) == []  # 1/4 of weight: stay
    out = feed(e, vote(C, PRECOMMIT, 5, None))  # 2/4 > 1/3: jump
    assert out[:2] == [StartSync(KEY), SetTimer(KEY, 5, PROPOSE, 1000 + 5 * 500)]
    st = e.status(KEY)
    assert st is not None and st.round == 5


def test_conflicting_vote_is_evidence_and_counts_once() -> None:
    e, _ = started("x")
    a, b = vote(B, PREVOTE, 0, "x"), vote(B, PREVOTE, 0, "y")
    out = feed(e, a, b, b)
    assert out == [Evidence(KEY, B, 0, PREVOTE, a.ref, b.ref)]
    # B once in the total: ME + B is 2 of 4, no quorum of any mix yet, so no prevote timer
    assert feed(e, vote(ME, PREVOTE, 0, "x")) == []


def test_equivocating_precommits_each_count_toward_finality() -> None:
    """A laggard holding a valid certificate's precommits must finalize, even if it saw
    the equivocator's other precommit first (otherwise it can be stuck forever)."""
    e = Engine(GENESIS, None)
    feed(e, vote(D, PRECOMMIT, 0, None), vote(B, PRECOMMIT, 0, "x"), vote(C, PRECOMMIT, 0, "x"))
    out = feed(e, vote(D, PRECOMMIT, 0, "x"))
    assert isinstance(out[0], Evidence) and isinstance(out[1], Finalized)


def test_non_validator_vote_is_rejected() -> None:
    e, _ = started("x")
    with pytest.raises(NotValidatorError):
        e.handle(vote(bytes(32), PREVOTE, 0, "x"))
    with pytest.raises(VoteError):
        e.handle(vote(B, 7, 0, "x"))
    with pytest.raises(NotValidatorError):
        Engine(GENESIS, bytes(32))


def test_restored_own_votes_are_never_contradicted() -> None:
    e = Engine(GENESIS, ME)
    e.restore_own_vote(KEY, PREVOTE, 0, "x", b"r1")
    e.restore_own_vote(KEY, PRECOMMIT, 0, "x", b"r2")
    out = feed(e, ProposalChanged(KEY, "y")) + e.start(KEY)
    assert casts(out) == []  # round 0 is already voted; proposal y changes nothing
    st = e.status(KEY)
    assert st is not None and (st.locked_value, st.locked_round) == ("x", 0)
    feed(e, vote(B, PRECOMMIT, 0, None), vote(C, PRECOMMIT, 0, None))
    out = feed(e, TimeoutFired(KEY, 0, PRECOMMIT), ProposalChanged(KEY, "y"))
    assert casts(out) == [CastVote(KEY, PREVOTE, 1, "x")]  # the restored lock wins


def test_restore_in_a_later_round_resumes_there() -> None:
    e = Engine(GENESIS, ME)
    e.restore_own_vote(KEY, PREVOTE, 3, None, b"r")
    out = feed(e, ProposalChanged(KEY, "y")) + e.start(KEY)
    assert out[0] == StartSync(KEY) and casts(out) == []
    out = feed(e, vote(B, PREVOTE, 3, "y"), vote(C, PREVOTE, 3, "y"))
    assert out == [SetTimer(KEY, 3, PREVOTE, 2500)]
    assert casts(feed(e, TimeoutFired(KEY, 3, PREVOTE))) == [CastVote(KEY, PRECOMMIT, 3, None)]


def test_observer_follows_finality_and_never_votes() -> None:
    e = Engine(GENESIS, None)
    assert e.start(KEY) == []
    out = feed(e, *(vote(v, PREVOTE, 0, "x") for v in PKS[:3]))
    out += feed(e, *(vote(v, PRECOMMIT, 0, "x") for v in PKS[1:]))
    assert [type(a) for a in out] == [Finalized]


def test_vote_bodies_batch_per_phase_and_round() -> None:
    k2 = (b"task", b"other")
    bodies = vote_bodies([CastVote(KEY, PREVOTE, 0, "x"), CastVote(k2, PREVOTE, 0, None),
                          CastVote(KEY, PRECOMMIT, 0, "x")])
    assert [(b.phase, b.round, len(b.entries)) for b in bodies] == [(PREVOTE, 0, 2),
                                                                   (PRECOMMIT, 0, 1)]
