"""Shared helpers for the p2p tests: genesis, signed records, and a cluster of real nodes.

    async with open_cluster(tmp_path, 3) as c:      # three nodes on 127.0.0.1:0
        await c.connect(1, 0)
        c.nodes[0].publish_nowait(...)
        await wait_until(lambda: c.stores[1].count() == n)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import trio

from node.core.config import Config, GossipConfig
from node.p2p import P2PNode, serve_p2p
from node.store.db import Store, open_store
from protocol import cid as cidlib
from protocol.genesis import Genesis, Validator
from protocol.keys import Signer, SigningKey
from protocol.records import Annotation, Record, sign_record

TASK = cidlib.cid_bytes(b"task")


def key(i: int) -> SigningKey:
    return SigningKey(bytes([i + 1]) * 32)


def make_genesis(name: str = "p2p-test") -> Genesis:
    return Genesis(name=name, validators=(Validator(key(0).peer_id, 1),))


def make_records(genesis: Genesis, author: SigningKey, seqs: range | list[int],
                 label: str = "cat") -> list[Record]:
    signer = Signer(author)
    return [sign_record(genesis.network_id, signer, s,
                        Annotation(TASK, cidlib.cid_bytes(b"item%d" % s), label))
            for s in seqs]


def p2p_config(**gossip: Any) -> Config:
    c = Config.for_tests()
    return replace(c, gossip=replace(GossipConfig(), **gossip)) if gossip else c


@dataclass
class Cluster:
    nursery: trio.Nursery
    tmp: Path
    genesis: Genesis
    config: Config
    nodes: list[P2PNode] = field(default_factory=list)
    stores: list[Store] = field(default_factory=list)
    received: list[list[str]] = field(default_factory=list)  # from_peer per batch

    async def add(self, i: int, genesis: Genesis | None = None,
                  config: Config | None = None) -> P2PNode:
        store = open_store(self.tmp / f"node{i}.db")
        got: list[str] = []

        async def on_records(records: list[Record], peer: str) -> None:
            store.save_records(records)
            got.append(peer)

        node: P2PNode = await self.nursery.start(partial(
            serve_p2p, key(i), genesis or self.genesis, config or self.config, store,
            on_records))
        self.nodes.append(node)
        self.stores.append(store)
        self.received.append(got)
        return node

    async def connect(self, a: int, b: int) -> None:
        await self.nodes[a].connect(self.nodes[b].listen_addrs()[0])


@asynccontextmanager
async def open_cluster(tmp: Path, n: int, config: Config | None = None,
                       genesis: Genesis | None = None) -> AsyncIterator[Cluster]:
    tmp.mkdir(parents=True, exist_ok=True)
    stores: list[Store] = []
    try:
        async with trio.open_nursery() as nursery:
            c = Cluster(nursery, tmp, genesis or make_genesis(), config or p2p_config())
            stores = c.stores
            for i in range(n):
                await c.add(i)
            yield c
            nursery.cancel_scope.cancel()
    finally:
        for s in stores:
            s.close()


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0,
                     step: float = 0.02) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(step)
