"""The consensus service: feeds the vote state machine and performs its actions.

Sync code decides, async code acts. Records arrive from ingest (gossip, sync,
RPC, our own) on a channel; this service turns them into engine events, derives
this node's proposals from the annotations it holds, and performs the engine's
actions: vote batches are signed once per (phase, round), saved (so a restarted
validator never votes twice differently) and published; timers fire as events;
item syncs ask the p2p layer to sync. Finalized items get a certificate; a task
whose items are all final gets a tally (see :mod:`node.consensus.tallies`).

Bounds (issue 13): engine state exists only for items with annotations or votes;
a received vote counts only within the genesis limits — at most
``max_vote_entries`` entries, rounds at most ``MAX_ROUNDS_AHEAD`` past the
item's (or round 0), items of a known task only (votes naming a task not here
yet wait, at most ``MAX_WAITING_VOTES``, until it comes). A sync never holds up
a round: proposals are refreshed when the sync is done or after half the
round's base timeout, whichever comes first, so a dead peer the sync waits on
cannot slow the quorum that can still talk (a 3|1 split).
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from node.consensus.ports import ConsensusPorts, sync_then_set
from node.consensus.proposals import Proposer
from node.consensus.tallies import TallyKeeper, TallyState
from node.core.config import ConsensusConfig
from node.errors import StoreError
from protocol.consensus import Engine
from protocol.consensus_events import (
    Action,
    CastVote,
    Event,
    Evidence,
    Finalized,
    Key,
    ProposalChanged,
    SetTimer,
    StartSync,
    TimeoutFired,
    vote_bodies,
    vote_events,
)
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.records import (
    PRECOMMIT,
    PREVOTE,
    Annotation,
    GoldReveal,
    Record,
    TallyVote,
    Task,
    TaskUpdate,
    Vote,
    decode_record,
)

if TYPE_CHECKING:
    # libp2p's trio-typing stubs shadow trio's own and lack trio.TaskStatus
    from trio_typing import TaskStatus

log = logging.getLogger("annot.consensus")

PHASES = {PREVOTE: "prevote", PRECOMMIT: "precommit"}
MAX_ROUNDS_AHEAD = 1000  # rounds take seconds each; honest votes are never this far ahead
MAX_WAITING_VOTES = 10_000  # vote records kept for tasks not here (or not resolved) yet
SYNC_COALESCE_S = 0.05  # item syncs asked for within this share one sync


@dataclass(frozen=True, slots=True)
class ItemState:
    """Where one item stands in this node's engine (all None before it starts)."""

    round: int | None
    phase: str | None  # propose | prevote | precommit
    proposal: str | None
    locked: str | None


