"""The narrow ports the consensus glue needs, and nothing more.

The consensus service, the proposer and the tally keeper never see the node,
the p2p stack or the content router: the daemon hands them a
:class:`ConsensusPorts` at construction. Each port is the smallest thing that
fits — a store Protocol listing exactly the methods they call, a function
that signs, saves and publishes one of our own records, a function that asks
peers for a sync, a function that fetches a block — so the glue is tested
in-process with an in-memory SQLite store and plain functions (see
``tests/node/consensus/``), and the import contracts in ``.importlinter``
keep it that way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import trio

from node.store.db import StoredAnnotation
from protocol.records import Body, Record


class ConsensusStore(Protocol):
    """The store methods consensus, proposals and tallies use (:class:`node.store.db.Store`)."""

    def get(self, cid: bytes) -> bytes | None: ...
    def records_of_kind(self, kind: str) -> Iterator[bytes]: ...
    def annotations(self, task: bytes, item: bytes | None = None
                    ) -> list[StoredAnnotation]: ...
    def save_evidence(self, kind: str, a: bytes, b: bytes) -> bool: ...
    def forked_authors(self) -> set[bytes]: ...
    def get_by_seq(self, author: bytes, seq: int) -> bytes | None: ...
    def has_task_item(self, task: bytes, item: bytes) -> bool: ...
    def save_certificate(self, task: bytes, item: bytes, value: str, round_: int,
                         refs: Iterable[bytes]) -> None: ...
    def add_certificate_vote(self, task: bytes, item: bytes, ref: bytes) -> None: ...
    def certificate(self, task: bytes, item: bytes) -> tuple[str, int, list[bytes]] | None: ...
    def authors(self, cids: list[bytes]) -> list[bytes]: ...
    def save_tally(self, task: bytes, root: bytes, data: bytes) -> None: ...
    def tally(self, task: bytes) -> tuple[bytes, bytes] | None: ...
    def tallies(self) -> list[tuple[bytes, bytes, bytes]]: ...
    def records_for_task(self, task: bytes, kind: str) -> list[bytes]: ...


class ConsensusMetrics(Protocol):
    """Counters consensus moves (:class:`node.core.metrics.Metrics` fits)."""

    def vote_counted(self, phase: str) -> None: ...
    def item_finalized(self, round_: int = 0) -> None: ...


SignOwn = Callable[[Body], Record]
"""Reserve a seq durably, sign, save and publish one of our own records (raises
:class:`node.errors.StoreError` when the store refuses writes)."""

RequestSync = Callable[[], Awaitable[None]]
"""Ask peers for what we lack and wait (bounded by the caller's timeout) until done."""

FetchBlock = Callable[[bytes, float], Awaitable[bytes | None]]
"""A block by CID, checked against it: local store first, then peers; ``None`` if
nobody had it within the timeout (seconds)."""

PutBlock = Callable[[bytes], None]
"""Keep a raw block in the local block store so peers can fetch it."""


async def no_sync() -> None:
    """The sync port of a node without peers (and of single-node tests)."""


async def sync_then_set(request_sync: RequestSync, done: trio.Event) -> None:
    """Run one sync in the background and set ``done`` when it ends, however it ends:
    callers wait on ``done`` with a bound of their own, so a sync stuck on a peer
    across a partition never holds a round or a tally vote."""
    try:
        await request_sync()
    finally:
        done.set()


@dataclass(frozen=True, slots=True)
class ConsensusPorts:
    """Everything consensus reaches outside itself, wired once by the daemon."""

    store: ConsensusStore
    sign_own: SignOwn
    metrics: ConsensusMetrics
    request_sync: RequestSync = no_sync
    fetch_block: FetchBlock | None = None
    put_block: PutBlock | None = None
