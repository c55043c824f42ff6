"""Reproducers for three py-libp2p 0.8.1 pubsub bugs (docs/upstream/py-libp2p.md).

Run: ``.venv/bin/python tests/upstream/repro_pylibp2p_pubsub.py [decode|interleave|spr]``.
Stock py-libp2p only (no annot code), two hosts on 127.0.0.1. Exit code 1 and
"REPRODUCED" when the bug shows; 0 when it does not (e.g. fixed upstream).

decode      one 7-byte malformed RPC on /meshsub/1.1.0: ``DecodeError`` escapes
            ``Pubsub.stream_handler`` and ends the nursery the host runs in.
interleave  two concurrent ``Pubsub.write_msg`` calls of 140 KB RPCs on one
            stream (what gossipsub's ``send_recent_messages`` does beside the
            per-peer queue writer): the reader sees foreign bytes in a frame.
spr         50 gossipsub publishes to one subscribed peer: the host's signed
            peer record is looked up again (``host.get_addrs()``) for each.
"""

from __future__ import annotations

import sys

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.floodsub import FloodSub
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils import read_varint_prefixed_bytes

LISTEN = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


def _host(seed: int) -> object:
    return new_host(key_pair=create_new_key_pair(bytes([seed]) * 32), listen_addrs=[LISTEN])


async def decode() -> bool:
    victim, attacker = _host(1), _host(2)
    try:
        async with victim.run([LISTEN]), attacker.run([LISTEN]):
            ps = Pubsub(victim, FloodSub(["/meshsub/1.1.0"]))
            async with background_trio_service(ps):
                await ps.wait_until_ready()
                await attacker.connect(info_from_p2p_addr(victim.get_addrs()[0]))
                s = await attacker.new_stream(victim.get_id(), ["/meshsub/1.1.0"])
                await s.write(b"\x06\x0a\xff\xff\xff\xff\xff")
                await trio.sleep(2)
                ps.seen_messages.stop()
    except BaseException as exc:  # an ExceptionGroup holding the DecodeError
        text = repr(exc)
        if "DecodeError" in text or "Error parsing message" in text:
            return True
        raise
    return False


async def interleave() -> bool:
    a, b = _host(3), _host(4)
    frames: list[bytes] = []
    got = trio.Event()

    async def reader(stream: object) -> None:
        try:
            while len(frames) < 12:
                frames.append(await read_varint_prefixed_bytes(stream))
        except Exception:
            frames.append(b"<stream broke: bad varint>")
        finally:
            got.set()

    async with a.run([LISTEN]), b.run([LISTEN]):
        b.set_stream_handler("/repro/1.0.0", reader)
        ps = Pubsub(a, FloodSub(["/meshsub/1.1.0"]))
        async with background_trio_service(ps):
            await a.connect(info_from_p2p_addr(b.get_addrs()[0]))
            stream = await a.new_stream(b.get_id(), ["/repro/1.0.0"])

            async def writer(tag: int) -> None:
                for _ in range(6):
                    msg = rpc_pb2.Message(data=bytes([tag]) * 140_000, seqno=bytes(8))
                    await ps.write_msg(stream, rpc_pb2.RPC(publish=[msg]))

            async with trio.open_nursery() as n:
                n.start_soon(writer, 0xAA)
                n.start_soon(writer, 0xBB)
            with trio.move_on_after(10):
                await got.wait()
            ps.seen_messages.stop()
    for f in frames:
        try:
            rpc = rpc_pb2.RPC()
            rpc.ParseFromString(f)
            if len(set(rpc.publish[0].data)) != 1:
                return True
        except Exception:
            return True
    return False


async def spr() -> bool:
    a, b = _host(5), _host(6)
    calls = 0
    get_addrs = a.get_addrs

    def counted() -> list[multiaddr.Multiaddr]:
        nonlocal calls
        calls += 1
        return list(get_addrs())

    async with a.run([LISTEN]), b.run([LISTEN]):
        pa = Pubsub(a, GossipSub([PROTOCOL_ID_V11], degree=1, degree_low=1, degree_high=2,
                                 spam_protection_enabled=False))
        pb = Pubsub(b, GossipSub([PROTOCOL_ID_V11], degree=1, degree_low=1, degree_high=2,
                                 spam_protection_enabled=False))
        async with background_trio_service(pa), background_trio_service(pa.router), \
                background_trio_service(pb), background_trio_service(pb.router):
            await pa.wait_until_ready()
            await pb.wait_until_ready()
            await pb.subscribe("repro")
            await a.connect(info_from_p2p_addr(b.get_addrs()[0]))
            with trio.move_on_after(10):
                while "repro" not in pa.peer_topics or not pa.peer_topics["repro"]:
                    await trio.sleep(0.05)
            a.get_addrs = counted  # type: ignore[method-assign]
            for k in range(50):
                await pa.publish("repro", b"message %d" % k)
            pa.seen_messages.stop()
            pb.seen_messages.stop()
    print(f"spr: host.get_addrs() called {calls} times for 50 publishes")
    return calls >= 50


def main() -> int:
    which = sys.argv[1:] or ["decode", "interleave", "spr"]
    found = False
    for name in which:
        hit = trio.run({"decode": decode, "interleave": interleave, "spr": spr}[name])
        print(f"{name}: {'REPRODUCED' if hit else 'not reproduced'}")
        found = found or hit
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
