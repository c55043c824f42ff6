"""Tests for protocol.unixfs against the Kubo/Helia reference vectors.

The vectors (``tests/data/unixfs/vectors.json``, a copy of the shared reference
data; its README names the source) give root CIDs for files whose byte i is
``(i * 31 + 7) % 251``; the large ones are generated and imported streaming.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.cid import DAG_PB, RAW, cid_bytes, cid_str, cid_to_str
from protocol.errors import BlockMismatchError, DecodeError
from protocol.unixfs import (
    CHUNK_SIZE,
    FileImporter,
    PBLink,
    decode_dag_pb,
    decode_unixfs_data,
    encode_dag_pb,
    encode_unixfs_file,
    import_bytes,
    read_file,
)

HERE = Path(__file__).parent
VECTORS = json.loads((HERE.parent / "data" / "unixfs" / "vectors.json").read_text())
PIECE = 1 << 20
_CYCLE = bytes((i * 31 + 7) % 251 for i in range(251))
_PATTERN = _CYCLE * (PIECE // 251 + 2)


def content(size: int, piece: int = PIECE) -> Iterator[bytes]:
    """The reference file of ``size`` bytes, in pieces, without holding it whole."""
    for off in range(0, size, piece):
        start = off % 251
        yield _PATTERN[start : start + min(piece, size - off)]


def test_vectors_cover_the_layout_edges() -> None:
    sizes = {int(v["size"]) for v in VECTORS}
    assert {0, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 174 * CHUNK_SIZE + 1} <= sizes


def test_content_generator() -> None:
    got = b"".join(content(1000, piece=97))
    assert got == bytes((i * 31 + 7) % 251 for i in range(1000))


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: str(v["size"]))
def test_reference_vector(vector: dict[str, int | str]) -> None:
    size = int(vector["size"])
    importer = FileImporter()
    blocks: dict[bytes, bytes] = {}
    for piece in content(size):
        blocks.update(importer.update(piece))
    blocks.update(importer.finish())
    assert importer.root is not None
    assert cid_to_str(importer.root) == vector["cid"]
    assert len(blocks) == vector["blocks"]
    assert importer.size == size
    assert max(len(b) for b in blocks.values()) <= CHUNK_SIZE

    want = hashlib.sha256()
    for piece in content(size):
        want.update(piece)
    got = hashlib.sha256()
    total = 0
    for piece in read_file(blocks.__getitem__, importer.root):
        got.update(piece)
        total += len(piece)
    assert total == size
    assert got.digest() == want.digest()


def test_single_chunk_is_raw_leaf() -> None:
    root, blocks = import_bytes(b"hello world")
    assert cid_to_str(root) == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
    assert blocks == [(root, b"hello world")]


def test_children_before_parents() -> None:
    data = b"".join(content(3 * CHUNK_SIZE + 5))
    root, blocks = import_bytes(data)
    seen: set[bytes] = set()
    for cid, block in blocks:
        if cid[1] == DAG_PB:
            links, _ = decode_dag_pb(block)
            assert all(link.cid in seen for link in links)
        seen.add(cid)
    assert blocks[-1][0] == root


def _reference_tree(data: bytes, chunk: int, width: int) -> bytes:
    """js-ipfs-unixfs-importer's balanced builder, written recursively and naively."""
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    nodes = [(cid_bytes(c, RAW), len(c), len(c)) for c in chunks]  # cid, tsize, filesize
    if len(nodes) == 1:
        return nodes[0][0]
    while True:
        parents = []
        for i in range(0, len(nodes), width):
            group = nodes[i : i + width]
            sizes = [n[2] for n in group]
            block = encode_dag_pb(
                [PBLink(n[0], "", n[1]) for n in group], encode_unixfs_file(sum(sizes), sizes)
            )
            parents.append(
                (cid_bytes(block, DAG_PB), len(block) + sum(n[1] for n in group), sum(sizes))
            )
        if len(parents) == 1:
            return parents[0][0]
        nodes = parents


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 400),
    st.integers(1, 9),
    st.integers(2, 5),
    st.lists(st.integers(1, 50), min_size=1, max_size=8),
)
def test_streaming_matches_reference_builder(
    size: int, chunk: int, width: int, cuts: list[int]
) -> None:
    data = b"".join(content(size))
    importer = FileImporter(chunk_size=chunk, max_links=width)
    blocks: dict[bytes, bytes] = {}
    pos, i = 0, 0
    while pos < size:
        step = cuts[i % len(cuts)]
        blocks.update(importer.update(data[pos : pos + step]))
        pos += step
        i += 1
    blocks.update(importer.finish())
    assert importer.root == _reference_tree(data, chunk, width)
    assert b"".join(read_file(blocks.__getitem__, importer.root)) == data


