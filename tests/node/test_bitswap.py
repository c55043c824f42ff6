"""Bitswap between annot nodes, and against a spec-following "IPFS-style" peer.

The raw peers here speak bitswap with py-libp2p's generated protobuf and no
annot code on the answering path, the way Kubo and Helia do: requests go out
on a stream the requester opens, answers come back on a stream the responder
opens.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetStream
from libp2p.bitswap import BitswapClient
from libp2p.bitswap.pb.bitswap_pb2 import Message
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX
from libp2p.stream_muxer.yamux.yamux import Yamux
from multiaddr import Multiaddr

from node.content.bitswap import BitswapService, BitswapTimeoutError
from node.content.bitswap_msg import (
    PROTOCOL_V100,
    PROTOCOL_V110,
    PROTOCOL_V120,
    BitswapMessage,
    Block,
    BlockPresence,
    FrameDecoder,
    MessageError,
    Presence,
    cid_from_prefix,
    decode_message,
    encode_frame,
    encode_message,
    encode_prefix,
)
from node.content.blockstore import BlockStore
from protocol.cid import cid_bytes, cid_to_str


@asynccontextmanager
async def _open_host() -> AsyncIterator[IHost]:
    """A py-libp2p host on 127.0.0.1, Noise + Yamux only."""
    kp = create_new_key_pair()
    host = new_host(
        key_pair=kp,
        sec_opt={NOISE: NoiseTransport(kp, create_x25519_key_pair().private_key)},
        muxer_opt={TProtocol(YAMUX): Yamux},
    )
    async with host.run(listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        yield host


async def _connect(a: IHost, b: IHost) -> None:
    await a.connect(PeerInfo(b.get_id(), b.get_addrs()))


@dataclass
class _Node:
    host: IHost
    store: BlockStore
    bitswap: BitswapService


@asynccontextmanager
async def _open_node(root: Path) -> AsyncIterator[_Node]:
    async with _open_host() as host, trio.open_nursery() as nursery:
        store = BlockStore(root, sync=False)
        service = BitswapService(host, store)
        await nursery.start(service.serve)
        yield _Node(host, store, service)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[_Node, _Node]]:
    async with _open_node(tmp_path / "a") as a, _open_node(tmp_path / "b") as b:
        await _connect(a.host, b.host)
        yield a, b


async def _read_message(stream: INetStream, decoder: FrameDecoder) -> BitswapMessage | None:
    while True:
        try:
            data = await stream.read(1 << 16)
        except Exception:  # EOF or reset: the stream is over
            return None
        if not data:
            return None
        frames = decoder.feed(data)
        if frames:
            assert len(frames) == 1, "test peers expect one message per read"
            return decode_message(frames[0])


def _want_frame(cids: list[bytes], want_have: bool = False) -> bytes:
    msg = Message()
    for cid in cids:
        msg.wantlist.entries.add(block=cid, priority=1, wantType=int(want_have), sendDontHave=True)
    return encode_frame(msg.SerializeToString())


async def test_fetch_200_blocks_in_one_batch(pair: tuple[_Node, _Node]) -> None:
    a, b = pair
    cids = [b.store.put(os.urandom(100 * 1024)) for _ in range(200)]
    with trio.fail_after(10):
        start = time.perf_counter()
        got = await a.bitswap.get_blocks(cids, timeout=10)
        elapsed = time.perf_counter() - start
    print(f"\nbitswap: 200 x 100 KiB in {elapsed:.3f} s")
    assert set(got) == set(cids)
    assert all(a.store.get(c) == got[c] for c in cids)
    assert a.bitswap.penalties(b.host.get_id()) == 0


async def test_answers_arrive_on_a_stream_the_server_opens(tmp_path: Path) -> None:
    """What Kubo and Helia need: blocks on a NEW stream, nothing on the request stream."""
    async with _open_node(tmp_path / "server") as server, _open_host() as client:
        blocks = [os.urandom(5000) for _ in range(3)]
        cids = [server.store.put(data) for data in blocks]
        inbound_send, inbound = trio.open_memory_channel[INetStream](4)

        async def on_stream(stream: INetStream) -> None:
            await inbound_send.send(stream)
            await trio.sleep_forever()  # the test reads it; keep the handler alive

        client.set_stream_handler(PROTOCOL_V120, on_stream)
        await _connect(client, server.host)
        with trio.fail_after(5):
            request = await client.new_stream(server.host.get_id(), [PROTOCOL_V120])
            await request.write(_want_frame(cids))
            answer = await inbound.receive()
            assert answer is not request
            assert answer.muxed_conn.peer_id == server.host.get_id()
            got: dict[bytes, bytes] = {}
            decoder = FrameDecoder()
            while len(got) < len(cids):
                msg = await _read_message(answer, decoder)
                assert msg is not None
                got.update((blk.cid, blk.data) for blk in msg.blocks)
            assert got == dict(zip(cids, blocks, strict=True))
            await request.close()  # our half; the server then closes its half
            assert await _read_message(request, FrameDecoder()) is None


async def test_corrupt_block_is_rejected_and_not_stored(tmp_path: Path) -> None:
    async with _open_node(tmp_path / "a") as a, _open_host() as liar:
        good = b"the real block"
        cid = cid_bytes(good)

        async def lie(stream: INetStream) -> None:
            msg = await _read_message(stream, FrameDecoder())
            assert msg is not None and msg.wants
            reply = Message()
            for want in msg.wants:
                reply.payload.add(prefix=encode_prefix(want.cid), data=b"not the block")
            out = await liar.new_stream(stream.muxed_conn.peer_id, [PROTOCOL_V120])
            await out.write(encode_frame(reply.SerializeToString()))
            await trio.sleep_forever()

        liar.set_stream_handler(PROTOCOL_V120, lie)
        await _connect(a.host, liar)
        with trio.fail_after(5), pytest.raises(BitswapTimeoutError) as info:
            await a.bitswap.get_blocks([cid], peers=[liar.get_id()], timeout=1.0)
        assert info.value.missing == [cid]
        assert not a.store.has(cid)
        assert a.bitswap.penalties(liar.get_id()) == 1


async def test_want_have_gets_have_and_dont_have(tmp_path: Path) -> None:
    async with _open_node(tmp_path / "server") as server, _open_host() as client:
        present = server.store.put(b"present")
        absent = cid_bytes(b"absent")
        inbound_send, inbound = trio.open_memory_channel[INetStream](4)

        async def on_stream(stream: INetStream) -> None:
            await inbound_send.send(stream)
            await trio.sleep_forever()

        client.set_stream_handler(PROTOCOL_V120, on_stream)
        await _connect(client, server.host)
        with trio.fail_after(5):
            request = await client.new_stream(server.host.get_id(), [PROTOCOL_V120])
            await request.write(_want_frame([present, absent], want_have=True))
            msg = await _read_message(await inbound.receive(), FrameDecoder())
        assert msg is not None
        assert not msg.blocks  # want-have asks only whether the server has it
        assert {(p.cid, p.presence.name) for p in msg.presences} == {
            (present, "HAVE"),
            (absent, "DONT_HAVE"),
        }


async def test_timeout_names_the_missing_blocks(pair: tuple[_Node, _Node]) -> None:
    a, b = pair
    held = [b.store.put(f"block {i}".encode()) for i in range(2)]
    lost = cid_bytes(b"nobody has this")
    with trio.fail_after(5), pytest.raises(BitswapTimeoutError) as info:
        await a.bitswap.get_blocks([*held, lost], timeout=0.5)
    assert info.value.missing == [lost]
    assert cid_to_str(lost) in str(info.value)
    assert "1 of 3" in str(info.value) and "DONT_HAVE" in str(info.value)
    assert all(a.store.has(c) for c in held)  # what did arrive is kept


async def test_fetches_from_stock_py_libp2p_too(tmp_path: Path) -> None:
    """Stock py-libp2p 0.8.1 answers on our request stream; we read that leniently."""
    async with (
        _open_node(tmp_path / "a") as a,
        _open_host() as stock_host,
        trio.open_nursery() as nursery,
    ):
        stock = BitswapClient(stock_host)
        await stock.start()
        stock.set_nursery(nursery)
        blocks = {cid_bytes(data): data for data in (os.urandom(2000) for _ in range(5))}
        for cid, data in blocks.items():
            await stock.add_block(cid, data)
        await _connect(a.host, stock_host)
        with trio.fail_after(5):
            assert await a.bitswap.get_blocks(list(blocks), timeout=4) == blocks
        nursery.cancel_scope.cancel()


def test_prefix_round_trip() -> None:
    data = b"hello world"
    cid = cid_bytes(data)
    assert encode_prefix(cid) == bytes((1, 0x55, 0x12, 0x20))
    assert cid_from_prefix(encode_prefix(cid), data) == cid
    assert cid_to_str(cid) == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def test_older_protocols_get_what_they_understand() -> None:
    data = b"a dag-pb-ish block"
    v0 = bytes((0x12, 0x20)) + cid_bytes(data)[4:]  # CIDv0 multihash of the same digest
    msg = BitswapMessage(
        blocks=(Block(v0, data),), presences=(BlockPresence(v0, Presence.DONT_HAVE),)
    )
    old = decode_message(encode_message(msg, PROTOCOL_V100))
    assert old.blocks == (Block(v0, data),) and not old.presences  # bare data, CIDv0 implied
    mid = decode_message(encode_message(msg, PROTOCOL_V110))
    assert mid.blocks == (Block(v0, data),) and not mid.presences  # prefix 0/0x70/0x12/32
    assert decode_message(encode_message(msg, PROTOCOL_V120)).presences == msg.presences


def test_frames_over_the_limit_are_refused_from_the_prefix() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"x")[:1]) == []
    assert decoder.feed(b"x") == [b"x"]
    with pytest.raises(MessageError, match="over the limit"):
        decoder.feed(bytes((0x81, 0x80, 0x80, 0x02)))  # 4 MiB + 1, no body needed
