"""A deterministic, seeded discrete-event simulator around the real consensus Engine.

One seed fixes everything: 4 to 10 validators with random weights, Byzantine
validators (total weight < 1/3) that equivocate, withhold, vote at random or lie
about annotations; items whose annotations reach validators at different times
(views differ early, converge after the heal); a lossy, duplicating, reordering
network split into partitions until ``heal``; after the heal no loss, bounded
delay, and one full resync of every vote an honest node holds (the node's sync).
An honest node may crash and restart from its stored votes.

The adversarial mode (``byz_max=True``) gives the Byzantine validators the most weight
below 1/3, all equivocating, and lets them schedule: honest nodes start in two camps
(first annotations "a" or "b"; the full view, which says "b", reaches each node at its
own time before the heal), every Byzantine validator echoes each honest vote back to
its caster, and precommits only to the round's first non-nil precommitter. This is
the run that catches a broken lock or quorum rule (see ``run.BROKEN``).

Nothing depends on the hash seed: whatever is iterated while drawing randomness is
sorted, and ``Sim.trace`` digests every event, so a run replays bit for bit.

Checked per seed: SAFETY (no two honest nodes finalize different values for an
item; a restarted node never casts a vote that differs from one it cast before)
and LIVENESS (every item finalizes at every honest node within ``LIVENESS_MS``
after the later of the heal and the items' close times).
Signatures are left out: the simulator drives the Engine with events directly.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from protocol.consensus import Engine
from protocol.consensus_events import (
    CastVote,
    Finalized,
    Key,
    ProposalChanged,
    SetTimer,
    StartSync,
    TimeoutFired,
    VoteReceived,
)
from protocol.genesis import Genesis, Params, Validator
from protocol.keys import peer_id_from_public_key
from protocol.records import EXPIRED, PRECOMMIT

LABELS = ("a", "b", "c")
# Worst heal-to-finality over the CI seeds (0-299, normal and adversarial), measured
# with `python -m tests.sim.run --ci --liveness-ms 100000`: 6,957 ms (adversarial seed
# 215; normal mode: 3,745 ms, seed 123). The bound is that times 1.5, rounded up.
LIVENESS_MS = 10_500
BYZ_KINDS = ("equivocate", "withhold", "random", "liar")
PARAMS = Params(round_timeout_ms=1_000, round_timeout_delta_ms=500)
EngineFactory = Callable[[Genesis, bytes], Engine]
_VOTE, _TIMER, _ANNOT, _SYNC, _CLOSE, _HEAL, _RESTART = range(7)


@dataclass
class Item:
    key: Key
    labels: list[str]  # one annotation each, in arrival order
    redundancy: int
    close: int  # virtual ms; after it an item short of annotations is EXPIRED


@dataclass
class Node:
    pk: bytes
    engine: Engine
    byz: str = ""  # "" for honest
    held: dict[Key, set[int]] = field(default_factory=dict)  # annotation indexes held
    store: set[VoteReceived] = field(default_factory=set)  # every vote received, own too
    final: dict[Key, str] = field(default_factory=dict)
    incarnation: int = 0


class Sim:
    def __init__(self, seed: int, factory: EngineFactory | None = None,
                 byz_max: bool = False, liveness_ms: int = LIVENESS_MS) -> None:
        self.seed, rng = seed, random.Random(seed)
        self.adversarial = byz_max
        self.rng = rng
        n = rng.randint(4, 10)
        weights = [rng.randint(1, 5) for _ in range(n)]
        total = sum(weights)
        self.pks = [bytes([i + 1]) * 32 for i in range(n)]
        genesis = Genesis("sim", tuple(Validator(peer_id_from_public_key(pk), w)
                                       for pk, w in zip(self.pks, weights, strict=True)), PARAMS)
        byz: list[int] = []
        for i in rng.sample(range(n), n):  # pick Byzantine validators while weight < 1/3
            if 3 * (sum(weights[j] for j in byz) + weights[i]) < total and (
                    byz_max or rng.random() < 0.5):
                byz.append(i)
        kinds = ["equivocate"] * 2 if byz_max else list(BYZ_KINDS)
        self.genesis, self.make = genesis, factory or Engine
        self.nodes = [Node(pk, self.make(genesis, pk), rng.choice(kinds) if i in byz else "")
                      for i, pk in enumerate(self.pks)]
        self.honest = [nd for nd in self.nodes if not nd.byz]
        self.loss = rng.choice((0.0, 0.1, 0.3))
        self.max_delay = rng.choice((50, 300, 1_500))
        self.heal = rng.choice((0, rng.randint(1_000, 25_000)))
        groups = rng.randint(1, 3)
        self.group = [rng.randrange(groups) for _ in range(n)]
        if byz_max:  # the adversary schedules: one group, little loss, a long async spell
            self.loss, self.group = rng.choice((0.0, 0.05)), [0] * n
            self.heal = rng.randint(8_000, 25_000)
        self.camp = self._camps(rng, weights, byz) if byz_max else [True] * n
        self.items = [self._item(k, rng) for k in range(rng.randint(2, 3))]
        self.liveness_ms = liveness_ms
        self.settled = max(self.heal, *(it.close for it in self.items))
        self.deadline = self.settled + liveness_ms
        self.queue: list[tuple[int, int, int, int, object]] = []
        self.seq = 0
        self.now = 0
        self.violations: list[str] = []
        self.lag: int | None = None  # ms from `settled` to all final (< 0: before it)
        self.decided: dict[Key, str] = {}
        self.casts: dict[tuple[int, Key, int, int], str | None] = {}
        self.byz_sent: set[tuple[Key, int, int]] = set()
        self.restart = rng.choice((-1, -1, rng.randrange(n))), rng.randint(500, 30_000)
        self.trace = hashlib.sha256()  # every event the run processes, in order
        self.events = 0
        self.finals = 0  # (honest node, item) pairs final

    def _item(self, k: int, rng: random.Random) -> Item:
        redundancy = rng.randint(2, 5)
        count = redundancy + rng.randint(-2, 3) if rng.random() < 0.3 else redundancy + 2
        bias = rng.choice(LABELS)
        labels = [bias if rng.random() < 0.4 else rng.choice(LABELS) for _ in range(count)]
        if self.adversarial:  # the first `redundancy` say "a", the full view says "b"
            labels = ["a"] * redundancy + ["b"] * (redundancy + 1)
        return Item((b"task", bytes([k])), labels, redundancy, rng.randint(0, 30_000))

    # ------------------------------------------------------------ scheduling

    def at(self, t: int, kind: int, to: int, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, kind, to, payload))

    def send(self, frm: int, to: int, ev: VoteReceived) -> None:
        if self.now < self.heal:
            if self.group[frm] != self.group[to] or self.rng.random() < self.loss:
                return
            if self.rng.random() < 0.05:  # duplicate
                self.at(self.now + self.rng.randint(1, self.max_delay), _VOTE, to, ev)
            self.at(self.now + self.rng.randint(1, self.max_delay), _VOTE, to, ev)
        else:
            self.at(self.now + self.rng.randint(1, 200), _VOTE, to, ev)

    # ------------------------------------------------------------ the run

    def run(self) -> list[str]:
        rng = self.rng
        for i, nd in enumerate(self.nodes):
            for it in self.items:
                nd.held[it.key] = set()
                if self.adversarial:
                    self._adversarial_views(i, it)
                else:
                    for j in range(len(it.labels)):
                        if rng.random() < 0.6:
                            self.at(rng.randint(0, 8_000), _ANNOT, i, (it.key, j))
                self.at(it.close, _CLOSE, i, it.key)
        self.at(self.heal, _HEAL, -1, None)
        if self.restart[0] >= 0 and not self.nodes[self.restart[0]].byz:
            self.at(self.restart[1], _RESTART, self.restart[0], None)
        for i, nd in enumerate(self.nodes):
            if nd.byz in ("", "liar"):
                for it in self.items:
                    self.apply(i, nd.engine.handle(ProposalChanged(it.key, self.propose(i, it))))
                    self.apply(i, nd.engine.start(it.key))
        need = len(self.honest) * len(self.items)
        while self.queue:
            t, seq, kind, to, payload = heapq.heappop(self.queue)
            if t > self.deadline:
                break
            self.now = t
            self.events += 1
            self.trace.update(b"%d %d %d %d %s\n" % (t, seq, kind, to, _describe(payload)))
            self.step(kind, to, payload)
            if self.finals == need:
                self.lag = self.now - self.settled  # time to finality after heal and close
                return self.violations
        late = [(nd.pk[0], it.key[1][0]) for nd in self.honest for it in self.items
                if it.key not in nd.final]
        self.violations.append(f"LIVENESS seed={self.seed}: (validator, item) not final "
                               f"by {self.deadline} ms: {late}")
        return self.violations

    def step(self, kind: int, to: int, payload: object) -> None:
        nd = self.nodes[to] if to >= 0 else None
        if kind == _VOTE and nd is not None and isinstance(payload, VoteReceived):
            if nd.byz in ("", "liar") and payload not in nd.store:
                nd.store.add(payload)
                self.apply(to, nd.engine.handle(payload))
                if self.now >= self.heal and self.nodes[payload.validator[0] - 1].byz:
                    for j in range(len(self.nodes)):  # gossip relays what it accepts
                        if j != to:
                            self.send(to, j, payload)
        elif kind == _TIMER and nd is not None and isinstance(payload, tuple):
            incarnation, ev = payload
            if incarnation == nd.incarnation:
                self.apply(to, nd.engine.handle(ev))
        elif kind == _ANNOT and nd is not None and isinstance(payload, tuple):
            key, j = payload
            nd.held[key].add(j)
            self.reconsider(to, key)
        elif kind == _CLOSE and nd is not None and isinstance(payload, tuple):
            self.reconsider(to, payload)
        elif kind == _SYNC and nd is not None and isinstance(payload, tuple):
            for peer in self.honest:  # pull the item's annotations from reachable peers
                if self.now >= self.heal or (not self.adversarial and  # withheld before heal
                                             self.group[to] == self.group[self.nodes.index(peer)]):
                    nd.held[payload] |= peer.held[payload]
            it = next(it for it in self.items if it.key == payload)
            self.apply(to, nd.engine.handle(ProposalChanged(payload, self.propose(to, it))))
        elif kind == _HEAL:
            self.on_heal()
        elif kind == _RESTART and nd is not None:
            self.on_restart(to, nd)

    @staticmethod
    def _camps(rng: random.Random, weights: list[int], byz: list[int]) -> list[bool]:
        """Adversarial seeds: which honest nodes start in camp "a" (True) or "b".

        Either camp "a" is just big enough for a polka with the Byzantine weight
        (a finality for "a" that the rest may miss), or the camps are even (two
        quorums that overlap only in Byzantine weight if the quorum is too small)."""
        total, bw = sum(weights), sum(weights[j] for j in byz)
        honest = [i for i in rng.sample(range(len(weights)), len(weights)) if i not in byz]
        polka = rng.random() < 0.5
        camp, w = [False] * len(weights), 0
        for i in honest:
            if (3 * (w + bw) <= 2 * total) if polka else (2 * w < total - bw):
                camp[i], w = True, w + weights[i]
        return camp

    def _adversarial_views(self, i: int, it: Item) -> None:
        """Camp "a" holds the first ``redundancy`` annotations ("a"), camp "b" the next
        ones ("b"); the rest arrive at one time per node before the heal (the full view
        says "b"), so proposals differ between nodes and change between rounds."""
        rng, r = self.rng, it.redundancy
        first = range(r) if self.camp[i] else range(r, 2 * r)
        for j in first:
            self.at(rng.randint(0, 300), _ANNOT, i, (it.key, j))
        full = rng.randint(1_500, max(1_500, self.heal))
        for j in range(len(it.labels)):
            if j not in first:
                self.at(full, _ANNOT, i, (it.key, j))

    def on_heal(self) -> None:
        every: set[VoteReceived] = set()
        for nd in self.honest:
            every |= nd.store
        for i, nd in enumerate(self.nodes):
            if nd.byz in ("", "liar"):
                # sorted: set order follows the hash seed, and each vote draws a delay
                for ev in sorted(every - nd.store, key=_vote_order):
                    self.at(self.now + self.rng.randint(1, 500), _VOTE, i, ev)
                for it in self.items:
                    for j in range(len(it.labels)):
                        self.at(self.now + self.rng.randint(1, 500), _ANNOT, i, (it.key, j))

    def on_restart(self, i: int, nd: Node) -> None:
        nd.incarnation += 1
        nd.engine = self.make(self.genesis, nd.pk)
        for ev in sorted(nd.store, key=_vote_order):
            self.apply(i, nd.engine.handle(ev))
        for it in self.items:
            self.apply(i, nd.engine.handle(ProposalChanged(it.key, self.propose(i, it))))
            self.apply(i, nd.engine.start(it.key))

    # ------------------------------------------------------------ a node's side

    def propose(self, i: int, it: Item) -> str | None:
        nd = self.nodes[i]
        if nd.byz == "liar":
            return LABELS[(self.seed + it.key[1][0]) % len(LABELS)]
        held = nd.held[it.key]
        if len(held) < it.redundancy:
            return EXPIRED if self.now >= it.close else None
        counts: dict[str, int] = {}
        for j in held:
            counts[it.labels[j]] = counts.get(it.labels[j], 0) + 1
        return min(counts, key=lambda lab: (-counts[lab], lab))

    def reconsider(self, i: int, key: Key) -> None:
        nd = self.nodes[i]
        if nd.byz in ("", "liar"):
            it = next(it for it in self.items if it.key == key)
            st = nd.engine.status(key)
            value = self.propose(i, it)
            if st is not None and st.final is None and st.proposal != value:
                self.apply(i, nd.engine.handle(ProposalChanged(key, value)))

    def apply(self, i: int, actions: Sequence[object]) -> None:
        nd = self.nodes[i]
        for a in actions:
            if isinstance(a, CastVote):
                self.cast(i, nd, a)
            elif isinstance(a, SetTimer):
                ev = TimeoutFired(a.key, a.round, a.step)
                self.at(self.now + a.delay_ms, _TIMER, i, (nd.incarnation, ev))
            elif isinstance(a, StartSync):
                self.at(self.now + self.rng.randint(1, 300), _SYNC, i, a.key)
            elif isinstance(a, Finalized) and not nd.byz:
                self.finals += a.key not in nd.final
                nd.final[a.key] = a.value
                first = self.decided.setdefault(a.key, a.value)
                if first != a.value:
                    self.violations.append(f"SAFETY seed={self.seed}: item {a.key[1][0]} "
                                           f"finalized {first!r} and {a.value!r}")

    def cast(self, i: int, nd: Node, a: CastVote) -> None:
        mark = (i, a.key, a.round, a.phase)
        if self.casts.setdefault(mark, a.value) != a.value:
            self.violations.append(f"RESTORE seed={self.seed}: validator {i} recast {mark}")
        ev = VoteReceived(nd.pk, a.key, a.phase, a.round, a.value,
                          b"%d/%d/%d/%s" % (i, a.round, a.phase, str(a.value).encode()))
        nd.store.add(ev)
        self.apply(i, nd.engine.handle(ev))
        for j in range(len(self.nodes)):
            if j != i:
                self.send(i, j, ev)
        if self.adversarial:
            self.echo(i, a)
        else:
            self.byzantine(a)

    def echo(self, i: int, a: CastVote) -> None:
        """Adversarial seeds: every Byzantine validator answers each honest vote to its
        caster alone — the same prevote, so each camp sees its own polka; the same
        precommit only to the first non-nil precommitter of the round (one node may
        finalize, the others must go on to the next round)."""
        value = a.value
        if a.phase == PRECOMMIT and value is not None:
            if (a.key, a.round, a.phase) in self.byz_sent:
                value = None
            self.byz_sent.add((a.key, a.round, a.phase))
        for b, bad in enumerate(self.nodes):
            if bad.byz:
                ref = b"byz%d/%d/%d/%s" % (b, a.round, a.phase, str(value).encode())
                self.send(b, i, VoteReceived(bad.pk, a.key, a.phase, a.round, value, ref))

    def byzantine(self, a: CastVote) -> None:
        """Byzantine validators answer each first honest vote of a (item, round, phase)."""
        mark = (a.key, a.round, a.phase)
        if mark in self.byz_sent:
            return
        self.byz_sent.add(mark)
        rng = self.rng
        for b, bad in enumerate(self.nodes):
            if bad.byz not in ("equivocate", "random"):
                continue
            for j, nd in enumerate(self.nodes):
                if j == b or nd.byz:
                    continue
                if bad.byz == "random":
                    value: str | None = rng.choice((*LABELS, None))
                elif a.phase == PRECOMMIT and (j + a.round) % 2:
                    value = None  # keep half the peers from finalizing
                else:  # tell each peer what it wants to hear
                    st = nd.engine.status(a.key)
                    value = rng.choice(LABELS) if st is None or rng.random() < 0.2 else (
                        st.locked_value if st.locked_round >= 0 else st.proposal)
                ref = b"byz%d/%d/%d/%s" % (b, a.round, a.phase, str(value).encode())
                self.send(b, j, VoteReceived(bad.pk, a.key, a.phase, a.round, value, ref))


def _describe(payload: object) -> bytes:
    """An event's payload for the trace digest (a vote by its fields: repr is slow)."""
    if isinstance(payload, VoteReceived):
        return b"%s %s %d %d %s %s" % (payload.validator, b"/".join(payload.key), payload.phase,
                                       payload.round, str(payload.value).encode(), payload.ref)
    return repr(payload).encode()


def _vote_order(ev: VoteReceived) -> tuple[int, int, Key, bytes, bytes]:
    """A total order on votes that does not depend on the hash seed (the ref differs
    between a validator's two votes of an equivocation)."""
    return ev.round, ev.phase, ev.key, ev.validator, ev.ref


def run_seed(seed: int, factory: EngineFactory | None = None,
             byz_max: bool = False) -> list[str]:
    return Sim(seed, factory, byz_max).run()


__all__ = ["LIVENESS_MS", "Sim", "run_seed"]
