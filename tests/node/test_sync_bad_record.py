"""A sync batch with one bad record: only that record is refused (issue 13).

A hand-written sync server (a raw libp2p host on 127.0.0.1) answers a real
node's sync with one ``recs`` frame: a task, its annotations, and one bad
record — a forged signature (refused by sync's decode) or a label outside the
task's schema (refused by admission in a real ``Ingest``, charged through
``on_invalid`` as the daemon wires it). Every other record of the frame is
stored, the server is charged exactly once, and it stays connected, not banned.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio
from libp2p.io.msgio import VarIntLengthMsgReadWriter
from p2p_cluster import make_genesis, wait_until

from node.core.config import Config
from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.daemon import _charge
from node.p2p import P2PNode, serve_p2p
from node.p2p import frames as fr
from node.p2p.host import open_host
from node.store.db import open_store
from protocol import cid as cidlib
from protocol.keys import SigningKey
from protocol.records import Annotation, Record, Task, sign_record

GENESIS = make_genesis("sync-bad-record")
REQUESTER, ANNOTATOR = SigningKey(b"\x21" * 32), SigningKey(b"\x22" * 32)
ITEMS = tuple(cidlib.cid_bytes(b"item %d" % k) for k in range(20))


def _batch(bad: str) -> tuple[list[bytes], int]:
    """A task, 20 annotations, and one bad record; how many records are good."""
    net = GENESIS.network_id
    task = sign_record(net, REQUESTER, 1, Task("t", ("cat", "dog"), ITEMS, 2, 10, 0))
    good = [sign_record(net, ANNOTATOR, s + 1, Annotation(task.cid, it, "cat")).data
            for s, it in enumerate(ITEMS)]
    liar = SigningKey(b"\x23" * 32)
    if bad == "signature":
        d = sign_record(net, liar, 1, Annotation(task.cid, ITEMS[0], "cat")).data
        bad_data = d[:-1] + bytes([d[-1] ^ 1])
    else:
        bad_data = sign_record(net, liar, 1, Annotation(task.cid, ITEMS[0], "owl")).data
    # the bad one sits mid-frame: records after it must still count
    data = [task.data, *good[:10], bad_data, *good[10:]]
    return data, 1 + len(good)


@pytest.mark.parametrize("bad", ["signature", "label_not_in_schema"])
async def test_one_bad_record_in_a_sync_batch_is_refused_alone(tmp_path: Path,
                                                               bad: str) -> None:
    frame, n_good = _batch(bad)
    sessions: list[int] = []

    async def serve_sync(stream: object) -> None:
        rw = VarIntLengthMsgReadWriter(stream, max_msg_size=fr.frame_cap(1 << 20))
        for _ in range(16):  # the client's hello frames (one here: an empty clock)
            if not fr.decode_frame(await rw.read_msg(), 64, 1 << 20).more:  # type: ignore[union-attr]
                break
        sessions.append(1)
        if len(sessions) == 1:  # later sessions: nothing new (a resend would charge again)
            await rw.write_msg(fr.encode_recs(frame))
        await rw.write_msg(fr.encode_done())
        await stream.close()  # type: ignore[attr-defined]

    store = open_store(tmp_path / "victim.db", durable=False)
    metrics = Metrics()
    ingest = Ingest(store, GENESIS, metrics, publish=lambda d: None)

    async def on_records(records: list[Record], peer: str) -> None:
        ingest.accept(records, source=peer)

    try:
        async with trio.open_nursery() as nursery, \
                open_host(SigningKey(b"\x24" * 32), Config.for_tests().p2p) as server:
            for proto in fr.SYNC_PROTOCOLS:
                server.raw.set_stream_handler(proto, serve_sync)
            node: P2PNode = await nursery.start(partial(
                serve_p2p, SigningKey(b"\x25" * 32), GENESIS, Config.for_tests(), store,
                on_records, metrics=metrics))
            # the daemon's wiring (it was partial(penalize, layer=...): a TypeError that
            # ended the daemon on the first never-valid record from sync)
            ingest.on_invalid = partial(_charge, node)
            await node.connect(server.listen_addrs()[0])
            await wait_until(lambda: store.count() >= n_good)
            await node.request_sync(server.peer_id)  # a second session: nothing more
            assert store.count() == n_good  # every good record, after the bad one too
            assert store.clock()[ANNOTATOR.public_key] == len(ITEMS)
            assert node.scores.count(server.peer_id) == 1  # charged for that record only
            assert not node.host.is_banned(server.peer_id)
            assert server.peer_id in node.peers()
            nursery.cancel_scope.cancel()
    finally:
        store.close()
