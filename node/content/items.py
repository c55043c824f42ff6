"""Directory tasks: a task's items from its UnixFS directory, resolved once per node.

A task record may name its items as a UnixFS directory (``items_dir``) with their
count instead of listing them, so the record stays small whatever the item count.
Every node resolves the directory before it acts on the task: it walks the
directory (:class:`protocol.unixfs_dir.DirectoryWalk`) with blocks from its own
store, then from peers (bitswap), and saves each file's ``(path, item CID)`` in the
store's ``task_items`` table. The task's items are its distinct file CIDs; a
directory that is malformed, or whose distinct file count is not the record's
``item_count``, makes the task invalid on every node alike (content addressing
gives every node the same answer), and it is never acted on.

:class:`ItemResolver` sits between ingest and consensus: records pass straight
through, except a directory task, which is held back until resolved and then handed
on *expanded* — the same record (bytes, id, signature) whose body lists the items —
so proposals, admission and tallies work unchanged. :func:`expand_task` does the
same for tasks read back from the store (a restart).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import trio

from node.errors import NodeError
from node.store.db import Store
from protocol.errors import ProtocolError
from protocol.records import MAX_DIR_ITEMS, Record, Task, decode_record
from protocol.unixfs_dir import DirectoryWalk

log = logging.getLogger("annot.items")

Fetch = Callable[[bytes, float], Awaitable[bytes | None]]
"""A block by CID: local store first, then peers; ``None`` if nobody had it in time."""

FETCH_TIMEOUT_S = 10.0
PARALLEL_FETCHES = 16
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class DirectoryUnavailable(NodeError):
    """Some block of the directory could not be fetched yet (try again later)."""


def expand_task(store: Store, record: Record) -> Record | None:
    """``record`` with its directory items listed; ``None`` while they are unknown or if
    the directory is invalid. Other records come back unchanged."""
    body = record.body
    if not isinstance(body, Task) or body.items_dir is None or body.items:
        return record
    state = store.task_dir(record.cid)
    if state is None or state[0] != "resolved":
        return None
    return replace(record, body=replace(body, items=tuple(store.task_item_cids(record.cid))))


async def walk_directory(fetch: Fetch, root: bytes, max_files: int,
                         timeout: float = FETCH_TIMEOUT_S,
                         progress: Callable[[int], None] | None = None
                         ) -> list[tuple[str, bytes]]:
    """Every file of the directory ``root`` as (path, CID), fetching blocks in parallel.

    Raises :class:`DirectoryUnavailable` when a block cannot be had, and
    :class:`~protocol.errors.ProtocolError` when the directory is malformed."""
    walk = DirectoryWalk(root, max_files)
    files: list[tuple[str, bytes]] = []
    limit = trio.Semaphore(PARALLEL_FETCHES)
    got: dict[bytes, bytes | None] = {}

    async def one(cid: bytes) -> None:
        async with limit:
            got[cid] = await fetch(cid, timeout)

    while not walk.done:
        wanted = walk.wants()
        got.clear()
        async with trio.open_nursery() as nursery:
            for cid in wanted:
                nursery.start_soon(one, cid)
        for cid in wanted:
            data = got.get(cid)
            if data is None:
                raise DirectoryUnavailable(f"block {cid.hex()} of the directory not found")
            files += walk.feed(cid, data)
        if progress is not None:
            progress(len(files))
    return files


def check_items(task: Task, files: list[tuple[str, bytes]]) -> int:
    """The task's distinct item count from its files; raise if it is not the record's."""
    distinct = len({cid for _, cid in files})
    if distinct != task.item_count:
        raise ValueError(f"the directory holds {distinct} distinct files, the task says "
                         f"item_count {task.item_count}")
    return distinct


class ItemResolver:
    """Resolves directory tasks and forwards records to ``forward`` (consensus) in order."""

    def __init__(self, store: Store, fetch: Fetch,
                 forward: Callable[[list[Record]], None]) -> None:
        self.store = store
        self.fetch = fetch
        self.forward = forward
        self._send, self._recv = trio.open_memory_channel[Record](1_000_000)
        self.pending: set[bytes] = set()

    def records_nowait(self, records: list[Record]) -> None:
        """An ingest subscriber: forward now what needs no directory, queue the rest."""
        ready: list[Record] = []
        for r in records:
            body = r.body
            if isinstance(body, Task) and body.items_dir is not None and not body.items:
                expanded = expand_task(self.store, r)
                if expanded is not None:
                    ready.append(expanded)
                elif self.store.task_dir(r.cid) is None and r.cid not in self.pending:
                    self.pending.add(r.cid)
                    self._send.send_nowait(r)
                continue
            ready.append(r)
        if ready:
            self.forward(ready)

    def restore(self, network_id: bytes) -> None:
        """At start, after consensus restored: hand on every stored directory task (with
        its items when resolved before the restart), or queue it for resolving."""
        stored = (decode_record(d, network_id, verify=False)
                  for d in self.store.records_of_kind("task"))
        self.records_nowait([r for r in stored
                             if isinstance(r.body, Task) and r.body.items_dir is not None])

    async def serve(self) -> None:
        """Resolve queued directory tasks one at a time, retrying unavailable blocks."""
        async with trio.open_nursery() as nursery:
            async for record in self._recv:
                nursery.start_soon(self._resolve, record)

    async def _resolve(self, record: Record) -> None:
        task = record.body
        assert isinstance(task, Task) and task.items_dir is not None
        root = task.items_dir
        for attempt in range(1_000_000):
            try:
                files = await walk_directory(self.fetch, root, MAX_DIR_ITEMS)
                count = check_items(task, files)
            except DirectoryUnavailable as exc:
                delay = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                log.info("task %s: items directory incomplete (%s); retry in %.0f s",
                         record.cid_str, exc, delay)
                await trio.sleep(delay)
                continue
            except (ProtocolError, ValueError) as exc:
                log.warning("task %s is invalid: its items directory: %s", record.cid_str, exc)
                self.store.save_task_dir_invalid(record.cid, str(exc))
                self.pending.discard(record.cid)
                return
            # one transaction on the event loop's thread (the store is not shared across
            # threads); 100,000 rows take a fraction of a second
            self.store.save_task_items(record.cid, files, count)
            self.pending.discard(record.cid)
            expanded = expand_task(self.store, record)
            log.info("task %s: %d items from its directory (%d files)", record.cid_str,
                     count, len(files))
            if expanded is not None:
                self.forward([expanded])
            return