class ConsensusService:
    """Runs the engine for one node (validator or observer).

    ``own_key`` is this node's public key; it votes only if the genesis lists it.
    Records reach the service through :meth:`records_nowait` (the daemon subscribes
    it to ingest before anything can arrive).
    """

    def __init__(self, genesis: Genesis, own_key: bytes, ports: ConsensusPorts,
                 config: ConsensusConfig, wall_clock: Callable[[], float] = time.time) -> None:
        self.genesis = genesis
        self.ports = ports
        self.store = ports.store
        self.config = config
        validator = own_key if own_key in genesis.weights() else None
        self.engine = Engine(genesis, validator)
        self.proposer = Proposer(ports.store, wall_clock)
        self.tallies = TallyKeeper(genesis, validator, ports, config.tally_settle_s,
                                   self.proposer)
        self._send, self._recv = trio.open_memory_channel[list[Record]](math.inf)
        self._timers: list[tuple[float, int, Key, int, int]] = []
        self._timer_seq = 0
        self._timer_wakeup = trio.Event()
        self._pending_votes: list[CastVote] = []
        self._votes_wakeup = trio.Event()
        self._sync_keys: set[Key] = set()
        self._started: set[Key] = set()
        self._sync_wakeup = trio.Event()
        self._sync_wait_s = genesis.params.round_timeout_ms / 2000
        self._waiting: dict[bytes, list[Record]] = {}  # task → votes waiting for it
        self._n_waiting = 0
        self._item_sets: dict[bytes, frozenset[bytes]] = {}
        self._close_wakeup = trio.Event()  # a task or task update may move the next close

    def records_nowait(self, records: list[Record]) -> None:
        """New records from ingest (any source); processed in order by :meth:`serve`."""
        self._send.send_nowait(records)

    # ------------------------------------------------------------ state for RPC
    def item_state(self, task: bytes, item: bytes) -> ItemState:
        st = self.engine.status((task, item))
        if st is None:
            return ItemState(None, None, None, None)
        return ItemState(st.round, ("propose", "prevote", "precommit")[st.step],
                         self.proposer.current((task, item)), st.locked_value)

    def tally_state(self, task: bytes) -> TallyState:
        return self.tallies.state(task)

    # ------------------------------------------------------------ serving
    async def serve(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        self._restore()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_timers)
            nursery.start_soon(self._serve_closes)
            nursery.start_soon(self._serve_votes)
            nursery.start_soon(self._serve_syncs)
            nursery.start_soon(self.tallies.serve)
            task_status.started()
            async for batch in self._recv:
                self._process(batch)
                # take whatever else is queued before recomputing proposals
                while True:
                    try:
                        more = self._recv.receive_nowait()
                    except trio.WouldBlock:
                        break
                    self._process(more)
                self._perform(self.proposer.flush())

    def _restore(self) -> None:
        """Rebuild engine state from the store: tasks, then every vote (ours included)."""
        nid = self.genesis.network_id
        records = [decode_record(d, nid, verify=False)
                   for kind in ("task", "task_update", "vote", "tally_vote")
                   for d in self.store.records_of_kind(kind)]
        self._process(records, restoring=True)
        self._perform(self.proposer.flush())

    def _process(self, records: list[Record], restoring: bool = False) -> None:
        actions: list[Action] = []
        tasks: list[tuple[bytes, Task]] = []
        for r in records:
            body = r.body
            if r.author not in self.proposer.forkers and not restoring and \
                    self.store.get_by_seq(r.author, r.seq) not in (None, r.data):
                # a fork variant (ingest hands those on): the fork rule drops the
                # author's annotations from every proposal and tally
                log.warning("fork rule: author %s excluded", r.author.hex()[:16])
                self.proposer.author_forked(r.author)
                self.tallies.touch_all()
                continue
            if isinstance(body, Task):
                if body.items_dir is not None and not body.items:
                    # a directory task comes again with its items listed once they are
                    # resolved (node.content.items); until then it has no items to act on
                    continue
                tasks.append((r.cid, body))
                self.proposer.add_task(r.cid, r.author, body)
                self._close_wakeup.set()
                waiting = self._waiting.pop(r.cid, [])
                if waiting:  # votes that came before their task: now they count
                    self._n_waiting -= len(waiting)
                    self._process(waiting, restoring)
            elif isinstance(body, Annotation):
                self.proposer.annotation_added(body.task, body.item)
                self.tallies.touch(body.task)
            elif isinstance(body, GoldReveal):
                self.tallies.touch(body.task)
            elif isinstance(body, Vote):
                if len(body.entries) > self.genesis.params.max_vote_entries:
                    log.info("ignoring vote %s: %d entries", r.cid_str, len(body.entries))
                    continue
                missing = self._missing_task(body)
                if missing is not None:
                    self._wait_for_task(missing, r)
                    continue
                try:
                    events = vote_events(r)
                except ProtocolError as exc:
                    log.info("ignoring vote %s: %s", r.cid_str, exc)
                    continue
                self.ports.metrics.vote_counted(PHASES[body.phase])
                for ev in events:
                    if not self._item_exists(ev.key):
                        continue  # no state for items that do not exist
                    st = self.engine.status(ev.key)
                    if ev.round > (st.round if st is not None else 0) + MAX_ROUNDS_AHEAD:
                        # the engine keeps votes of future rounds; bound what a
                        # Byzantine validator can make it hold
                        continue
                    if self.engine.finalized(ev.key) is not None:
                        self._late_vote(ev.key, ev.phase, ev.round, ev.value, r)
                    # performed now, not after the batch: a Finalized must store its
                    # certificate before the next precommit in this batch can join it
                    self._perform(self._handle(ev))
            elif isinstance(body, TallyVote):
                self.tallies.vote_received(r.author, r.seq, body)
            elif isinstance(body, TaskUpdate):
                self.proposer.task_updated(r.author, r.seq, body)
                self.tallies.touch(body.task)
                self._close_wakeup.set()
        for tid, task in tasks:
            for item in task.items:
                key = (tid, item)
                # An item starts voting once this node has a proposal for it (see
                # _perform). After a restart, items with votes resume at once.
                if restoring and self.engine.status(key) is not None:
                    self._started.add(key)
                    actions += self.engine.start(key)
            self.tallies.check_complete(tid)
        self._perform(actions)

    def _missing_task(self, vote: Vote) -> bytes | None:
        for e in vote.entries:
            if e.task not in self.proposer.tasks:
                return e.task
        return None

    def _item_exists(self, key: Key) -> bool:
        entry = self.proposer.tasks.get(key[0])
        if entry is None:
            return False
        task = entry[1]
        if task.items_dir is not None and len(task.items) != task.item_count:
            return self.store.has_task_item(key[0], key[1])
        return key[1] in self._item_sets.setdefault(key[0], frozenset(task.items))

    def _wait_for_task(self, task: bytes, r: Record) -> None:
        if self._n_waiting >= MAX_WAITING_VOTES:
            log.info("dropping vote %s: %d votes already wait for their tasks",
                     r.cid_str, self._n_waiting)
            return
        self._waiting.setdefault(task, []).append(r)
        self._n_waiting += 1

    def _handle(self, ev: Event) -> list[Action]:
        try:
            return self.engine.handle(ev)
        except ProtocolError as exc:
            log.info("engine refused %s: %s", type(ev).__name__, exc)
            return []

    # ------------------------------------------------------------ actions
    def _perform(self, actions: list[Action] | list[ProposalChanged]) -> None:
        queue: deque[Any] = deque(actions)
        while queue:
            a = queue.popleft()
            if isinstance(a, ProposalChanged):
                queue += self._handle(a)
                if a.value is not None and a.key not in self._started:
                    # Without a proposer, a validator that lacks the annotations has
                    # nothing to say: starting the item then would only run out the
                    # propose timeout into a nil prevote and a wasted round. It
                    # starts once its annotations give it a proposal (sync delivers
                    # them); the others finalize without it meanwhile if they can.
                    self._started.add(a.key)
                    queue += self.engine.start(a.key)
            elif isinstance(a, CastVote):
                self._pending_votes.append(a)
                self._votes_wakeup.set()
            elif isinstance(a, SetTimer):
                self._timer_seq += 1
                deadline = trio.current_time() + a.delay_ms / 1000
                heapq.heappush(self._timers, (deadline, self._timer_seq, a.key, a.round, a.step))
                self._timer_wakeup.set()
            elif isinstance(a, StartSync):
                self._sync_keys.add(a.key)
                self._sync_wakeup.set()
            elif isinstance(a, Finalized):
                self._finalized(a)
            elif isinstance(a, Evidence):
                self._evidence(a)

    def _finalized(self, f: Finalized) -> None:
        task, item = f.key
        # the store keeps the precommit record ids; the certificate is built on export
        self.store.save_certificate(task, item, f.value, f.round,
                                    [ref for _, ref in f.precommit_refs])
        self.ports.metrics.item_finalized(f.round)
        self.tallies.item_final(task, item)

    def _late_vote(self, key: Key, phase: int, rnd: int, value: str | None, r: Record) -> None:
        """A precommit for a final item's value and round joins its certificate, so every
        node's certificate converges on the same, complete set of signatures."""
        fin = self.engine.finalized(key)
        if fin is None or phase != PRECOMMIT or rnd != fin.round or value != fin.value:
            return
        self.store.add_certificate_vote(key[0], key[1], r.cid)
        self.tallies.touch(key[0])  # its signers are in the tally

    def _evidence(self, e: Evidence) -> None:
        a, b = self.store.get(e.ref_a), self.store.get(e.ref_b)
        if a is not None and b is not None and self.store.save_evidence("vote", a, b):
            log.warning("evidence: validator equivocated on %s round %d phase %d",
                        e.key, e.round, e.phase)

    # ------------------------------------------------------------ loops
    async def _serve_timers(self) -> None:
        while True:
            now = trio.current_time()
            while self._timers and self._timers[0][0] <= now:
                _, _, key, rnd, step = heapq.heappop(self._timers)
                self._perform(self._handle(TimeoutFired(key, rnd, step)))
            self._timer_wakeup = trio.Event()
            wait = self._timers[0][0] - now if self._timers else math.inf
            with trio.move_on_after(wait):
                await self._timer_wakeup.wait()

    async def _serve_closes(self) -> None:
        """Close times fire by themselves (not at the next record): at a task's close
        time its items are proposed again, EXPIRED where short of annotations."""
        while True:
            self._close_wakeup = trio.Event()
            due = self.proposer.next_close()
            now = self.proposer.clock()
            if due is not None and due[0] <= now:
                self.proposer.close_due(due[1], due[0])
                self._perform(self.proposer.flush())
                continue
            with trio.move_on_after(math.inf if due is None else due[0] - now):
                await self._close_wakeup.wait()

    async def _serve_votes(self) -> None:
        delay = self.config.vote_batch_delay_ms / 1000
        limit = self.genesis.params.max_vote_entries
        while True:
            await self._votes_wakeup.wait()
            await trio.sleep(delay)
            self._votes_wakeup = trio.Event()
            pending, self._pending_votes = self._pending_votes, []
            for body in vote_bodies(pending):
                for i in range(0, len(body.entries), limit):
                    # saved before it is sent: ingest feeds it back to us as a vote
                    try:
                        self.ports.sign_own(Vote(body.phase, body.round,
                                                body.entries[i:i + limit]))
                    except StoreError as exc:
                        # a vote that cannot be persisted is never sent; the item
                        # moves on by timeouts and later rounds once writes work again
                        log.error("vote not cast, the store refuses writes: %s", exc)

    async def _serve_syncs(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                await self._sync_wakeup.wait()
                await trio.sleep(SYNC_COALESCE_S)  # the keys of one burst share a sync
                self._sync_wakeup = trio.Event()
                keys, self._sync_keys = self._sync_keys, set()
                # a sync of its own, not a share of one already running: that one may
                # be stuck on a peer across a partition until its timeout. Peers with a
                # session in progress are skipped (p2p), so this opens no second one.
                done = trio.Event()
                nursery.start_soon(sync_then_set, self.ports.request_sync, done)
                nursery.start_soon(self._refresh_after, keys, done)

    async def _refresh_after(self, keys: set[Key], done: trio.Event) -> None:
        # the engine waits for a fresh proposal after each StartSync; a sync held up
        # by an unreachable peer must not hold the round (it prevotes on the timeout)
        with trio.move_on_after(self._sync_wait_s):
            await done.wait()
        self._perform(self.proposer.refresh(keys))
