"""A deterministic, seeded discrete-event simulator around the real consensus Engine.

One seed fixes everything: 4 to 10 validators with random weights, Byzantine
validators (total weight < 1/3) that equivocate, withhold, vote at random or lie
about annotations; items whose annotations reach validators at different times
(views differ early, converge after the heal); a lossy, duplicating, reordering
network split into partitions until ``heal``; after the heal no loss, bounded
delay, and one full resync of every vote an honest node holds (the node's sync).
An honest node may crash and restart from its stored votes.

Checked per seed: SAFETY (no two honest nodes finalize different values for an
item; a restarted node never casts a vote that differs from one it cast before)
and LIVENESS (every item finalizes at every honest node within ``LIVENESS_MS``
after the later of the heal and the items' close times).
Signatures are left out: the simulator drives the Engine with events directly.
"""

from __future__ import annotations

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
LIVENESS_MS = 30_000  # measured worst case over 10,000 seeds: see the report
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
                 byz_max: bool = False) -> None:
        self.seed, rng = seed, random.Random(seed)
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
        self.split = byz_max  # adversarial seeds: near-even labels, so partial views disagree
        self.items = [self._item(k, rng) for k in range(rng.randint(2, 3))]
        self.deadline = max(self.heal, *(it.close for it in self.items)) + LIVENESS_MS
        self.queue: list[tuple[int, int, int, int, object]] = []
        self.seq = 0
        self.now = 0
        self.violations: list[str] = []
        self.lag = -1
        self.decided: dict[Key, str] = {}
        self.casts: dict[tuple[int, Key, int, int], str | None] = {}
        self.byz_sent: set[tuple[Key, int, int]] = set()
        self.restart = rng.choice((-1, -1, rng.randrange(n))), rng.randint(500, 30_000)

    def _item(self, k: int, rng: random.Random) -> Item:
        redundancy = rng.randint(2, 5)
        count = redundancy + rng.randint(-2, 3) if rng.random() < 0.3 else redundancy + 2
        bias = rng.choice(LABELS)
        labels = [bias if rng.random() < 0.4 else rng.choice(LABELS) for _ in range(count)]
        if self.split:  # early views lean "a", the full view is "b"
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
                for j in range(len(it.labels)):
                    if rng.random() < 0.6:
                        if self.split:  # annotations arrive in index order
                            t = j * 1_500 + rng.randint(0, 999)
                        else:
                            t = rng.randint(0, 8_000)
                        self.at(t, _ANNOT, i, (it.key, j))
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
            t, _, kind, to, payload = heapq.heappop(self.queue)
            if t > self.deadline:
                break
            self.now = t
            self.step(kind, to, payload)
            if sum(len(nd.final) for nd in self.honest) == need:
                self.lag = self.now - self.deadline + LIVENESS_MS  # time to finality after heal
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
                if self.now >= self.heal or self.group[to] == self.group[self.pks.index(peer.pk)]:
                    nd.held[payload] |= peer.held[payload]
            it = next(it for it in self.items if it.key == payload)
            self.apply(to, nd.engine.handle(ProposalChanged(payload, self.propose(to, it))))
        elif kind == _HEAL:
            self.on_heal()
        elif kind == _RESTART and nd is not None:
            self.on_restart(to, nd)

    def on_heal(self) -> None:
        every: set[VoteReceived] = set()
        for nd in self.honest:
            every |= nd.store
        for i, nd in enumerate(self.nodes):
            if nd.byz in ("", "liar"):
                for ev in every - nd.store:
                    self.at(self.now + self.rng.randint(1, 500), _VOTE, i, ev)
                for it in self.items:
                    for j in range(len(it.labels)):
                        self.at(self.now + self.rng.randint(1, 500), _ANNOT, i, (it.key, j))

    def on_restart(self, i: int, nd: Node) -> None:
        nd.incarnation += 1
        nd.engine = self.make(self.genesis, nd.pk)
        for ev in sorted(nd.store, key=lambda e: (e.round, e.phase, e.key, e.validator)):
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
        self.byzantine(a)

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


def run_seed(seed: int, factory: EngineFactory | None = None,
             byz_max: bool = False) -> list[str]:
    return Sim(seed, factory, byz_max).run()


__all__ = ["Sim", "run_seed"]
