"""Tests for node.blockstore: persistence, verification both ways, atomic writes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from node.content.blockstore import (
    MAX_BLOCK_SIZE,
    BlockStore,
    BlockTooLargeError,
    CorruptBlockError,
    MissingBlockError,
)
from protocol.cid import DAG_PB, RAW, cid_bytes, cid_from_str, cid_str, cid_to_str
from protocol.errors import BlockMismatchError, CidError

HELLO = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


def _file(store: BlockStore, cid: str) -> Path:
    return store.root / "blocks" / cid[-3:-1] / f"{cid}.data"


def test_put_get_round_trip(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    cid = store.put(b"hello world")
    assert cid == cid_from_str(HELLO)
    assert store.get(cid) == b"hello world"
    assert store.get(HELLO) == b"hello world"
    assert store.has(HELLO) and HELLO in store and cid in store
    assert _file(store, HELLO).read_bytes() == b"hello world"
    assert store.block_size(HELLO) == 11


def test_dag_pb_codec_and_cidv0_lookup(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    cid = store.put(b"node", DAG_PB)
    assert cid == cid_bytes(b"node", DAG_PB)
    assert store.get(cid[2:]) == b"node"  # binary CIDv0 names the same block


def test_missing(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    assert store.get(HELLO) is None
    assert not store.has(HELLO)
    assert store.block_size(HELLO) is None
    assert not store.delete(HELLO)
    with pytest.raises(MissingBlockError, match=HELLO):
        store.get_or_raise(HELLO)


def test_persists_across_instances(tmp_path: Path) -> None:
    cids = {BlockStore(tmp_path).put(bytes([i]) * i) for i in range(20)}
    again = BlockStore(tmp_path)
    assert set(again) == cids
    assert again.count() == 20
    assert again.total_bytes() == sum(range(20))


def test_put_block_verifies(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    assert store.put_block(HELLO, b"hello world") == cid_from_str(HELLO)
    with pytest.raises(BlockMismatchError) as info:
        store.put_block(cid_str(b"a"), b"b")
    assert info.value.cid == cid_str(b"a")
    assert not store.has(cid_str(b"a"))
    with pytest.raises(CidError):
        store.put_block("not-a-cid", b"b")


def test_size_limit(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    big = b"\0" * (MAX_BLOCK_SIZE + 1)
    with pytest.raises(BlockTooLargeError, match="over the limit"):
        store.put(big)
    with pytest.raises(BlockTooLargeError):
        store.put_block(cid_bytes(big), big)
    store.put(big[:-1])  # exactly the limit is fine


def test_corrupt_block_detected_and_moved_aside(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    store.put(b"hello world")
    _file(store, HELLO).write_bytes(b"hello w0rld")
    with pytest.raises(CorruptBlockError) as info:
        store.get(HELLO)
    assert info.value.cid == HELLO
    assert info.value.actual == cid_str(b"hello w0rld")
    assert Path(info.value.moved_to).read_bytes() == b"hello w0rld"
    assert Path(info.value.moved_to).parent == tmp_path / "corrupt"
    # never served again; a good copy can be stored anew
    assert store.get(HELLO) is None
    assert not store.has(HELLO)
    store.put(b"hello world")
    assert store.get(HELLO) == b"hello world"


def test_truncated_block_detected(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    store.put(b"hello world")
    _file(store, HELLO).write_bytes(b"")
    with pytest.raises(CorruptBlockError):
        store.get(HELLO)
    store.put(b"hello world")
    _file(store, HELLO).write_bytes(b"x")
    with pytest.raises(CorruptBlockError) as info:
        store.get(HELLO)
    assert info.value.moved_to.endswith(".1")  # a second quarantined copy, nothing overwritten


def test_atomic_write_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlockStore(tmp_path)

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"hello world")
    monkeypatch.undo()
    assert not store.has(HELLO)
    shard = _file(store, HELLO).parent
    assert list(shard.iterdir()) == []  # the temp file was removed


def test_stale_temp_files_cleaned_and_ignored(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    store.put(b"hello world")
    shard = _file(store, HELLO).parent
    (shard / ".tmp-crashed").write_bytes(b"half a blo")
    assert store.count() == 1
    BlockStore(tmp_path)
    assert not (shard / ".tmp-crashed").exists()


def test_put_is_idempotent_and_delete(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, sync=False)
    a = store.put(b"a")
    assert store.put(b"a") == a
    assert store.count() == 1
    assert store.delete(cid_to_str(a))
    assert store.count() == 0 and store.get(a) is None


def test_concurrent_puts(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for i in range(50):
                store.put(str(i).encode())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count() == 50
    assert all(store.get(c) is not None for c in store)


def test_layout_is_flatfs_next_to_last_2(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    cid = cid_to_str(store.put(b"layout", RAW))
    assert (tmp_path / "blocks" / cid[-3:-1] / f"{cid}.data").is_file()


def test_errors_are_node_errors() -> None:
    from node.errors import NodeError

    assert issubclass(CorruptBlockError, NodeError)
    assert issubclass(BlockTooLargeError, NodeError)
    assert issubclass(MissingBlockError, NodeError)
