"""A vote over the genesis's ``max_vote_entries`` is refused on its raw decode.

Refused later (by admission, after the canonical walk and the entries' decoding), a
Byzantine validator's vote of 3,000 entries cost 26 ms of a node's event loop each;
the decoder now counts the entries first (0.4 ms)."""

from __future__ import annotations

import pytest

from protocol import cid as cidlib
from protocol import encoding
from protocol.errors import DecodeError, TooLargeError, VoteTooLargeError, reason_of
from protocol.genesis import Params
from protocol.keys import SigningKey
from protocol.records import PREVOTE, Vote, VoteEntry, decode_record, sign_record

NET = b"\x07" * 32
KEY = SigningKey(b"\x05" * 32)
TASK = cidlib.cid_bytes(b"task")


def _vote(n: int) -> bytes:
    return sign_record(NET, KEY, 1, Vote(PREVOTE, 0, tuple(
        VoteEntry(TASK, cidlib.cid_bytes(b"item %d" % k), "cat") for k in range(n)))).data


def test_a_vote_over_the_limit_is_refused_before_it_is_walked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    limits = Params(max_vote_entries=16).limits()
    assert limits.max_vote_entries == 16
    over, at = _vote(17), _vote(16)
    walked: list[object] = []
    real = encoding._check
    monkeypatch.setattr(encoding, "_check", lambda v, d: (walked.append(v), real(v, d)))
    with pytest.raises(VoteTooLargeError) as err:
        decode_record(over, NET, limits)
    assert walked == []  # refused on the raw decode
    assert isinstance(err.value, TooLargeError)
    assert (err.value.size, err.value.limit) == (17, 16)
    # admission's name for it, on every path (RPC, gossip and sync count by reason_of)
    assert reason_of(err.value) == "vote_too_many_entries"
    assert reason_of(DecodeError("x")) == "DecodeError"  # the rest: their class name
    assert str(err.value) == "vote entries is 17, over the limit of 16"
    vote = decode_record(at, NET, limits)  # at the limit: decoded and verified
    assert len(vote.body.entries) == 16  # type: ignore[union-attr]
    assert walked  # the canonical walk ran for it


def test_default_limits_keep_votes_of_any_array_size() -> None:
    # without a genesis the decoder's only bound is the array limit
    vote = decode_record(_vote(300), NET)
    assert len(vote.body.entries) == 300  # type: ignore[union-attr]
