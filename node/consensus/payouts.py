"""Payout epochs: validators certify, by quorum, the Merkle root of what is owed.

Epoch ``N`` covers every task whose tally is final here and in no certified
earlier epoch. Each node computes the epoch's claims (:mod:`protocol.payout`:
amounts owed to bound addresses, less what earlier certified epochs exported)
and the claim file's exact bytes; a validator signs a ``payout_vote`` for
``(N, tasks, root)`` once every tally of the candidate has been final here for
``settle_s`` and no binding changed for as long, and votes again if its candidate
changes (a tally or a binding arrives late), as tally votes do. When validators
holding more than the quorum of weight have the same latest ``(tasks, root)``
for ``N``, the epoch is certified; a node whose own candidate has that root keeps
the file in its store (the first certified version of an epoch stays).

Bindings: an author's binding with the highest seq is in force (each was
checked on decode: its EIP-191 signature is by the bound address).

Known limit, shared with tally votes: a validator that re-votes before it sees
a quorum could, in a partition, help certify a second candidate for an epoch
that others already certified; a node keeps the first it saw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, cast

import trio

from node.errors import StoreError
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.payout import compute_claims, exported_amounts, payout_file
from protocol.records import Body, PayoutBinding, PayoutVote, Record, decode_record
from protocol.tally import Tally, decode_tally

log = logging.getLogger("annot.payouts")
POLL_S = 1.0


class PayoutStore(Protocol):
    """The store methods payouts use (:class:`node.store.db.Store`)."""

    def records_of_kind(self, kind: str) -> Iterator[bytes]: ...
    def tallies(self) -> list[tuple[bytes, bytes, bytes]]: ...
    def save_payout_epoch(self, epoch: int, root: bytes, tasks: Iterable[bytes],
                          data: bytes) -> bool: ...
    def payout_epochs(self) -> list[tuple[int, bytes, list[bytes], bytes]]: ...


def payout_store(store: object) -> PayoutStore:
    """The consensus ports' store as a :class:`PayoutStore` (the node's Store is both)."""
    return cast(PayoutStore, store)


@dataclass(frozen=True, slots=True)
class Candidate:
    """This node's view of the next epoch."""

    epoch: int
    tasks: tuple[bytes, ...]
    root: bytes
    data: bytes


def latest_bindings(records: Iterable[Record]) -> dict[bytes, bytes]:
    """Author → bound address, from each author's binding with the highest seq."""
    best: dict[bytes, tuple[int, bytes]] = {}
    for r in records:
        if isinstance(r.body, PayoutBinding) and r.seq > best.get(r.author, (0, b""))[0]:
            best[r.author] = (r.seq, r.body.address)
    return {a: addr for a, (_, addr) in best.items()}


def next_candidate(network_id: bytes, tallies: dict[bytes, Tally],
                   epochs: list[tuple[int, bytes, list[bytes], bytes]],
                   bindings: dict[bytes, bytes]) -> Candidate | None:
    """The next epoch from final ``tallies``, certified ``epochs`` and ``bindings``;
    ``None`` when no new task has a tally, a covered tally is missing here, or
    nothing new is owed to a bound address."""
    covered: set[bytes] = set()
    exported: dict[bytes, int] = {}
    for _, _, tasks, data in epochs:
        covered.update(tasks)
        for account, amount in exported_amounts(data).items():
            exported[account] = exported.get(account, 0) + amount
    new = tuple(sorted(t for t in tallies if t not in covered))
    if not new or not covered <= set(tallies):
        return None
    claims = compute_claims((tallies[t] for t in sorted(covered | set(new))), bindings, exported)
    if not claims:
        return None
    epoch = 1 + max((e for e, _, _, _ in epochs), default=0)
    root, data = payout_file(network_id, epoch, new, claims)
    return Candidate(epoch, new, root, data)


