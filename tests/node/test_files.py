"""Tests for node.files: add a file to the block store and cat it back."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from node.content.blockstore import BlockStore, CorruptBlockError, MissingBlockError
from node.content.files import add_bytes, add_file, cat, cat_bytes
from protocol.cid import cid_from_str
from protocol.unixfs import CHUNK_SIZE

CYCLE = bytes((i * 31 + 7) % 251 for i in range(251))
# 3,158,073 bytes from the shared UnixFS vectors: 13 chunks, one dag-pb root
SIZE = 3_158_073
ROOT = "bafybeibxu56uk4xfhmsl6d6iw4zvyt36v233qw3eekad6hl3ct4eegw65y"


def _data(size: int) -> bytes:
    return (CYCLE * (size // 251 + 1))[:size]


def test_add_path_and_cat(tmp_path: Path) -> None:
    data = _data(SIZE)
    path = tmp_path / "item.bin"
    path.write_bytes(data)
    store = BlockStore(tmp_path / "store")
    assert add_file(store, path) == ROOT
    assert store.count() == 14
    assert cat_bytes(store.get, ROOT) == data
    assert sum(len(p) for p in cat(store.get, cid_from_str(ROOT))) == SIZE


def test_add_stream_and_bytes_agree(tmp_path: Path) -> None:
    data = _data(CHUNK_SIZE + 1)
    store = BlockStore(tmp_path, sync=False)
    a = add_file(store, io.BytesIO(data))
    assert a == add_bytes(store, data)
    assert a == "bafybeich6cqd6yabw3cku6edwmz4rvwe275nx2l6ootvc2bpbt5bdvarua"
    assert hashlib.sha256(cat_bytes(store.get, a)).digest() == hashlib.sha256(data).digest()


def test_small_and_empty_files(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, sync=False)
    assert add_bytes(store, b"") == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert (
        cat_bytes(store.get, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku") == b""
    )
    cid = add_file(store, io.BytesIO(b"hello world"))
    assert cid == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert cat_bytes(store.get, cid) == b"hello world"


def test_cat_missing_block(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, sync=False)
    root = add_bytes(store, _data(2 * CHUNK_SIZE))
    victim = next(c for c in store if c != cid_from_str(root))
    store.delete(victim)
    with pytest.raises(MissingBlockError):
        cat_bytes(store.get, root)


def test_cat_corrupt_block(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, sync=False)
    root = add_bytes(store, _data(2 * CHUNK_SIZE))
    for path in (tmp_path / "blocks").rglob("*.data"):
        if path.stat().st_size == CHUNK_SIZE:
            path.write_bytes(b"\0" * CHUNK_SIZE)
            break
    with pytest.raises(CorruptBlockError):
        cat_bytes(store.get, root)