def test_importer_misuse() -> None:
    importer = FileImporter()
    importer.finish()
    with pytest.raises(ValueError):
        importer.update(b"x")
    with pytest.raises(ValueError):
        importer.finish()
    with pytest.raises(ValueError):
        FileImporter(chunk_size=0)


def test_dag_pb_round_trip_and_golden() -> None:
    child = cid_bytes(b"abc")
    data = encode_unixfs_file(3, [3])
    block = encode_dag_pb([PBLink(child, "", 3)], data)
    # PBNode.Links (0x12) first: PBLink = Hash (0x0a, 36 bytes), Name (0x12, 0), Tsize (0x18, 3)
    assert block == b"\x12\x2a\x0a\x24" + child + b"\x12\x00\x18\x03" + b"\x0a\x06" + data
    assert data == b"\x08\x02\x18\x03\x20\x03"
    assert decode_dag_pb(block) == ([PBLink(child, "", 3)], data)
    node = decode_unixfs_data(data)
    assert (node.type, node.filesize, node.blocksizes, node.data) == (2, 3, (3,), b"")


def test_unixfs_packed_blocksizes() -> None:
    assert decode_unixfs_data(b"\x08\x02\x18\x05\x22\x02\x02\x03").blocksizes == (2, 3)


@pytest.mark.parametrize(
    "block",
    [
        b"\x0a\x00\x12\x00",  # Links after Data
        b"\x0a\x00\x0a\x00",  # Data twice
        b"\x1a\x00",  # unknown field 3
        b"\x08\x01",  # Data as varint
        b"\x12\x05\x0a\x03",  # truncated link
        b"\x12\x02\x12\x00",  # link without Hash
        b"\x12\x04\x12\x00\x0a\x00",  # link fields out of order
        b"\x12\x03\x0a\x01\xff\xff",  # link runs past end
        b"\x0d\x00\x00\x00\x00",  # fixed32 wire type
        b"\x80",  # truncated varint
    ],
)
def test_decode_dag_pb_rejects(block: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_dag_pb(block)


def test_read_inline_data_file() -> None:
    """Kubo's non-raw-leaves layout: UnixFS File nodes that carry their data inline."""
    leaf = encode_dag_pb([], b"\x08\x02\x12\x03abc\x18\x03")
    leaf_cid = cid_bytes(leaf, DAG_PB)
    root = encode_dag_pb([PBLink(leaf_cid, "", len(leaf))], b"\x08\x02\x18\x03\x20\x03")
    root_cid = cid_bytes(root, DAG_PB)
    blocks = {leaf_cid: leaf, root_cid: root}
    assert b"".join(read_file(blocks.__getitem__, root_cid)) == b"abc"
    # the same tree named by a binary CIDv0 root
    assert b"".join(read_file(blocks.__getitem__, root_cid[2:])) == b"abc"


def test_read_detects_tampered_block() -> None:
    root, blocks = import_bytes(b"".join(content(2 * CHUNK_SIZE)))
    store = dict(blocks)
    leaf = blocks[0][0]
    store[leaf] = b"evil" + store[leaf][4:]
    with pytest.raises(BlockMismatchError) as info:
        b"".join(read_file(store.__getitem__, root))
    assert info.value.cid == cid_to_str(leaf)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x08\x01", "directory"),
        (b"\x08\x02\x18\x09\x20\x03", "filesize disagrees"),
        (b"\x08\x02\x18\x06\x20\x03\x20\x03", "blocksizes count"),
        (b"\x18\x03", "no type"),
    ],
)
def test_read_rejects_bad_nodes(data: bytes, why: str) -> None:
    leaf_cid = cid_bytes(b"abc")
    root = encode_dag_pb([PBLink(leaf_cid, "", 3)], data)
    root_cid = cid_bytes(root, DAG_PB)
    blocks = {leaf_cid: b"abc", root_cid: root}
    with pytest.raises(DecodeError):
        b"".join(read_file(blocks.__getitem__, root_cid))


def test_read_rejects_wrong_leaf_size_and_codec() -> None:
    leaf_cid = cid_bytes(b"abcd")
    root = encode_dag_pb([PBLink(leaf_cid, "", 4)], encode_unixfs_file(3, [3]))
    root_cid = cid_bytes(root, DAG_PB)
    with pytest.raises(DecodeError, match="raw leaf"):
        b"".join(read_file({leaf_cid: b"abcd", root_cid: root}.__getitem__, root_cid))
    cbor = cid_bytes(b"\xa0", 0x71)
    with pytest.raises(DecodeError, match="codec"):
        b"".join(read_file({cbor: b"\xa0"}.__getitem__, cbor))
    assert cid_str(b"\xa0", 0x71).startswith("bafyrei")
