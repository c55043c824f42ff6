"""Files in and out of the block store, as UnixFS DAGs Kubo would build.

``add_file`` streams a file (path or binary stream) through
:class:`protocol.unixfs.FileImporter` into a :class:`~node.content.blockstore.BlockStore`
with bounded memory and returns the root CID string — the same CID
``ipfs add --cid-version=1`` prints for the same bytes. ``cat`` walks a root
CID with any block getter (the local store, bitswap, Kubo) and yields the
file's bytes in order, every block verified against its CID.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

from node.content.blockstore import BlockStore, MissingBlockError, to_cid_bytes
from protocol.cid import cid_to_str
from protocol.unixfs import CHUNK_SIZE, FileImporter, read_file

__all__ = ["READ_SIZE", "add_bytes", "add_file", "cat", "cat_bytes"]

READ_SIZE = 4 * CHUNK_SIZE  # read 1 MiB at a time: few syscalls, small footprint


def add_file(store: BlockStore, source: str | os.PathLike[str] | BinaryIO) -> str:
    """Import a file (a path, or a binary stream read to EOF) into ``store``; return its CID."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as f:
            return _add_stream(store, f)
    return _add_stream(store, source)


def add_bytes(store: BlockStore, data: bytes) -> str:
    """Import an in-memory file into ``store``; return its root CID string."""
    importer = FileImporter()
    store.put_blocks(importer.update(data) + importer.finish())  # one durable batch
    assert importer.root is not None
    return cid_to_str(importer.root)


def _add_stream(store: BlockStore, stream: BinaryIO) -> str:
    importer = FileImporter()
    while chunk := stream.read(READ_SIZE):
        store.put_blocks(importer.update(chunk))  # a few blocks, one durable batch
    store.put_blocks(importer.finish())
    assert importer.root is not None
    return cid_to_str(importer.root)


def cat(get: Callable[[bytes], bytes | None], cid: bytes | str) -> Iterator[bytes]:
    """Yield the bytes of the UnixFS file at ``cid``, fetching blocks with ``get``.

    ``get`` returns a block or ``None`` (missing → :class:`MissingBlockError`);
    a block that does not match its CID raises
    :class:`~protocol.errors.BlockMismatchError`.
    """

    def get_block(c: bytes) -> bytes:
        data = get(c)
        if data is None:
            raise MissingBlockError(cid_to_str(c))
        return data

    return read_file(get_block, to_cid_bytes(cid))


def cat_bytes(get: Callable[[bytes], bytes | None], cid: bytes | str) -> bytes:
    """The whole file at ``cid`` as one bytes object (for small files)."""
    return b"".join(cat(get, cid))
