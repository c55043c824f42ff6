"""The consensus service: feeds the vote state machine and performs its actions.

Sync code decides, async code acts. Records arrive from ingest (gossip, sync,
RPC, our own) on a channel; this service turns them into engine events, derives
this node's proposals from the annotations it holds, and performs the engine's
actions: vote batches are signed once per (phase, round), saved (so a restarted
validator never votes twice differently) and published; timers fire as events;
item syncs ask the p2p layer to sync. Finalized items get a certificate; a task
whose items are all final gets a tally (see :mod:`node.consensus.tallies`).
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from node.consensus.ports import ConsensusPorts
from node.consensus.proposals import Proposer
from node.consensus.tallies import TallyKeeper
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
    Record,
    TallyVote,
    Task,
    Vote,
    decode_record,
)

if TYPE_CHECKING:
    # libp2p's trio-typing stubs shadow trio's own and lack trio.TaskStatus
    from trio_typing import TaskStatus

log = logging.getLogger("annot.consensus")

PHASES = {PREVOTE: "prevote", PRECOMMIT: "precommit"}
MAX_ROUNDS_AHEAD = 1000  # rounds take seconds each; honest votes are never this far ahead


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

    def records_nowait(self, records: list[Record]) -> None:
        """New records from ingest (any source); processed in order by :meth:`serve`."""
        self._send.send_nowait(records)

    # ------------------------------------------------------------ state for RPC
    def item_state(self, task: bytes, item: bytes) -> dict[str, Any]:
        st = self.engine.status((task, item))
        if st is None:
            return {"round": None, "phase": None, "proposal": None, "locked": None}
        return {"round": st.round, "phase": ("propose", "prevote", "precommit")[st.step],
                "proposal": self.proposer.current((task, item)), "locked": st.locked_value}

    def tally_state(self, task: bytes) -> dict[str, Any]:
        return self.tallies.state(task)

    # ------------------------------------------------------------ serving
    async def serve(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        self._restore()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve_timers)
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
                   for kind in ("task", "vote", "tally_vote")
                   for d in self.store.records_of_kind(kind)]
        self._process(records, restoring=True)
        self._perform(self.proposer.flush())

    def _process(self, records: list[Record], restoring: bool = False) -> None:
        actions: list[Action] = []
        tasks: list[tuple[bytes, Task]] = []
        for r in records:
            body = r.body
            if isinstance(body, Task):
                if body.items_dir is not None and not body.items:
                    # a directory task comes again with its items listed once they are
                    # resolved (node.content.items); until then it has no items to act on
                    continue
                tasks.append((r.cid, body))
                self.proposer.add_task(r.cid, r.author, body)
            elif isinstance(body, Annotation):
                self.proposer.annotation_added(body.task, body.item)
            elif isinstance(body, Vote):
                try:
                    events = vote_events(r)
                except ProtocolError as exc:
                    log.info("ignoring vote %s: %s", r.cid_str, exc)
                    continue
                self.ports.metrics.vote_counted(PHASES[body.phase])
                for ev in events:
                    st = self.engine.status(ev.key)
                    if st is not None and ev.round > st.round + MAX_ROUNDS_AHEAD:
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
        self.ports.metrics.item_finalized()
        self.tallies.item_final(task, item)

    def _late_vote(self, key: Key, phase: int, rnd: int, value: str | None, r: Record) -> None:
        """A precommit for a final item's value and round joins its certificate, so every
        node's certificate converges on the same, complete set of signatures."""
        fin = self.engine.finalized(key)
        if fin is None or phase != PRECOMMIT or rnd != fin.round or value != fin.value:
            return
        self.store.add_certificate_vote(key[0], key[1], r.cid)

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
        while True:
            await self._sync_wakeup.wait()
            self._sync_wakeup = trio.Event()
            keys, self._sync_keys = self._sync_keys, set()
            await self.ports.request_sync()
            # the engine waits for a fresh proposal after each StartSync
            self._perform(self.proposer.refresh(keys))
