"""Issue 15: a folder's blocks are written in durable batches, not two fsyncs per block.

Creating a 10,000-file folder task took 305 s, nearly all of it in one fsync of
each block file and one of its shard directory. ``BlockStore.put_blocks`` writes a
whole batch with two syncs (bytes, then names) and keeps the old guarantee: after a
``kill -9`` a block is on disk whole or not at all. ``BlockGroup`` gathers the
``block.put`` calls of one JSON-RPC batch into one such write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

import node.content.blockstore as bsmod
from node.content.block_group import BlockGroup
from node.content.blockstore import MAX_BLOCK_SIZE, BlockStore, BlockTooLargeError
from protocol.cid import DAG_PB, RAW, cid_bytes
from protocol.errors import BlockMismatchError


def _blocks(n: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        data = f"block {seed}:{i}".encode() * 3
        out.append((cid_bytes(data), data))
    return out


def _counting(fn: Callable[[int], int], calls: list[int]) -> Callable[[int], int]:
    def wrapped(fd: int) -> int:
        calls.append(fd)
        return fn(fd)
    return wrapped


def test_a_batch_is_stored_verified_with_two_syncs(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    if bsmod._SYNCFS is None:
        pytest.skip("no syncfs(2) here: the fallback is tested below")
    calls: list[int] = []
    monkeypatch.setattr(bsmod, "_SYNCFS", _counting(bsmod._SYNCFS, calls))
    store = BlockStore(tmp_path)
    batch = _blocks(200)
    got = store.put_blocks(batch + batch[:5])  # repeats are stored once
    assert got == [c for c, _ in batch + batch[:5]]
    assert len(calls) == 2  # not 2 x 200
    assert store.count() == 200
    assert all(store.get(c) == d for c, d in batch)
    assert not list(tmp_path.rglob(".tmp-*"))
    calls.clear()
    assert store.put_blocks(batch[:10]) == [c for c, _ in batch[:10]]  # all there already
    assert calls == []
    data = b"\x12\x00"  # put_many: CIDs from (data, codec)
    assert store.put_many([(data, DAG_PB), (b"x", RAW)]) == [cid_bytes(data, DAG_PB),
                                                             cid_bytes(b"x")]


def test_without_syncfs_each_file_and_shard_is_fsynced(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bsmod, "_SYNCFS", None)
    fsyncs: list[int] = []
    real = os.fsync
    monkeypatch.setattr(bsmod.os, "fsync", lambda fd: (fsyncs.append(fd), real(fd))[1])
    store = BlockStore(tmp_path)
    batch = _blocks(50, seed=1)
    store.put_blocks(batch)
    shards = {p.parent for p in tmp_path.rglob("*.data")}
    assert len(fsyncs) == 50 + len(shards)
    assert all(store.get(c) == d for c, d in batch)


def test_one_bad_block_stores_nothing_of_its_batch(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    batch = _blocks(10, seed=2)
    lying = (batch[0][0], b"not the bytes of that CID")
    with pytest.raises(BlockMismatchError):
        store.put_blocks([*batch[1:], lying])
    with pytest.raises(BlockTooLargeError):
        store.put_blocks([*batch[1:], (cid_bytes(b"x" * (MAX_BLOCK_SIZE + 1)),
                                       b"x" * (MAX_BLOCK_SIZE + 1))])
    assert store.count() == 0


_WRITER = textwrap.dedent("""
    import sys
    from node.content.blockstore import BlockStore
    from protocol.cid import cid_bytes
    store = BlockStore(sys.argv[1])
    n = 0
    while True:
        batch = []
        for _ in range(50):
            data = (b"%d " % n) * 2000
            batch.append((cid_bytes(data), data))
            n += 1
        store.put_blocks(batch)
        print(n, flush=True)
""")


def test_a_kill_mid_batch_leaves_whole_blocks_or_none(tmp_path: Path) -> None:
    root = tmp_path / "blocks"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)],
                            stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        assert proc.stdout is not None
        for _ in range(5):  # a few batches in: then mid-write, wherever it is
            assert proc.stdout.readline(), "the writer died"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    store = BlockStore(root)  # reopening removes stale temp files
    assert not list(root.rglob(".tmp-*"))
    cids = list(store.iter_cids())
    assert len(cids) >= 250
    assert all(store.get(c) is not None for c in cids)  # every one verifies whole


async def test_concurrent_puts_share_one_write(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    group = BlockGroup(store, max_group=64)
    datas = [f"item {i}".encode() for i in range(100)]
    got: dict[int, bytes] = {}
    errors: list[Exception] = []

    async def put(i: int, data: bytes) -> None:
        try:
            got[i] = await group.put(data)
        except BlockTooLargeError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for i, d in enumerate(datas):
            nursery.start_soon(put, i, d)
        nursery.start_soon(put, -1, b"x" * (MAX_BLOCK_SIZE + 1))  # refused alone
    assert [got[i] for i in range(100)] == [cid_bytes(d) for d in datas]
    assert len(errors) == 1 and -1 not in got
    assert group.groups == 2  # 100 puts past a cap of 64: two writes, not 100
    assert all(store.get(cid_bytes(d)) == d for d in datas)
