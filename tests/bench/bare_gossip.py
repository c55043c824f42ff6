"""One process of the bare-gossipsub baseline: py-libp2p gossipsub, one message per record.

Same host (Noise, Yamux, the node's ``build_raw_host``), same GossipSub and
Pubsub settings as ``node.p2p.gossip`` (degree 6/4/12, heartbeat, no adaptive
gossip, no spam cap, strict signing), same backpressure on the publisher — but
no validator, no batching, no store. Run by :mod:`tests.bench.gossip`::

    python -m tests.bench.bare_gossip --seed 1 --port P --peers ADDR,... --role sub --out F
    python -m tests.bench.bare_gossip --seed 0 --port P --role pub --count N --rate R \
        --ready F1,F2,F3 --out F

Times are ``time.monotonic()`` (CLOCK_MONOTONIC: one clock for every process on
the machine). The publisher writes ``{"sent": [t, ...]}``, a subscriber
``{"recv": [[index, t], ...]}``.
"""

from __future__ import annotations

import argparse
import json
import struct
import time
from pathlib import Path
from typing import Any

import trio
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from node.core.config import GossipConfig, P2PConfig
from node.p2p.frames import RPC_CAP
from node.p2p.gossip import OUTBOUND_HIGH_WATER, OUTBOUND_WAIT_S
from node.p2p.host import open_host
from protocol.keys import SigningKey

TOPIC = "/annot-bench/bare/1"


def key_of(seed: int) -> SigningKey:
    return SigningKey(bytes([200 + seed]) * 32)


async def _wait_for_room(ps: Any) -> None:
    deadline = trio.current_time() + OUTBOUND_WAIT_S
    while trio.current_time() < deadline and any(
            len(q) >= OUTBOUND_HIGH_WATER for q in ps.peer_queues.values()):
        await trio.sleep(0.001)


async def main(a: argparse.Namespace) -> None:
    cfg = GossipConfig()
    p2p = P2PConfig(listen=(f"/ip4/127.0.0.1/tcp/{a.port}",))
    async with open_host(key_of(a.seed), p2p) as host:
        router = GossipSub(
            protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=6, degree_low=4, degree_high=12,
            heartbeat_interval=cfg.heartbeat_s,  # type: ignore[arg-type]
            heartbeat_initial_delay=min(cfg.heartbeat_s, 0.5),
            adaptive_gossip_enabled=False, spam_protection_enabled=False)
        ps = Pubsub(host.raw, router, strict_signing=True, max_inbound_rpc_size=RPC_CAP)
        async with background_trio_service(ps), background_trio_service(router):
            await ps.wait_until_ready()
            sub = await ps.subscribe(TOPIC)
            for addr in filter(None, a.peers.split(",")):
                await _connect(host, addr)
            if a.role == "sub":
                await _subscriber(a, sub, host.peer_id)
            else:
                await _publisher(a, ps)
            ps.seen_messages.stop()


async def _connect(host: Any, addr: str) -> None:
    with trio.fail_after(30):
        while True:
            try:
                await host.connect(addr)
                return
            except Exception:
                await trio.sleep(0.2)


async def _subscriber(a: argparse.Namespace, sub: Any, me: str) -> None:
    recv: list[tuple[int, float]] = []
    Path(a.out + ".ready").write_text("ready")
    first_deadline = trio.current_time() + a.max_s
    while len(recv) < a.count:
        # stop once the stream has been idle for a while (lost messages never come)
        wait = a.idle_s if recv else max(0.1, first_deadline - trio.current_time())
        with trio.move_on_after(wait) as idle:
            msg = await sub.get()
        if idle.cancelled_caught:
            break
        if str(msg.from_id) == me:
            continue
        recv.append((struct.unpack_from(">I", msg.data)[0], time.monotonic()))
    Path(a.out).write_text(json.dumps({"recv": recv}))


async def _publisher(a: argparse.Namespace, ps: Any) -> None:
    ready = [Path(p) for p in filter(None, a.ready.split(","))]
    with trio.fail_after(30):
        while not all(p.exists() for p in ready) or len(ps.peer_topics.get(TOPIC, ())) < len(
                ready):
            await trio.sleep(0.05)
    await trio.sleep(1.0)  # a heartbeat: let the mesh form
    pad = b"\xab" * (a.size - 4)
    sent: list[float] = []
    t0 = trio.current_time()
    stop = t0 + a.publish_s
    for i in range(a.count):
        if trio.current_time() > stop:
            break  # bounded: a slow baseline is reported from what it sent
        if a.rate:
            due = t0 + i / a.rate
            if due > trio.current_time():
                await trio.sleep_until(due)
        await _wait_for_room(ps)
        sent.append(time.monotonic())
        await ps.publish(TOPIC, struct.pack(">I", i) + pad)
    Path(a.out).write_text(json.dumps({"sent": sent}))
    await trio.sleep(a.idle_s)  # keep the connections while the last messages drain


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--peers", default="")
    ap.add_argument("--role", choices=("pub", "sub"), required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=0.0, help="messages/s; 0 = as fast as possible")
    ap.add_argument("--size", type=int, default=300)
    ap.add_argument("--ready", default="")
    ap.add_argument("--idle-s", type=float, default=3.0)
    ap.add_argument("--max-s", type=float, default=120.0)
    ap.add_argument("--publish-s", type=float, default=20.0, help="stop publishing after this")
    ap.add_argument("--out", required=True)
    trio.run(main, ap.parse_args())
