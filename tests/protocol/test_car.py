"""protocol.car: CARv1 written as ``ipfs dag import`` reads it, checked with @ipld/car.

A folder imported as UnixFS (a plain and a HAMT-sharded directory) is written as one
CAR; ``tests/js/car_check.mjs`` reads it with ``@ipld/car`` under Node, re-hashes
every block, walks every root's DAG for missing blocks and lists the files with
``@helia/unixfs``. The reader here refuses truncation, tampering and bad headers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from protocol.car import decode_car, encode_car_block, encode_car_header
from protocol.cid import DAG_PB, cid_bytes, cid_to_str
from protocol.errors import BlockMismatchError, DecodeError
from protocol.unixfs import import_bytes
from protocol.unixfs_dir import DirectoryBuilder

SCRIPT = Path(__file__).resolve().parents[1] / "js" / "car_check.mjs"
NODE = shutil.which("node") or "/usr/bin/node"


def _folder(n: int, threshold: int = 262_144) -> tuple[bytes, dict[str, bytes], dict[bytes, bytes]]:
    builder = DirectoryBuilder(shard_threshold=threshold)
    blocks: dict[bytes, bytes] = {}
    files: dict[str, bytes] = {}
    for i in range(n):
        root, file_blocks = import_bytes(b"file %d" % i)
        blocks.update(file_blocks)
        path = f"d{i % 3}/f{i}.txt"
        builder.add_file(path, root, len(b"file %d" % i))
        files[path] = root
    root, _, dir_blocks = builder.finish()
    blocks.update(dir_blocks)
    return root, files, blocks


def _car(roots: list[bytes], blocks: dict[bytes, bytes]) -> bytes:
    return encode_car_header(roots) + b"".join(encode_car_block(c, d) for c, d in blocks.items())


def test_header_is_canonical_dag_cbor() -> None:
    root = cid_bytes(b"x", DAG_PB)
    header = encode_car_header([root])
    # varint length, a2 map, "roots": [tag 42 bytes(0x00 + cid)], "version": 1
    assert header == (bytes((len(header) - 1,)) + b"\xa2\x65roots\x81\xd8\x2a\x58\x25\x00"
                      + root + b"\x67version\x01")


def test_round_trip() -> None:
    root, _, blocks = _folder(20)
    roots, got = decode_car(_car([root], blocks))
    assert roots == [root] and got == blocks


def test_read_by_ipld_car_under_node(tmp_path: Path) -> None:
    root, files, blocks = _folder(300, threshold=2_000)  # sharded sub-folders
    path = tmp_path / "out.car"
    path.write_bytes(_car([root], blocks))
    out = subprocess.run([NODE, str(SCRIPT), str(path), "--ls"], cwd=SCRIPT.parent,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert got["roots"] == [cid_to_str(root)]
    assert got["blocks"] == len(blocks) and got["missing"] == [] and got["bad"] == []
    assert got["files"] == {p: cid_to_str(c) for p, c in files.items()}
    # a CAR missing one block of the DAG: @ipld/car reads it, the walk names the hole
    first_file = next(iter(files.values()))
    path.write_bytes(_car([root], {c: d for c, d in blocks.items() if c != first_file}))
    out = subprocess.run([NODE, str(SCRIPT), str(path)], cwd=SCRIPT.parent,
                         capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout)["missing"] == [cid_to_str(first_file)]


def test_reader_refuses_bad_archives() -> None:
    root, _, blocks = _folder(3)
    car = _car([root], blocks)
    with pytest.raises(DecodeError, match="truncated"):
        decode_car(car[:-5])
    tampered = bytearray(car)
    tampered[-1] ^= 1
    with pytest.raises(BlockMismatchError):
        decode_car(bytes(tampered))
    with pytest.raises(DecodeError, match="header"):
        decode_car(b"\x05hello")
    bad_version = car.replace(b"\x67version\x01", b"\x67version\x02", 1)
    with pytest.raises(DecodeError, match="version"):
        decode_car(bad_version)
