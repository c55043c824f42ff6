"""Tallies: once every item of a task is final, agree on who earned what.

Each node computes the task's tally deterministically (protocol.tally) from the
final values, the validators in each certificate and the admitted annotations.
A validator waits ``tally_settle_s`` and syncs, then signs a tally vote for its
root; if its computed root later changes (late annotations or precommits
arrive), it votes again. A root is final when validators holding more than the
quorum of weight have it as their latest tally vote; a node stores the tally
once it has computed the same root itself, and the ledger is the sum of those.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

from node.node import Node
from node.proposals import Proposer
from protocol.errors import ProtocolError
from protocol.keys import peer_id_from_public_key
from protocol.records import TallyVote, decode_record
from protocol.tally import compute_tally, encode_tally, tally_root

log = logging.getLogger("annot.tallies")


class TallyKeeper:
    def __init__(self, node: Node, proposer: Proposer) -> None:
        self.node = node
        self.proposer = proposer
        self._weights = node.genesis.weights()
        self._latest: dict[bytes, dict[bytes, tuple[int, bytes]]] = {}  # task → author → vote
        self._own_root: dict[bytes, bytes] = {}
        self._complete: set[bytes] = set()
        self._wakeup = trio.Event()

    def state(self, task: bytes) -> dict[str, Any]:
        votes = self._latest.get(task, {})
        return {"votes": {peer_id_from_public_key(a): r.hex() for a, (_, r) in votes.items()},
                "quorum_root": (q.hex() if (q := self._quorum_root(task)) else None)}

    def item_final(self, task: bytes) -> None:
        if task in self._complete or self.node.store.tally(task) is not None:
            return
        entry = self.proposer.tasks.get(task)
        if entry and len(self.node.store.finals(task)) == len(entry[1].items):
            self._complete.add(task)
            self._wakeup.set()

    def vote_received(self, author: bytes, seq: int, body: TallyVote) -> None:
        votes = self._latest.setdefault(body.task, {})
        if author in votes and votes[author][0] >= seq:
            return
        votes[author] = (seq, body.root)
        if author == self.node.public_key:
            self._own_root[body.task] = body.root
        self._wakeup.set()

    def _quorum_root(self, task: bytes) -> bytes | None:
        weight: dict[bytes, int] = {}
        for author, (_, root) in self._latest.get(task, {}).items():
            weight[root] = weight.get(root, 0) + self._weights.get(author, 0)
        for root, w in weight.items():
            if self.node.genesis.quorum(w):
                return root
        return None

    def compute(self, task: bytes) -> tuple[bytes, bytes]:
        """(root, encoded tally) of a complete task as this node sees it now."""
        requester, t = self.proposer.tasks[task]
        nid = self.node.genesis.network_id
        finals = {}
        for item in t.items:
            stored = self.node.store.certificate(task, item)
            if stored is None:
                raise LookupError(f"item {item.hex()} is not final")
            signers = tuple(sorted({decode_record(v, nid, verify=False).author
                                    for v in self.node.store.certificate_votes(stored[2])}))
            finals[item] = (stored[0], signers)
        tally = compute_tally(t, task, requester, finals, self.proposer.admitted(task))
        return tally_root(tally), encode_tally(tally)

    async def serve(self) -> None:
        settle = self.node.config.consensus.tally_settle_s
        while True:
            # while a tally is open, re-check now and then: our root may change
            with trio.move_on_after(max(settle, 0.5) if self._complete else math.inf):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            unvoted = [t for t in self._complete if t not in self._own_root]
            if unvoted and self.node.is_validator:
                await trio.sleep(settle)  # let late annotations and precommits arrive
                if self.node.p2p is not None:
                    with trio.move_on_after(self.node.config.sync.request_timeout_s):
                        await self.node.p2p.request_sync()
            for task in sorted(self._complete):
                self._step(task)

    def _step(self, task: bytes) -> None:
        try:
            root, data = self.compute(task)
        except (ProtocolError, LookupError) as exc:
            log.warning("cannot tally task %s: %s", task.hex()[:16], exc)
            return
        if self.node.is_validator and self._own_root.get(task) != root:
            self._own_root[task] = root
            self.node.sign_own(TallyVote(task=task, root=root))
        final = self._quorum_root(task)
        if final is not None and final == root:
            self.node.store.save_tally(task, root, data)
            self._complete.discard(task)
            log.info("tally final for task %s: root %s", task.hex()[:16], root.hex()[:16])
