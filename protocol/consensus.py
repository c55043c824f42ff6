"""Per-item agreement: a Tendermint-style vote state machine without a proposer.

Sync code decides, async code acts: :class:`Engine` takes an event
(:mod:`protocol.consensus_events`) and returns the actions to take. It never reads a
clock or a socket; the node signs and sends its votes, runs its timers, syncs.

Each validator derives its own proposal from the annotations it holds. Per item,
rounds 0, 1, 2 … each have a prevote and a precommit step:

- **Prevote** the locked value if locked, else the current proposal. With no
  proposal, wait for ``ProposalChanged`` or the propose timeout (then prevote nil).
  In rounds after the first, the node syncs the item first (``StartSync``), so the
  machine waits for a fresh ``ProposalChanged`` before prevoting (the locked value
  needs no wait; at the timeout the stale proposal is used).
- A **polka** (more than the quorum of prevote weight for one value in one round)
  locks that value and, in the current round, is precommitted. A nil polka, or a
  quorum of any prevotes and then the prevote timeout, precommits nil.
- **Lock / unlock**: the lock is the value of the highest-round polka seen (a round at
  most the current one), so a validator locked on v in round lr relocks on a polka for
  v' in a round r' > lr. This merges Tendermint's lockedValue and validValue: safe,
  because an honest validator that precommitted v in round r prevotes another value
  only after a polka for it in a later round; and needed for liveness with no proposer
  to carry the valid value — an unlocked validator adopts a polka seen late.
- **Finality**: a quorum of precommits for one value in any round. Counting
  precommits is all it takes, so observers (``self_key=None``) follow too.
- A quorum of precommits of any mix and the precommit timeout moves to the next
  round. Seeing votes from more than the non-quorum share of weight (1/3) in a higher
  round jumps straight to it (round skip: liveness after partitions).
- Timeouts grow per round: ``round_timeout_ms + round * round_timeout_delta_ms``.

Counting: the first vote of a validator per (item, round, phase) counts; a different
second one yields an ``Evidence`` action once and is not counted. A vote from a key
outside the validator set raises ``NotValidatorError``.

Restart: the node feeds every stored vote back, its own included (or calls
:meth:`Engine.restore_own_vote`). The machine never emits a ``CastVote`` for a
(item, round, phase) where it knows an own vote, and an own non-nil precommit in
round r restores the lock (v, r). Own votes are counted only when fed back as
``VoteReceived`` — that carries the ref a certificate needs.

Memory: a finalized item's state is dropped except its ``Finalized`` action. Votes
for far rounds are kept (bounded by the validator set per round); the node should
cap the rounds it accepts at its edge.
"""

from __future__ import annotations

from collections.abc import Callable

from protocol import keys
from protocol.consensus_events import (
    PROPOSE,
    Action,
    CastVote,
    Event,
    Evidence,
    Finalized,
    ItemStatus,
    Key,
    ProposalChanged,
    SetTimer,
    StartSync,
    TimeoutFired,
    VoteReceived,
)
from protocol.errors import NotValidatorError, ProtocolError, VoteError
from protocol.genesis import Genesis
from protocol.records import PRECOMMIT, PREVOTE

Value = str | None


class _Tally:
    """Votes of one (round, phase): first vote per validator; backers and weight per value."""

    __slots__ = ("backers", "by_value", "first", "total")

    def __init__(self) -> None:
        self.first: dict[bytes, tuple[Value, bytes]] = {}
        self.backers: dict[Value, dict[bytes, bytes]] = {}  # value -> validator -> ref
        self.by_value: dict[Value, int] = {}
        self.total = 0


class _Item:
    """Mutable per-item state; lives until the item is final."""

    __slots__ = ("evidenced", "fired", "fresh", "locked_round", "locked_value", "own",
                 "proposal", "round", "round_voters", "started", "step", "tallies", "timers")

    def __init__(self) -> None:
        self.started = False
        self.round = 0
        self.step = PROPOSE
        self.proposal: Value = None
        self.fresh = False  # a ProposalChanged arrived since the round began
        self.locked_value: Value = None
        self.locked_round = -1
        self.tallies: dict[tuple[int, int], _Tally] = {}
        self.round_voters: dict[int, dict[bytes, int]] = {}
        self.own: dict[tuple[int, int], Value] = {}
        self.timers: set[tuple[int, int]] = set()
        self.fired: set[tuple[int, int]] = set()
        self.evidenced: set[tuple[bytes, int, int]] = set()


