"""Files through the RPC, for ``annot add [-r]``, ``annot cat`` and ``task create``.

Files are chunked locally into the UnixFS DAG Kubo builds with raw leaves
(:class:`protocol.unixfs.FileImporter`), and each block is sent with
``block.put``; the node's returned CID must match the local one. ``cat`` walks
the DAG with ``block.get``, verifying every block against its CID.

A folder (``add -r``, ``task create --items-dir``) becomes a UnixFS directory,
recursive, with every name kept (:class:`protocol.unixfs_dir.DirectoryBuilder`:
HAMT-sharded when large, as Kubo and Helia shard), so its root CID is the one
``ipfs add -r --cid-version=1`` gives. A CSV (``task create --items-csv``) becomes a
directory too: one small file per row, named by row number. Blocks travel in
JSON-RPC batches; progress goes to stderr.
"""

from __future__ import annotations

import base64
from functools import partial
from pathlib import Path
from typing import BinaryIO

import trio

from node.cli.tree import AddedTree, import_csv, import_tree
from node.errors import NodeError
from node.rpc.client import RPCClient, read_home
from protocol.cid import DAG_PB, cid_from_str, cid_to_str, decode_cid
from protocol.unixfs import CHUNK_SIZE, FileImporter, read_file

__all__ = ["AddedTree", "add_csv", "add_files", "add_tree", "cat_file"]

READ_SIZE = 4 * CHUNK_SIZE
BATCH_TIMEOUT_S = 300.0  # a batch of block.put is many durable writes on a busy disk


class CidMismatchError(NodeError):
    """The node stored a block under a different CID than we computed."""


async def _put_blocks(client: RPCClient, blocks: list[tuple[bytes, bytes]]) -> None:
    for cid, data in blocks:
        codec = "dag-pb" if decode_cid(cid)[0] == DAG_PB else "raw"
        encoded = base64.b64encode(data).decode("ascii")
        result = await client.call("block.put", data=encoded, codec=codec)
        if result.get("cid") != cid_to_str(cid):
            raise CidMismatchError(
                f"node stored a block as {result.get('cid')}, expected {cid_to_str(cid)}"
            )


async def _add_one(client: RPCClient, path: Path) -> str:
    importer = FileImporter()
    with path.open("rb") as f:
        while chunk := f.read(READ_SIZE):
            await _put_blocks(client, importer.update(chunk))
    await _put_blocks(client, importer.finish())
    assert importer.root is not None
    return cid_to_str(importer.root)


def add_files(home: Path, paths: list[Path]) -> list[tuple[Path, str]]:
    """Add each file to the node at ``home``; return (path, root CID) pairs."""

    async def run() -> list[tuple[Path, str]]:
        async with RPCClient(*read_home(home)) as client:
            return [(p, await _add_one(client, p)) for p in paths]

    return trio.run(run)


def add_tree(home: Path, folder: Path, progress: bool = True) -> AddedTree:
    """Add a folder, recursively, as a UnixFS directory; return what was added."""

    async def run() -> AddedTree:
        async with RPCClient(*read_home(home), timeout=BATCH_TIMEOUT_S) as client:
            return await import_tree(client, folder, progress)

    return trio.run(run)


def add_csv(home: Path, path: Path, column: str | None, progress: bool = True) -> AddedTree:
    """Add one item per CSV row (the column's text, or the row as JSON) as a directory."""

    async def run() -> AddedTree:
        async with RPCClient(*read_home(home), timeout=BATCH_TIMEOUT_S) as client:
            return await import_csv(client, path, column, progress)

    return trio.run(run)


def cat_file(home: Path, cid: str, out: BinaryIO) -> None:
    """Write the UnixFS file at ``cid`` to ``out``, fetching blocks over RPC."""
    root = cid_from_str(cid)

    async def run() -> None:
        async with RPCClient(*read_home(home)) as client:

            def get_block(c: bytes) -> bytes:
                result = trio.from_thread.run(partial(client.call, "block.get", cid=cid_to_str(c)))
                return base64.b64decode(result["data"])

            def pump() -> None:
                for piece in read_file(get_block, root):
                    out.write(piece)

            await trio.to_thread.run_sync(pump)

    trio.run(run)