class PayoutKeeper:
    """Votes on and certifies payout epochs; ``sign_own`` is ``None`` on a non-validator."""

    def __init__(self, genesis: Genesis, store: PayoutStore,
                 sign_own: Callable[[Body], Record] | None, settle_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.genesis = genesis
        self.store = store
        self.sign_own = sign_own
        self.settle_s = settle_s
        self.clock = clock
        self._weights = genesis.weights()
        # epoch → author → (seq, tasks, root) of its latest payout vote
        self._latest: dict[int, dict[bytes, tuple[int, tuple[bytes, ...], bytes]]] = {}
        self._own: Candidate | None = None
        self._inputs: tuple[object, ...] = ()
        self._changed_at = 0.0
        self._candidate: Candidate | None = None
        self._wakeup = trio.Event()

    def restore(self) -> None:
        """Count the payout votes in the store (each step, and after a restart)."""
        nid = self.genesis.network_id
        self.records_nowait([decode_record(d, nid, verify=False)
                             for d in self.store.records_of_kind("payout_vote")])

    def records_nowait(self, records: list[Record]) -> None:
        """New records from ingest: payout votes count, bindings wake the keeper."""
        for r in records:
            body = r.body
            if isinstance(body, PayoutVote) and r.author in self._weights:
                votes = self._latest.setdefault(body.epoch, {})
                if r.author not in votes or votes[r.author][0] < r.seq:
                    votes[r.author] = (r.seq, body.tasks, body.root)
                    self._wakeup.set()
            elif isinstance(body, PayoutBinding):
                self._wakeup.set()

    def quorum(self, epoch: int) -> tuple[tuple[bytes, ...], bytes] | None:
        """The (tasks, root) that validators with a quorum of weight voted for ``epoch``."""
        weight: dict[tuple[tuple[bytes, ...], bytes], int] = {}
        for author, (_, tasks, root) in self._latest.get(epoch, {}).items():
            weight[(tasks, root)] = weight.get((tasks, root), 0) + self._weights.get(author, 0)
        for key, w in sorted(weight.items()):
            if self.genesis.quorum(w):
                return key
        return None

    def votes(self, epoch: int) -> dict[bytes, tuple[int, tuple[bytes, ...], bytes]]:
        """author → (seq, tasks, root) of the latest payout votes for ``epoch``."""
        return dict(self._latest.get(epoch, {}))

    def _current(self) -> Candidate | None:
        nid = self.genesis.network_id
        tallies = {t: decode_tally(d) for t, _, d in self.store.tallies()}
        epochs = self.store.payout_epochs()
        bindings = latest_bindings(decode_record(d, nid, verify=False)
                                   for d in self.store.records_of_kind("payout_binding"))
        inputs = (tuple(sorted(tallies)), tuple(e for e, _, _, _ in epochs),
                  tuple(sorted(bindings.items())))
        if inputs != self._inputs:
            self._inputs, self._changed_at = inputs, self.clock()
            self._candidate = next_candidate(nid, tallies, epochs, bindings)
        return self._candidate

    def step(self) -> None:
        """Vote for our candidate once it has settled; certify what has a quorum. Payout
        votes are read from the store (they are few), so nothing needs to route them."""
        try:
            self.restore()
            cand = self._current()
        except (ProtocolError, ValueError, KeyError) as exc:
            log.warning("cannot compute the next payout epoch: %s", exc)
            return
        if cand is None:
            return
        if (self.sign_own is not None and self._own != cand
                and self.clock() - self._changed_at >= self.settle_s):
            try:
                self.sign_own(PayoutVote(epoch=cand.epoch, tasks=cand.tasks, root=cand.root))
            except StoreError as exc:
                log.error("payout vote not cast, the store refuses writes: %s", exc)
                return
            self._own = cand
        agreed = self.quorum(cand.epoch)
        if agreed is None:
            return
        if agreed != (cand.tasks, cand.root):
            log.info("payout epoch %d certified with root %s, ours is %s: not kept here",
                     cand.epoch, agreed[1].hex()[:16], cand.root.hex()[:16])
            return
        try:
            if self.store.save_payout_epoch(cand.epoch, cand.root, cand.tasks, cand.data):
                log.info("payout epoch %d certified: %d tasks, root %s", cand.epoch,
                         len(cand.tasks), cand.root.hex()[:16])
        except StoreError as exc:
            log.error("certified payout epoch not saved, the store refuses writes: %s", exc)
            return
        self._inputs = ()  # the next epoch starts from the stored one

    async def serve(self) -> None:
        """Run :meth:`step` whenever something changes, and every ``POLL_S``."""
        while True:
            with trio.move_on_after(POLL_S):
                await self._wakeup.wait()
            self._wakeup = trio.Event()
            self.step()