class Engine:
    """All items' vote state for one node; ``self_key=None`` makes an observer."""

    def __init__(self, genesis: Genesis, self_key: bytes | None,
                 quorum: Callable[[int], bool] | None = None) -> None:
        self._weights = genesis.weights()
        if self_key is not None and self_key not in self._weights:
            raise NotValidatorError(_name(self_key))
        self._self = self_key
        p = genesis.params
        total = sum(self._weights.values())
        num, den = p.quorum_num, p.quorum_den
        # test seam: a broken quorum rule lets the simulator prove it catches bugs
        self._quorum: Callable[[int], bool] = quorum or (lambda w: w * den > total * num)
        self._skip: Callable[[int], bool] = lambda w: w * den > total * (den - num)
        self._timeout0, self._delta = p.round_timeout_ms, p.round_timeout_delta_ms
        self._items: dict[Key, _Item] = {}
        self._final: dict[Key, Finalized] = {}

    # ------------------------------------------------------------ public API

    def start(self, key: Key) -> list[Action]:
        """Begin voting on an item (after feeding restored votes, if any)."""
        if key in self._final:
            return []
        st = self._item(key)
        if st.started or self._self is None:
            st.started = True
            return []
        st.started = True
        out: list[Action] = [StartSync(key)] if st.round > 0 else []
        self._advance(key, st, out)
        return out

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; raise ``NotValidatorError``/``VoteError`` for a bad vote."""
        out: list[Action] = []
        if isinstance(event, VoteReceived):
            self._on_vote(event, out)
        elif event.key in self._final:
            pass
        elif isinstance(event, ProposalChanged):
            st = self._item(event.key)
            st.proposal, st.fresh = event.value, True
            if st.started:
                self._advance(event.key, st, out)
        elif isinstance(event, TimeoutFired):
            st2 = self._items.get(event.key)
            if st2 is not None and st2.started and event.round == st2.round:
                st2.fired.add((event.round, event.step))
                self._advance(event.key, st2, out)
        return out

    def restore_own_vote(self, key: Key, phase: int, round: int, value: Value,
                         ref: bytes) -> list[Action]:
        """Feed one persisted own vote back after a restart (validators only)."""
        if self._self is None:
            raise VoteError("an observer has no own votes")
        return self.handle(VoteReceived(self._self, key, phase, round, value, ref))

    def finalized(self, key: Key) -> Finalized | None:
        return self._final.get(key)

    def status(self, key: Key) -> ItemStatus | None:
        fin = self._final.get(key)
        if fin is not None:
            return ItemStatus(fin.round, PRECOMMIT, None, fin.value, fin.round, fin)
        st = self._items.get(key)
        if st is None:
            return None
        return ItemStatus(st.round, st.step, st.proposal, st.locked_value, st.locked_round)

    # ------------------------------------------------------------ hooks

    def _lock(self, st: _Item, value: str, rnd: int) -> None:
        """Lock ``value`` from a polka in ``rnd``; overridden only by broken test variants."""
        if rnd > st.locked_round:
            st.locked_value, st.locked_round = value, rnd

    # ------------------------------------------------------------ votes

    def _item(self, key: Key) -> _Item:
        st = self._items.get(key)
        if st is None:
            st = self._items[key] = _Item()
        return st

    def _on_vote(self, ev: VoteReceived, out: list[Action]) -> None:
        w = self._weights.get(ev.validator)
        if w is None:
            raise NotValidatorError(_name(ev.validator))
        if ev.phase not in (PREVOTE, PRECOMMIT) or ev.round < 0:
            raise VoteError(f"bad vote phase {ev.phase} or round {ev.round}")
        key, rnd, phase, value = ev.key, ev.round, ev.phase, ev.value
        if key in self._final:
            return
        st = self._item(key)
        if ev.validator == self._self:
            st.own.setdefault((rnd, phase), value)
            if rnd > st.round:
                self._enter(key, st, rnd, out, sync=False)
            if phase == PRECOMMIT and value is not None:  # restores the lock
                self._lock(st, value, rnd)
        t = st.tallies.get((rnd, phase))
        if t is None:
            t = st.tallies[(rnd, phase)] = _Tally()
        first = t.first.get(ev.validator)
        if first is None:
            t.first[ev.validator] = (value, ev.ref)
            t.total += w
        elif first[0] != value and (ev.validator, rnd, phase) not in st.evidenced:
            st.evidenced.add((ev.validator, rnd, phase))
            out.append(Evidence(key, ev.validator, rnd, phase, first[1], ev.ref))
        backers = t.backers.setdefault(value, {})
        if ev.validator in backers:
            return
        backers[ev.validator] = ev.ref
        vw = t.by_value[value] = t.by_value.get(value, 0) + w
        if value is not None and self._quorum(vw):
            if phase == PRECOMMIT:
                self._finalize(key, value, rnd, t, out)
                return
            if rnd <= st.round:
                self._lock(st, value, rnd)
        voters = st.round_voters.setdefault(rnd, {})
        if ev.validator not in voters:
            voters[ev.validator] = w
            if rnd > st.round and self._skip(sum(voters.values())):
                self._enter(key, st, rnd, out, sync=True)
        if st.started and self._self is not None:
            self._advance(key, st, out)

    def _finalize(self, key: Key, value: str, rnd: int, t: _Tally,
                  out: list[Action]) -> None:
        refs = tuple(sorted(t.backers[value].items()))
        fin = Finalized(key, value, rnd, refs)
        self._final[key] = fin
        del self._items[key]
        out.append(fin)

    # ------------------------------------------------------------ steps

    def _enter(self, key: Key, st: _Item, rnd: int, out: list[Action], sync: bool) -> None:
        """Move to round ``rnd`` (or a higher one that already has enough votes)."""
        for r in st.round_voters:
            if r > rnd and self._skip(sum(st.round_voters[r].values())):
                rnd = r
        for (r, phase), t in st.tallies.items():  # polkas seen before we got here
            if phase == PREVOTE and st.locked_round < r <= rnd:
                for v, w in t.by_value.items():
                    if v is not None and self._quorum(w):
                        self._lock(st, v, r)
        st.round, st.step, st.fresh = rnd, PROPOSE, False
        st.timers.clear()
        st.fired.clear()
        if sync and st.started and self._self is not None:
            out.append(StartSync(key))

    def _advance(self, key: Key, st: _Item, out: list[Action]) -> None:
        """Apply every step rule that holds now, until none does."""
        while True:
            r = st.round
            if st.step == PROPOSE:
                if (r, PREVOTE) in st.own:
                    st.step = PREVOTE
                    continue
                value, ready = self._prevote_choice(st)
                if not ready:
                    if not self._timer(key, st, PROPOSE, out):
                        return
                self._cast(key, st, PREVOTE, value, out)
                continue
            if st.step == PREVOTE:
                if (r, PRECOMMIT) in st.own:
                    st.step = PRECOMMIT
                    continue
                t = st.tallies.get((r, PREVOTE))
                if t is None or not self._quorum(t.total):
                    return
                polka = sorted((v for v, w in t.by_value.items() if self._quorum(w)),
                               key=lambda v: (v is None, v != st.locked_value))
                if polka and polka[0] is not None:
                    self._lock(st, polka[0], r)
                    self._cast(key, st, PRECOMMIT, polka[0], out)
                elif polka or self._timer(key, st, PREVOTE, out):
                    self._cast(key, st, PRECOMMIT, None, out)
                else:
                    return
                continue
            t = st.tallies.get((r, PRECOMMIT))
            if t is None or not self._quorum(t.total):
                return
            if not self._timer(key, st, PRECOMMIT, out):
                return
            self._enter(key, st, r + 1, out, sync=True)

    def _prevote_choice(self, st: _Item) -> tuple[Value, bool]:
        """(value, ready): what to prevote, and whether to prevote it before the timeout."""
        if st.locked_round >= 0:
            return st.locked_value, True
        if st.round == 0 or st.fresh:
            return st.proposal, st.proposal is not None
        return st.proposal, False  # wait for the sync; fall back to the stale proposal

    def _timer(self, key: Key, st: _Item, step: int, out: list[Action]) -> bool:
        """Arm the step's timer once per round; True once it has fired."""
        mark = (st.round, step)
        if mark in st.fired:
            return True
        if mark not in st.timers:
            st.timers.add(mark)
            delay = self._timeout0 + st.round * self._delta
            out.append(SetTimer(key, st.round, step, delay))
        return False

    def _cast(self, key: Key, st: _Item, phase: int, value: Value, out: list[Action]) -> None:
        st.step = phase
        mark = (st.round, phase)
        if mark in st.own:  # never a second, possibly different, vote after a restart
            return
        st.own[mark] = value
        out.append(CastVote(key, phase, st.round, value))


def _name(public_key: bytes) -> str:
    try:
        return keys.peer_id_from_public_key(public_key)
    except ProtocolError:
        return public_key.hex()


__all__ = ["Engine"]
