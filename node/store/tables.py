"""The store's tables for directory tasks' items and certified payout epochs.

Mixed into :class:`node.store.db.Store`, whose connection (``_db``) and write
transaction (``_tx``) they use; kept apart so each module stays one room.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager

from protocol.encoding import decode_canonical, encode_canonical


def pack_refs(refs: Iterable[bytes]) -> bytes:
    """A set of record ids as one canonical value (sorted, distinct)."""
    return encode_canonical(sorted(set(refs)))


def unpack_refs(data: bytes) -> list[bytes]:
    return [bytes(r) for r in decode_canonical(data)]


class ItemTables:
    """Directory tasks' (path, item) rows and certified payout epochs."""

    _db: sqlite3.Connection

    def _tx(self, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # Store's

    # ------------------------------------------------------------ payout epochs
    def save_payout_epoch(self, epoch: int, root: bytes, tasks: Iterable[bytes],
                          data: bytes) -> bool:
        """Keep certified payout epoch ``epoch`` (its claim file ``data``); the first
        one saved stays. Return whether it was new."""
        with self._tx():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO payout_epochs(epoch, root, tasks, data) VALUES (?,?,?,?)",
                (epoch, root, pack_refs(tasks), data))
        return cur.rowcount > 0

    def payout_epochs(self) -> list[tuple[int, bytes, list[bytes], bytes]]:
        """Every certified payout epoch here: (epoch, root, tasks, claim file), by epoch."""
        return [(int(e), bytes(r), unpack_refs(t), bytes(d)) for e, r, t, d in self._db.execute(
            "SELECT epoch, root, tasks, data FROM payout_epochs ORDER BY epoch")]

    # ------------------------------------------------------------ directory items
    def save_task_items(self, task: bytes, rows: Iterable[tuple[str, bytes]],
                        items: int) -> None:
        """A directory task's files as (path, item CID), and its distinct item count, in
        one transaction: the task is resolved for good."""
        with self._tx() as db:
            db.execute("DELETE FROM task_items WHERE task=?", (task,))
            db.executemany("INSERT INTO task_items(task, path, item) VALUES (?,?,?)",
                           ((task, p, i) for p, i in rows))
            db.execute("INSERT OR REPLACE INTO task_dirs(task, status, items, error)"
                       " VALUES (?, 'resolved', ?, NULL)", (task, items))

    def save_task_dir_invalid(self, task: bytes, error: str) -> None:
        """A directory task whose directory can never give its items (malformed, or
        not the item count its record says): every node finds the same."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO task_dirs(task, status, items, error)"
                       " VALUES (?, 'invalid', 0, ?)", (task, error))

    def task_dir(self, task: bytes) -> tuple[str, int, str | None] | None:
        """(status 'resolved'|'invalid', distinct items, error) of a directory task."""
        row = self._db.execute("SELECT status, items, error FROM task_dirs WHERE task=?",
                               (task,)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]), row[2])

    def task_item_cids(self, task: bytes) -> list[bytes]:
        """A resolved directory task's distinct items, in the order of their first path."""
        return [bytes(i) for (i,) in self._db.execute(
            "SELECT item FROM task_items WHERE task=? GROUP BY item ORDER BY min(path)",
            (task,))]

    def task_item_page(self, task: bytes, after: str, limit: int) -> list[tuple[str, bytes]]:
        """(path, item) of a directory task's files after path ``after``, in path order."""
        return [(str(p), bytes(i)) for p, i in self._db.execute(
            "SELECT path, item FROM task_items WHERE task=? AND path>? ORDER BY path LIMIT ?",
            (task, after, limit))]

    def has_task_item(self, task: bytes, item: bytes) -> bool:
        """Whether a resolved directory task lists ``item`` among its files."""
        return self._db.execute("SELECT 1 FROM task_items WHERE task=? AND item=? LIMIT 1",
                                (task, item)).fetchone() is not None

    def item_paths(self, task: bytes, item: bytes) -> list[str]:
        """Every path at which ``item`` appears in its task's directory (sorted)."""
        return [str(p) for (p,) in self._db.execute(
            "SELECT path FROM task_items WHERE task=? AND item=? ORDER BY path", (task, item))]
