"""A consensus network in one process: real stores, ingest, signatures and services.

Each :class:`InNode` has its own in-memory SQLite store, an :class:`Ingest` with
admission control, and a :class:`ConsensusService` whose ``sign_own`` port signs
a record, saves it through ingest and delivers it to every other node's ingest
(as gossip would, from this node's peer id) unless the link is cut. Time is
trio's (tests run with ``autojump_clock``), so round timeouts happen at exact
virtual times.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from node.consensus.ports import ConsensusPorts, no_sync
from node.consensus.service import ConsensusService
from node.core.config import ConsensusConfig
from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.store.db import Store, open_store
from protocol import cid as cidlib
from protocol.genesis import Genesis, Params, Validator
from protocol.keys import Signer, SigningKey
from protocol.records import Annotation, Body, Record, Task, decode_record, sign_record

REQUESTER = SigningKey(b"\x51" * 32)
ANNOTATORS = [SigningKey(bytes([0x60 + j]) * 32) for j in range(8)]
LABELS = ("cat", "dog")


def make_genesis(n: int = 4, **params: int) -> tuple[Genesis, list[SigningKey]]:
    keys = [SigningKey(bytes([0x20 + i]) * 32) for i in range(n)]
    g = Genesis(name="inproc", validators=tuple(Validator(k.peer_id, 1) for k in keys),
                params=Params(**params))
    return g, keys


def items_of(n: int, tag: str = "item") -> tuple[bytes, ...]:
    return tuple(cidlib.cid_bytes(f"{tag} {k}".encode()) for k in range(n))


def task_record(g: Genesis, items: tuple[bytes, ...], seq: int = 1, **kw: object) -> Record:
    body = Task(title="t", labels=LABELS, items=items, redundancy=kw.pop("redundancy", 2),  # type: ignore[arg-type]
                reward_per_item=100, validator_share_bps=1000, **kw)  # type: ignore[arg-type]
    return sign_record(g.network_id, REQUESTER, seq, body)


def annotation(g: Genesis, key: SigningKey, seq: int, task: bytes, item: bytes,
               label: str) -> Record:
    return sign_record(g.network_id, key, seq, Annotation(task, item, label))


@dataclass
class InNode:
    key: SigningKey
    store: Store
    ingest: Ingest
    service: ConsensusService
    metrics: Metrics
    signed: list[tuple[float, Record]] = field(default_factory=list)  # (trio time, record)

    @property
    def peer_id(self) -> str:
        return self.key.peer_id


class Net:
    """``n`` nodes (all validators unless ``observers``), fully connected unless cut."""

    def __init__(self, g: Genesis, keys: list[SigningKey],
                 request_sync: Callable[[int], Callable[[], Awaitable[None]]] | None = None,
                 durable: bool = False, tmp: Path | None = None, sync: bool = False
                 ) -> None:
        if sync:
            request_sync = self._puller
        self.g = g
        self.cut: set[int] = set()  # nodes whose links are down (both ways)
        self.nodes: list[InNode] = []
        for i, k in enumerate(keys):
            path = tmp / f"n{i}.db" if tmp is not None else Path(":memory:")
            store = open_store(path, durable=durable)
            metrics = Metrics()
            ingest = Ingest(store, g, metrics, publish=lambda data: None)
            ports = ConsensusPorts(store=store, sign_own=self._signer(i), metrics=metrics,
                                   request_sync=(request_sync(i) if request_sync else no_sync))
            service = ConsensusService(g, Signer(k).public_key, ports,
                                       ConsensusConfig(vote_batch_delay_ms=10,
                                                       tally_settle_s=0.1),
                                       wall_clock=lambda: 1_000_000.0)
            ingest.subscribe(service.records_nowait)
            self.nodes.append(InNode(k, store, ingest, service, metrics))

    def _puller(self, i: int) -> Callable[[], Awaitable[None]]:
        async def request_sync() -> None:
            self.pull(i)
            await trio.sleep(0.05)
        return request_sync

    def pull(self, i: int) -> int:
        """The sync protocol's semantics in-process: node ``i`` pulls, from each
        reachable peer, every record above its own contiguous seq per author
        (:meth:`Store.records_after`, as the sync server answers)."""
        me, got = self.nodes[i], 0
        for j, peer in enumerate(self.nodes):
            if j == i or {i, j} & self.cut:
                continue
            for author in peer.store.clock():
                rows = peer.store.records_after(author, me.store.clock_of(author), 512)
                recs = [r for r in (decode_record(d, self.g.network_id) for d in rows)
                        if not me.store.has(r.cid)]
                if recs:
                    me.ingest.accept(recs, source=peer.peer_id)
                    got += len(recs)
        return got

    def _signer(self, i: int) -> Callable[[Body], Record]:
        def sign_own(body: Body) -> Record:
            node = self.nodes[i]
            seq = node.store.reserve_seq(Signer(node.key).public_key)
            rec = sign_record(self.g.network_id, node.key, seq, body)
            node.ingest.accept([rec], source="self")
            node.signed.append((trio.current_time(), rec))
            self.deliver(i, [rec])
            return rec
        return sign_own

    def deliver(self, sender: int, records: list[Record]) -> None:
        """Gossip ``records`` from node ``sender`` to every node it can reach."""
        for j, other in enumerate(self.nodes):
            if j != sender and not ({j, sender} & self.cut):
                other.ingest.accept(records, source=self.nodes[sender].peer_id)

    def submit(self, i: int, records: list[Record]) -> None:
        """A client hands ``records`` to node ``i`` only (no gossip)."""
        self.nodes[i].ingest.accept(records, source="rpc")

    def broadcast(self, records: list[Record]) -> None:
        for n in self.nodes:
            n.ingest.accept(records, source="rpc")

    async def start(self, nursery: trio.Nursery, only: tuple[int, ...] | None = None) -> None:
        for i, n in enumerate(self.nodes):
            if only is None or i in only:
                await nursery.start(n.service.serve)

    def final(self, i: int, task: bytes, items: tuple[bytes, ...]) -> dict[bytes, str | None]:
        out: dict[bytes, str | None] = {}
        for it in items:
            c = self.nodes[i].store.certificate(task, it)
            out[it] = c[0] if c else None
        return out
