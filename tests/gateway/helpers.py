"""Shared by the gateway tests: a real node store and ingest with a task of PNG items,
and a gateway serving it on 127.0.0.1."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from node.content.files import add_bytes
from node.core.home import NodeHome, init_home
from node.core.local import Node, open_node
from node.gateway.adapter import NodeGateway, NodeParts
from node.gateway.config import GatewayConfig
from node.gateway.media import netpbm_to_png
from node.gateway.server import serve_gateway
from protocol.cid import cid_from_str
from protocol.keys import SigningKey
from protocol.records import Annotation, Record, Task, sign_record


def png_items(n: int, seed: int = 7) -> list[bytes]:
    """``n`` distinct 16x16 grayscale PNGs (made from PGMs by the gateway's converter)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        pixels = bytes(rng.randrange(256) for _ in range(256))
        out.append(netpbm_to_png(b"P5\n16 16\n255\n" + pixels[:-1] + bytes([i % 256])))
    return out


@dataclass
class Fixture:
    node: Node
    gateway: NodeGateway
    task: Record
    items: list[str]
    requester: SigningKey


def open_fixture(root: Path, n_items: int = 6, redundancy: int = 2) -> Fixture:
    home = root / "node"
    init_home(home)
    node = open_node(NodeHome(home))
    items = [add_bytes(node.blocks, png) for png in png_items(n_items)]
    requester = SigningKey(bytes(range(1, 33)))
    body = Task(title="Bright or dark", labels=("bright", "dark"),
                items=tuple(cid_from_str(i) for i in items), redundancy=redundancy,
                reward_per_item=1000, validator_share_bps=1000)
    task = sign_record(node.genesis.network_id, requester, 1, body)
    node.ingest.submit(task.data)
    gw = NodeGateway(NodeParts(node.store, node.ingest, node.genesis, node.blocks,
                               node.peer_id, lambda: []))
    return Fixture(node, gw, task, items, requester)


def annotation(fx: Fixture, key: SigningKey, seq: int, item: str, label: str) -> Record:
    return sign_record(fx.node.genesis.network_id, key, seq,
                       Annotation(task=fx.task.cid, item=cid_from_str(item), label=label))


@asynccontextmanager
async def serving(fx: Fixture, config: GatewayConfig | None = None) -> AsyncIterator[str]:
    """The gateway over ``fx`` on a free 127.0.0.1 port; yields its URL."""
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_gateway, fx.gateway,
                                          config or GatewayConfig.for_tests()))
        yield url
        nursery.cancel_scope.cancel()
