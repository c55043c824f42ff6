"""Folders and CSV files into a node as UnixFS directories, over batched RPC.

:func:`import_tree` walks a folder (sorted, recursive; symlinks and special files
are refused by name), imports each file with :class:`protocol.unixfs.FileImporter`
and the folder with :class:`protocol.unixfs_dir.DirectoryBuilder`, and sends every
block with ``block.put`` in JSON-RPC batches (bounded by count and bytes, below the
node's request limit). :func:`import_csv` turns each CSV row into one small file —
the text of one column, or the row as a JSON object — named by its row number, and
adds those as a directory the same way. Both print progress to stderr.
"""

from __future__ import annotations

import base64
import csv
import json
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from node.errors import NodeError
from node.rpc.client import RPCClient
from protocol.cid import DAG_PB, cid_to_str, decode_cid
from protocol.unixfs import CHUNK_SIZE, Block, FileImporter
from protocol.unixfs_dir import DirectoryBuilder

READ_SIZE = 4 * CHUNK_SIZE
BATCH_CALLS = 500  # the node takes 1,000 calls a batch; its block puts share one write
BATCH_BYTES = 1 << 20  # base64 of the blocks in one request (the node takes 2 MiB)
PROGRESS_EVERY_S = 0.5


class TreeError(NodeError):
    """A folder or CSV that cannot become items (the message says which entry, why)."""


@dataclass(frozen=True, slots=True)
class AddedTree:
    """A directory added to the node: its root, each file's path and CID, totals."""

    root: str
    files: tuple[tuple[str, str], ...]  # (path inside the directory, CID), path order
    items: int  # distinct file CIDs
    size: int  # file bytes
    blocks: int


class _Sender:
    """Sends blocks in ``block.put`` batches; checks the node stored each under its CID."""

    def __init__(self, client: RPCClient) -> None:
        self.client = client
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.cids: list[bytes] = []
        self.pending_bytes = 0
        self.sent = 0

    async def put(self, blocks: list[Block]) -> None:
        for cid, data in blocks:
            encoded = base64.b64encode(data).decode("ascii")
            if self.calls and (len(self.calls) >= BATCH_CALLS
                               or self.pending_bytes + len(encoded) > BATCH_BYTES):
                await self.flush()
            codec = "dag-pb" if decode_cid(cid)[0] == DAG_PB else "raw"
            self.calls.append(("block.put", {"data": encoded, "codec": codec}))
            self.cids.append(cid)
            self.pending_bytes += len(encoded)

    async def flush(self) -> None:
        if not self.calls:
            return
        replies = await self.client.batch(self.calls)
        for cid, reply in zip(self.cids, replies, strict=True):
            got = reply.unwrap().get("cid")
            if got != cid_to_str(cid):
                raise TreeError(f"node stored a block as {got}, expected {cid_to_str(cid)}")
        self.sent += len(self.calls)
        self.calls, self.cids, self.pending_bytes = [], [], 0


class _Progress:
    def __init__(self, what: str, total: int, enabled: bool) -> None:
        self.what, self.total, self.enabled = what, total, enabled
        self.last = 0.0
        self.size = 0

    def step(self, done: int, size: int, final: bool = False) -> None:
        self.size = size
        now = time.monotonic()
        if self.enabled and (final or now - self.last >= PROGRESS_EVERY_S):
            self.last = now
            end = "\n" if final else ""
            print(f"\r{self.what}: {done:,}/{self.total:,} files, {size / 1e6:,.1f} MB",
                  end=end, file=sys.stderr, flush=True)


def list_tree(folder: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """(files as (relative path, path), folders) under ``folder``, in sorted order."""
    files: list[tuple[str, Path]] = []
    folders: list[str] = []
    stack = [folder]
    while stack:
        current = stack.pop()
        for entry in sorted(current.iterdir(), reverse=True):
            rel = entry.relative_to(folder).as_posix()
            try:
                mode = entry.lstat().st_mode
            except OSError as exc:
                raise TreeError(f"{entry}: {exc.strerror}") from None
            if stat.S_ISLNK(mode):
                raise TreeError(f"{entry}: symbolic links are not added (copy the file)")
            if stat.S_ISDIR(mode):
                folders.append(rel)
                stack.append(entry)
            elif stat.S_ISREG(mode):
                files.append((rel, entry))
            else:
                raise TreeError(f"{entry}: not a regular file or folder")
    files.sort()
    folders.sort()
    return files, folders


async def import_tree(client: RPCClient, folder: Path, progress: bool) -> AddedTree:
    """Add ``folder`` recursively as a UnixFS directory through ``client``."""
    if not folder.is_dir():
        raise TreeError(f"{folder}: not a folder")
    files, folders = list_tree(folder)
    sender = _Sender(client)
    builder = DirectoryBuilder()
    for rel in folders:
        builder.add_folder(rel)
    out: list[tuple[str, str]] = []
    meter = _Progress(f"adding {folder}", len(files), progress)
    size = 0
    for n, (rel, path) in enumerate(files, 1):
        importer = FileImporter()
        with path.open("rb") as f:
            while chunk := f.read(READ_SIZE):
                await sender.put(importer.update(chunk))
        await sender.put(importer.finish())
        assert importer.root is not None
        builder.add_file(rel, importer.root, importer.tsize)
        out.append((rel, cid_to_str(importer.root)))
        size += importer.size
        meter.step(n, size)
    return await _finish(sender, builder, out, size, meter)


async def _finish(sender: _Sender, builder: DirectoryBuilder, out: list[tuple[str, str]],
                  size: int, meter: _Progress) -> AddedTree:
    if not out:
        raise TreeError("no files to add: the folder (or CSV) is empty")
    root, _, blocks = builder.finish()
    await sender.put(blocks)
    await sender.flush()
    meter.step(len(out), size, final=True)
    return AddedTree(cid_to_str(root), tuple(out), len({c for _, c in out}), size,
                     sender.sent)


def csv_items(path: Path, column: str | None) -> list[tuple[str, bytes]]:
    """(file name, bytes) per CSV row: the column's UTF-8 text, or the row as JSON."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if column is not None and column not in fields:
                raise TreeError(f"{path}: no column {column!r} (columns: {', '.join(fields)})")
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise TreeError(f"{path}: not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise TreeError(f"{path}: not a CSV file: {exc}") from None
    width = max(6, len(str(len(rows))))
    items = []
    for i, row in enumerate(rows, 1):
        if None in row:
            raise TreeError(f"{path}: row {i} has more fields than the header")
        if column is not None:
            items.append((f"{i:0{width}d}.txt", (row[column] or "").encode("utf-8")))
        else:
            data = json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8")
            items.append((f"{i:0{width}d}.json", data))
    return items


async def import_csv(client: RPCClient, path: Path, column: str | None,
                     progress: bool) -> AddedTree:
    """Add one file per row of the CSV at ``path`` as a directory, named by row number."""
    items = csv_items(path, column)
    sender = _Sender(client)
    builder = DirectoryBuilder()
    out: list[tuple[str, str]] = []
    meter = _Progress(f"adding rows of {path}", len(items), progress)
    size = 0
    for n, (name, data) in enumerate(items, 1):
        importer = FileImporter()
        blocks = importer.update(data) + importer.finish()
        await sender.put(blocks)
        assert importer.root is not None
        builder.add_file(name, importer.root, importer.tsize)
        out.append((name, cid_to_str(importer.root)))
        size += len(data)
        meter.step(n, size)
    return await _finish(sender, builder, out, size, meter)
