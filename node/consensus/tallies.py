"""Tallies: once every item of a task is final, agree on who earned what.

Each node computes the task's tally deterministically (protocol.tally) from the
final values, the validators in each certificate and the admitted annotations.
A validator waits ``tally_settle_s`` and syncs, then signs a tally vote for its
root; if its computed root later changes (late annotations or precommits
arrive), it votes again. A root is final when validators holding more than the
quorum of weight have it as their latest tally vote; a node stores the tally
once it has computed the same root itself, and the ledger is the sum of those.

A node whose own root differs from a final root (it computed from
certificates whose late precommits arrived after the others had voted, so
nobody can recompute that root any more) adopts the agreed tally instead: a
stored tally is also kept as the raw block ``TALLY_TAG + encoding``, whose
CID's digest *is* the root, so the bytes are fetched over bitswap and checked
against the root that validators with a quorum of weight signed.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import trio

from node.consensus.gold import GoldPending, gold_answers
from node.consensus.payouts import PayoutKeeper, payout_store
from node.consensus.ports import ConsensusPorts, sync_then_set
from node.consensus.proposals import Proposer
from node.errors import NodeError, StoreError
from protocol.cid import cid_from_digest
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.keys import peer_id_from_public_key
from protocol.records import TallyVote
from protocol.tally import TALLY_TAG, compute_tally, decode_tally, encode_tally, tally_root

log = logging.getLogger("annot.tallies")
FETCH_TIMEOUT_S = 5.0
SYNC_WAIT_S = 1.0  # how long a first tally vote waits for the sync before it


def tally_block_cid(root: bytes) -> bytes:
    """CIDv1 (raw, sha2-256) of the block ``TALLY_TAG + encoding``: its digest is the root."""
    return cid_from_digest(root)


@dataclass(frozen=True, slots=True)
class TallyState:
    """The tally votes seen for one task: validator peer id -> root hex, and the root
    that holds a quorum, if any."""

    votes: dict[str, str]
    quorum_root: str | None


class TallyKeeper:
    """Tallies complete tasks; ``validator`` is this node's key if it votes, else None."""

    def __init__(self, genesis: Genesis, validator: bytes | None, ports: ConsensusPorts,
                 settle_s: float, proposer: Proposer) -> None:
        self.genesis = genesis
        self.validator = validator
        self.ports = ports
        self.store = ports.store
        self.settle_s = settle_s
        self.proposer = proposer
        self._weights = genesis.weights()
        self._latest: dict[bytes, dict[bytes, tuple[int, bytes]]] = {}  # task → author → vote
        self._own_root: dict[bytes, bytes] = {}
        self._complete: set[bytes] = set()
        self._final_items: dict[bytes, set[bytes]] = {}
        # task -> (root, encoded tally) until something it is computed from changes
        # (touch): recomputing every complete task on every wakeup read each item's
        # certificate again per tally vote received (11% of a validator's samples)
        self._computed: dict[bytes, tuple[bytes, bytes]] = {}
        self._wakeup = trio.Event()
        self.clock = time.time  # the gold reveal deadline is on the wall clock
        # payout epochs (issue 16): the keeper reads tallies, bindings and payout votes
        # from the store; ports.store is the node's Store, which has its methods
        self.payouts = PayoutKeeper(genesis, payout_store(ports.store),
                                    ports.sign_own if validator is not None else None,
                                    settle_s)

    def state(self, task: bytes) -> TallyState:
        votes = self._latest.get(task, {})
        return TallyState({peer_id_from_public_key(a): r.hex() for a, (_, r) in votes.items()},
                          q.hex() if (q := self._quorum_root(task)) else None)

    def touch(self, task: bytes) -> None:
        """Something ``task``'s tally is computed from changed: a certificate, an
        annotation, a task update or gold reveal. Compute it again when next needed."""
        self._computed.pop(task, None)

    def touch_all(self) -> None:
        """The fork rule excluded an author: every tally is computed again."""
        self._computed.clear()

    def item_final(self, task: bytes, item: bytes) -> None:
        self.touch(task)
        # counted in memory: re-reading the task's certificates per final item was
        # quadratic in the task's size (the finality benchmark's top profile entry)
        self._final_items.setdefault(task, set()).add(item)
        self.check_complete(task)

    def check_complete(self, task: bytes) -> None:
        """Start tallying once every item is final (items may finalize before the task
        record arrives: the consensus service calls this again when it does)."""
        entry = self.proposer.tasks.get(task)
        final = self._final_items.get(task, set())
        if (task not in self._complete and entry and len(final) == len(entry[1].items)
                and self.store.tally(task) is None):
            self._complete.add(task)
            self._wakeup.set()

    def vote_received(self, author: bytes, seq: int, body: TallyVote) -> None:
        votes = self._latest.setdefault(body.task, {})
        if author in votes and votes[author][0] >= seq:
            return
        votes[author] = (seq, body.root)
        if author == self.validator:
            self._own_root[body.task] = body.root
        self._wakeup.set()

    def _quorum_root(self, task: bytes) -> bytes | None:
        weight: dict[bytes, int] = {}
        for author, (_, root) in self._latest.get(task, {}).items():
            weight[root] = weight.get(root, 0) + self._weights.get(author, 0)
        for root, w in weight.items():
            if self.genesis.quorum(w):
                return root
        return None

    def compute(self, task: bytes) -> tuple[bytes, bytes]:
        """(root, encoded tally) of a complete task as this node sees it now."""
        requester, t = self.proposer.tasks[task]
        finals = {}
        for item in t.items:
            stored = self.store.certificate(task, item)
            if stored is None:
                raise LookupError(f"item {item.hex()} is not final")
            # signers from the store's author column: decoding every precommit batch
            # (hundreds of entries each) per item blocked the event loop for seconds
            finals[item] = (stored[0], tuple(sorted(set(self.store.authors(stored[2])))))
        gold = gold_answers(self.store, self.genesis.network_id, task, requester, t,
                            self.clock())  # GoldPending until the reveal or its deadline
        tally = compute_tally(t, task, requester, finals, self.proposer.admitted(task), gold)
        return tally_root(tally), encode_tally(tally)

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.payouts.serve)
            await self._serve_tallies(nursery)

    async def _serve_tallies(self, nursery: trio.Nursery) -> None:
        settle = self.settle_s
        while True:
            # while a tally is open, re-check now and then: our root may change
            with trio.move_on_after(max(settle, 0.5) if self._complete else math.inf):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            unvoted = [t for t in self._complete if t not in self._own_root]
            if unvoted and self.validator is not None:
                await trio.sleep(settle)  # let late annotations and precommits arrive
                # and pull what peers hold, but vote without waiting past
                # SYNC_WAIT_S: a peer across a partition holds its sync session until
                # a timeout (20 s) while the quorum could tally. A vote cast before a
                # late precommit arrives is cast again here if the root moves.
                done = trio.Event()
                nursery.start_soon(sync_then_set, self.ports.request_sync, done)
                with trio.move_on_after(SYNC_WAIT_S):
                    await done.wait()
            behind = {}
            for task in sorted(self._complete):
                other = self._step(task)
                if other is not None:
                    behind[task] = other
            for task, root in behind.items():
                await self._adopt(task, root)

    def _step(self, task: bytes) -> bytes | None:
        """Vote our root; store the tally if it is final. Return the final root when it
        differs from ours (then it has to be fetched), else ``None``."""
        try:
            computed = self._computed.get(task)
            if computed is None:
                computed = self._computed[task] = self.compute(task)
            root, data = computed
        except GoldPending as exc:
            log.debug("not tallying task %s yet: %s", task.hex()[:16], exc)
            return None
        except (ProtocolError, LookupError) as exc:
            log.warning("cannot tally task %s: %s", task.hex()[:16], exc)
            return None
        if self.validator is not None and self._own_root.get(task) != root:
            try:
                self.ports.sign_own(TallyVote(task=task, root=root))
            except StoreError as exc:
                log.error("tally vote not cast, the store refuses writes: %s", exc)
                return None
            self._own_root[task] = root
        final = self._quorum_root(task)
        if final is None:
            return None
        if final != root:
            return final
        self._save(task, root, data)
        return None

    def _save(self, task: bytes, root: bytes, data: bytes) -> None:
        try:
            self.store.save_tally(task, root, data)
        except StoreError as exc:
            log.error("final tally not saved, the store refuses writes: %s", exc)
            return
        if self.ports.put_block is not None:
            try:  # so peers that computed another root can fetch the agreed one
                self.ports.put_block(TALLY_TAG + data)
            except NodeError as exc:
                log.warning("tally of task %s not kept as a block: %s", task.hex()[:16], exc)
        self._complete.discard(task)
        self._computed.pop(task, None)
        log.info("tally final for task %s: root %s", task.hex()[:16], root.hex()[:16])

    async def _adopt(self, task: bytes, root: bytes) -> None:
        """Fetch the final tally ``root`` (agreed by a quorum, unlike ours) and store it."""
        cid = tally_block_cid(root)
        if self.ports.fetch_block is None:
            return
        try:
            # local store, then peers (bitswap), Kubo
            block = await self.ports.fetch_block(cid, FETCH_TIMEOUT_S)
            if block is None:
                return
            # every source checks the block against its CID, so sha256(block) == root
            if not block.startswith(TALLY_TAG) or tally_root(
                    tally := decode_tally(block[len(TALLY_TAG):])) != root:
                raise ProtocolError("block is not a tally with this root")
            if tally.task != task:
                raise ProtocolError("tally is for another task")
        except (NodeError, ProtocolError) as exc:
            log.info("cannot fetch final tally %s of task %s yet: %s", root.hex()[:16],
                     task.hex()[:16], exc)
            return
        log.info("adopting the final tally of task %s (our root differs)", task.hex()[:16])
        self._save(task, root, block[len(TALLY_TAG):])
