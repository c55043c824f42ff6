"""protocol.unixfs_dir against Helia: the same folder gives the same CIDs, block for block.

``tests/js/unixfs_dir.mjs`` imports a temporary folder with ``@helia/unixfs`` and with
``ipfs-unixfs-importer`` (Kubo's settings) under Node; annot imports the same folder
with :class:`protocol.unixfs.FileImporter` and :class:`DirectoryBuilder`. The root,
every file and folder CID, and the set of blocks must be equal. The folder has nested
and empty folders, non-ASCII names, a multi-chunk file and a folder of 3,000 files,
large enough to be HAMT-sharded at the default 256 KiB threshold; a second import with
a small threshold shards nested folders too and makes sub-shards several levels deep.
Node runs once for both thresholds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from protocol.cid import DAG_PB, cid_bytes, cid_from_str, cid_to_str, decode_cid
from protocol.errors import BlockMismatchError, DecodeError
from protocol.unixfs import (
    T_HAMT_SHARD,
    FileImporter,
    PBLink,
    decode_dag_pb,
    decode_unixfs_data,
    encode_dag_pb,
)
from protocol.unixfs_dir import DirectoryBuilder, DirectoryWalk, hamt_slot, walk_files

SCRIPT = Path(__file__).resolve().parents[1] / "js" / "unixfs_dir.mjs"
NODE = shutil.which("node") or "/usr/bin/node"
EMPTY_DIR = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"  # Kubo's empty dir
BIG = 3_000  # (name 57 B + CID 36 B) * 3,000 = 279,000 > 262,144: sharded
PAD = "x" * 40


def _make_tree(root: Path) -> None:
    (root / "empty").mkdir(parents=True)
    big = root / "big"
    big.mkdir()
    for i in range(BIG):
        (big / f"sample-{i:05d}-{PAD}.txt").write_bytes(b"item %d\n" % i)
    deep = root / "a" / "b" / "c"
    deep.mkdir(parents=True)
    for i in range(40):
        (root / "a" / f"{i}.json").write_bytes(json.dumps({"row": i}).encode())
        (deep / f"leaf {i}.txt").write_bytes(b"leaf %d" % i)
    (root / "a" / "b" / "zürich-東京.txt").write_bytes("ünïcode".encode())
    (root / "a" / "b" / "large.bin").write_bytes(bytes(range(256)) * 3000)  # 3 chunks
    (root / "zero.txt").write_bytes(b"")
    (root / "same-as-zero.txt").write_bytes(b"")


def _annot_import(root: Path, threshold: int) -> tuple[bytes, dict[str, bytes],
                                                       dict[bytes, bytes]]:
    """(root CID, file path -> CID, every block) as annot imports ``root``."""
    builder = DirectoryBuilder(shard_threshold=threshold)
    blocks: dict[bytes, bytes] = {}
    files: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_dir():
            builder.add_folder(rel)
            continue
        imp = FileImporter()
        blocks.update(imp.update(p.read_bytes()))
        blocks.update(imp.finish())
        assert imp.root is not None
        builder.add_file(rel, imp.root, imp.tsize)
        files[rel] = imp.root
    root_cid, _, dir_blocks = builder.finish()
    blocks.update(dir_blocks)
    return root_cid, files, blocks


THRESHOLDS = (262_144, 600)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unixfs") / "folder"
    _make_tree(root)
    return root


@pytest.fixture(scope="module")
def helia(tree: Path) -> dict[str, Any]:
    """Helia's import of ``tree`` at each threshold (one Node process for all)."""
    out = subprocess.run([NODE, str(SCRIPT), str(tree), *map(str, THRESHOLDS)],
                         cwd=SCRIPT.parent, capture_output=True, text=True, timeout=180,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize(("threshold", "sharded"), [
    (262_144, {"big"}),
    (600, {"big", "a", "a/b/c"}),
], ids=["default", "small"])
def test_same_cids_as_helia(tree: Path, helia: dict[str, Any], threshold: int,
                            sharded: set[str]) -> None:
    ref = helia[str(threshold)]
    root, files, blocks = _annot_import(tree, threshold)
    assert cid_to_str(root) == ref["root"]
    # every file and every folder Helia names is the same CID in annot's DAG
    # (the importer reports no empty folder, nor a folder inside a sharded one; the block
    # set below covers those)
    folders = {p for p in ref["entries"] if p and p not in files}
    assert {"big", "a"} <= folders <= {"big", "a", "a/b", "a/b/c"}
    root_links, _ = decode_dag_pb(blocks[root])
    assert {link.name: cid_to_str(link.cid) for link in root_links}["empty"] == EMPTY_DIR
    for path, cid in files.items():
        assert ref["entries"][path] == cid_to_str(cid), path
    for folder in folders:
        block = blocks[cid_from_str(ref["entries"][folder])]
        _, data = decode_dag_pb(block)
        assert data is not None
        assert (decode_unixfs_data(data).type == T_HAMT_SHARD) == (folder in sharded), folder
    assert {hashlib.sha256(b).hexdigest() for b in blocks.values()} == set(ref["blocks"])
    # and annot's reader lists exactly the folder's files from those blocks
    walked = list(walk_files(blocks.__getitem__, root))
    assert dict(walked) == files
    assert len(walked) == len(files) == BIG + 40 + 40 + 4


def test_hamt_slot_is_murmur3_x64_64() -> None:
    # murmur3-x64-128("hello", seed 0) = cbd8a7b341bd9b02 5b1e906a48ae1d19 (JS, Go, C agree)
    h = 0xCBD8A7B341BD9B02
    assert [hamt_slot(b"hello", d) for d in range(8)] == [(h >> (56 - 8 * d)) & 0xFF
                                                          for d in range(8)]


# --- the walker refuses what no importer makes ---------------------------------------

def _dir(links: list[PBLink]) -> tuple[bytes, bytes]:
    block = encode_dag_pb(links, b"\x08\x01")
    return cid_bytes(block, DAG_PB), block


def _walk(root: bytes, blocks: dict[bytes, bytes], max_files: int = 100) -> list[str]:
    return [p for p, _ in walk_files(blocks.__getitem__, root, max_files)]


def test_walk_plain_nested() -> None:
    a, b = cid_bytes(b"a"), cid_bytes(b"b")
    sub, sub_block = _dir([PBLink(b, "b.txt", 1)])
    root, root_block = _dir([PBLink(a, "a.txt", 1), PBLink(sub, "sub", 50)])
    assert _walk(root, {root: root_block, sub: sub_block}) == ["a.txt", "sub/b.txt"]


@pytest.mark.parametrize(("links", "why"), [
    ([("b", b"1"), ("a", b"2")], "not sorted"),
    ([("a", b"1"), ("a", b"2")], "not sorted"),
    ([("..", b"1")], "bad entry name"),
    ([("x/y", b"1")], "bad entry name"),
])
def test_walk_refuses_bad_names(links: list[tuple[str, bytes]], why: str) -> None:
    root, block = _dir([PBLink(cid_bytes(c), n, 1) for n, c in links])
    with pytest.raises(DecodeError, match=why):
        _walk(root, {root: block})


def test_walk_refuses_bad_shards() -> None:
    leaf = cid_bytes(b"x")
    slot = hamt_slot(b"name", 0)
    good_bits = (1 << slot).to_bytes(32, "big").lstrip(b"\x00")
    def shard(label: str, bits: bytes, tail: bytes = b"\x28\x22\x30\x80\x02") -> tuple[
            bytes, bytes]:
        data = b"\x08\x05\x12" + bytes((len(bits),)) + bits + tail
        block = encode_dag_pb([PBLink(leaf, label, 1)], data)
        return cid_bytes(block, DAG_PB), block
    root, block = shard(f"{slot:02X}name", good_bits)
    assert _walk(root, {root: block}) == ["name"]
    wrong = (slot + 1) % 256
    root, block = shard(f"{wrong:02X}name", (1 << wrong).to_bytes(32, "big").lstrip(b"\0"))
    with pytest.raises(DecodeError, match="hash says"):
        _walk(root, {root: block})
    root, block = shard(f"{slot:02X}name", b"\x01")
    with pytest.raises(DecodeError, match="bitfield"):
        _walk(root, {root: block})
    root, block = shard(f"{slot:02X}name", good_bits, b"\x28\x11\x30\x80\x02")
    with pytest.raises(DecodeError, match="hashType 17"):
        _walk(root, {root: block})
    root, block = shard(f"{slot:02x}name", good_bits)
    if f"{slot:02x}" != f"{slot:02X}":
        with pytest.raises(DecodeError, match="malformed"):
            _walk(root, {root: block})


def test_walk_refuses_symlinks_tampering_and_too_many_files() -> None:
    link = encode_dag_pb([], b"\x08\x04\x12\x03abc")
    link_cid = cid_bytes(link, DAG_PB)
    root, block = _dir([PBLink(link_cid, "ln", len(link))])
    with pytest.raises(DecodeError, match="symlinks"):
        _walk(root, {root: block, link_cid: link})
    with pytest.raises(BlockMismatchError):
        _walk(root, {root: block + b"\x00"})
    many, many_block = _dir([PBLink(cid_bytes(b"%d" % i), f"f{i:02d}", 1) for i in range(11)])
    with pytest.raises(DecodeError, match="more than 10 files"):
        _walk(many, {many: many_block}, max_files=10)
    with pytest.raises(DecodeError, match="dag-pb"):
        DirectoryWalk(cid_bytes(b"raw root"))
    assert decode_cid(root)[0] == DAG_PB


def test_builder_refuses_bad_paths() -> None:
    b = DirectoryBuilder()
    b.add_file("a/b.txt", cid_bytes(b"1"), 1)
    for bad in ("", "a//c", "../x", "a/./c", "/abs"):
        with pytest.raises(ValueError, match="component"):
            b.add_file(bad, cid_bytes(b"2"), 1)
    with pytest.raises(ValueError, match="twice"):
        b.add_file("a/b.txt", cid_bytes(b"2"), 1)
    with pytest.raises(ValueError, match="through a file"):
        b.add_file("a/b.txt/c", cid_bytes(b"2"), 1)
