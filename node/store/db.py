"""The embedded record store: one SQLite file in WAL mode.

Records are saved verbatim (their exact signed bytes) with indexed columns.
Saving is idempotent; a second, different record with an author's seq is kept
as fork evidence, never dropped or overwritten. The vector clock (author →
highest contiguous seq) is maintained on write, so "what do you lack" is a
cheap query. The node's own next seq is committed before a record is signed.

Durability: WAL with ``synchronous=FULL`` — a commit is fsynced before it
returns, so the seq reservation, our own votes and every record acknowledged to
a client survive power loss, not only a killed process. Ingest saves a batch in
one transaction, so a batch costs one fsync; group commit (a client's batch)
commits with ``durable=False`` and then calls :meth:`Store.sync_wal` in a worker
thread before it answers, so that fsync is off the event loop. Records from peers
(gossip, sync) are saved with ``durable=False``: their commit skips the fsync
(``synchronous=NORMAL`` for that transaction), because nobody was promised them
and sync brings back whatever a power loss takes; the next durable commit's WAL
fsync covers them anyway. An fsync blocks the event loop (SQLite runs in it),
so this keeps a node's loop free while peers gossip thousands of records.
Certificates are not fsynced either: they are derived from the precommits, which
are stored records, and a restarted node that lost one finalizes the item again
from those votes. Two fsyncs per final item (the certificate, then the late
precommit that joins it) were 15% of a validator's samples, on its event loop.
``open_store(durable=False)`` (tests and benchmarks only) never fsyncs.

Forks: at most one conflicting variant per author is kept (``FORK_CAP_PER_AUTHOR``):
one proof is all the fork rule needs (docs/protocol.md, "Forks"), so a forking
author cannot grow the store with variants. The variant travels with the
author's records in sync (:meth:`Store.records_after`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from node.errors import ReadOnlyStoreError, SeqError, StoreError
from node.store.migrations import migrate
from node.store.results import ResultTables
from node.store.tables import ItemTables
from protocol.records import Annotation, Record, Task, Vote

FORK_CAP_PER_AUTHOR = 1  # conflicting variants kept per author: one proves the fork
# SQLite result codes that mean "this disk or file will not take writes now"
REFUSED_WRITE_CODES = frozenset({sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL,
                                 sqlite3.SQLITE_IOERR})


class Saved(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    FORK = "fork"


@dataclass(frozen=True, slots=True)
class StoredRecord:
    cid: bytes
    author: bytes
    seq: int
    kind: str
    data: bytes


@dataclass(frozen=True, slots=True)
class StoredAnnotation:
    task: bytes
    item: bytes
    author: bytes
    label: str
    seq: int
    cid: bytes




def _annotations(rows: Iterable[tuple[Any, ...]]) -> list[StoredAnnotation]:
    return [StoredAnnotation(bytes(t), bytes(i), bytes(a), lab, s, bytes(c))
            for t, i, a, lab, s, c in rows]


def _index_cols(r: Record) -> tuple[bytes | None, bytes | None]:
    b = r.body
    if isinstance(b, Annotation):
        return b.task, b.item
    if isinstance(b, Task):
        return r.cid, None
    if isinstance(b, Vote):
        return None, None
    task = getattr(b, "task", None)  # tally votes, gold reveals, task updates
    return (task if isinstance(task, bytes) else None), None


class Store(ItemTables, ResultTables):
    """The SQLite store. Open with :func:`open_store`; one per node process."""

    def __init__(self, conn: sqlite3.Connection, path: Path, durable: bool = True) -> None:
        self._db = conn
        self.path = path
        self.durable = durable  # fsync every commit unless a write says it need not
        self._wal_dir_synced = False

    def close(self) -> None:
        self._db.close()

    def sync_wal(self) -> None:
        """fsync the WAL file: every transaction committed before the call survives power
        loss, those committed with ``durable=False`` included (each commit is appended
        to the WAL; a checkpoint fsyncs the WAL before it and the database after it).
        No SQLite call, so it may run in a worker thread while the event loop goes on:
        group commit saves a client batch with ``durable=False`` and acknowledges it
        after this (``node.core.group_commit``). Raises ``OSError`` if the disk refuses."""
        if not self.durable:
            return
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:  # no write yet since the store was opened
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if not self._wal_dir_synced:  # the WAL file's own directory entry, once
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self._wal_dir_synced = True

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, fsynced on commit if ``durable`` (and the store is);
        a refused write becomes a named ``StoreError``."""
        relax = self.durable and not durable
        try:
            if relax:  # outside a transaction, as SQLite requires
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._db:
                    yield self._db
            finally:
                if relax:
                    self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from exc

    # ------------------------------------------------------------ records
    def save_records(self, records: Iterable[Record], received: int = 0,
                     durable: bool = True) -> list[Saved]:
        """Save a batch in one transaction (fsynced if ``durable``: ours, or acknowledged
        to a client); report, per record, what happened."""
        out: list[Saved] = []
        with self._tx(durable) as db:
            cur = db.cursor()
            touched: set[bytes] = set()
            for r in records:
                out.append(self._save_one(cur, r, received))
                if out[-1] is Saved.NEW:
                    touched.add(r.author)
            for author in touched:
                self._advance_clock(cur, author)
        return out

    def _save_one(self, cur: sqlite3.Cursor, r: Record, received: int) -> Saved:
        task, item = _index_cols(r)
        # the common case (a new record) costs one statement; a conflict is resolved after
        cur.execute(
            "INSERT OR IGNORE INTO records(cid, author, seq, kind, task, item, data, received)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (r.cid, r.author, r.seq, r.kind, task, item, r.data, received))
        if cur.rowcount == 0:
            row = cur.execute("SELECT cid FROM records WHERE author=? AND seq=?",
                              (r.author, r.seq)).fetchone()
            if row is None or row[0] == r.cid:
                return Saved.DUPLICATE
            # bounded: one variant per author proves the fork; more only cost disk
            cur.execute(
                "INSERT INTO forks(author, seq, cid, data) SELECT ?,?,?,? WHERE"
                " (SELECT count(*) FROM forks WHERE author=?) < ?",
                (r.author, r.seq, r.cid, r.data, r.author, FORK_CAP_PER_AUTHOR))
            return Saved.DUPLICATE if cur.rowcount == 0 else Saved.FORK
        b = r.body
        if isinstance(b, Annotation):
            # one annotation per author per item: the lowest seq wins on every node
            cur.execute(
                "INSERT INTO annotations(task, item, author, label, seq, cid) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT(task, item, author) DO UPDATE SET label=excluded.label,"
                " seq=excluded.seq, cid=excluded.cid WHERE excluded.seq < annotations.seq",
                (b.task, b.item, r.author, b.label, r.seq, r.cid))
        return Saved.NEW

    def _advance_clock(self, cur: sqlite3.Cursor, author: bytes) -> None:
        row = cur.execute("SELECT seq FROM clock WHERE author=?", (author,)).fetchone()
        have = row[0] if row else 0
        # walk forward over consecutive seqs already stored
        seqs = cur.execute("SELECT seq FROM records WHERE author=? AND seq>? ORDER BY seq",
                           (author, have)).fetchall()
        for (s,) in seqs:
            if s != have + 1:
                break
            have = s
        cur.execute("INSERT INTO clock(author, seq) VALUES (?,?) "
                    "ON CONFLICT(author) DO UPDATE SET seq=excluded.seq", (author, have))

    def _write_error(self, exc: sqlite3.OperationalError) -> StoreError:
        # by SQLite's result code (its primary part: extended codes add high bits)
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in REFUSED_WRITE_CODES:
            return ReadOnlyStoreError(f"store {self.path} refuses writes: {exc}")
        return StoreError(f"store {self.path}: {exc}")

    def has(self, cid: bytes) -> bool:
        """Whether the record ``cid`` is held (as a record or as a fork variant)."""
        return (self._db.execute("SELECT 1 FROM records WHERE cid=?", (cid,)).fetchone()
                is not None or self._db.execute("SELECT 1 FROM forks WHERE cid=?",
                                                (cid,)).fetchone() is not None)

    def get(self, cid: bytes) -> bytes | None:
        row = self._db.execute("SELECT data FROM records WHERE cid=?", (cid,)).fetchone()
        return None if row is None else bytes(row[0])

    def get_by_seq(self, author: bytes, seq: int) -> bytes | None:
        row = self._db.execute("SELECT data FROM records WHERE author=? AND seq=?",
                               (author, seq)).fetchone()
        return None if row is None else bytes(row[0])

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return int(self._db.execute("SELECT count(*) FROM records").fetchone()[0])
        return int(self._db.execute("SELECT count(*) FROM records WHERE kind=?",
                                    (kind,)).fetchone()[0])

    def counts_by_kind(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT kind, count(*) FROM records GROUP BY kind"))

    def records_of_kind(self, kind: str) -> Iterator[bytes]:
        for (data,) in self._db.execute("SELECT data FROM records WHERE kind=? ORDER BY rowid",
                                        (kind,)):
            yield bytes(data)

    def page_of_kind(self, kind: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """(rowid, bytes) of records of one kind after rowid ``after``, oldest first."""
        return [(int(i), bytes(d)) for i, d in self._db.execute(
            "SELECT rowid, data FROM records WHERE kind=? AND rowid>? ORDER BY rowid LIMIT ?",
            (kind, after, limit))]

    def records_for_task(self, task: bytes, kind: str) -> list[bytes]:
        return [bytes(d) for (d,) in self._db.execute(
            "SELECT data FROM records WHERE task=? AND kind=? ORDER BY rowid", (task, kind))]

    # ------------------------------------------------------------ vector clock
    def clock(self) -> dict[bytes, int]:
        """Author → highest contiguous seq held."""
        return {bytes(a): s for a, s in self._db.execute("SELECT author, seq FROM clock")}

    def records_after(self, author: bytes, seq: int, limit: int) -> list[bytes]:
        """Up to ``limit`` records of ``author`` with seq > ``seq``, in seq order.

        On the last page (fewer than ``limit - 2`` records), if we hold fork
        evidence against the author, both variants (the stored record and the
        conflicting one) come first: fork evidence travels with the author's
        records even to a peer whose clock is past the forked seq, whichever
        variant that peer holds; the page stays shorter than ``limit`` so a
        pager stops after it."""
        rows = [bytes(d) for (d,) in self._db.execute(
            "SELECT data FROM records WHERE author=? AND seq>? ORDER BY seq LIMIT ?",
            (author, seq, limit))]
        if len(rows) + 2 < limit:
            fork = self._db.execute(
                "SELECT r.data, f.data, f.seq FROM forks f JOIN records r"
                " ON r.author=f.author AND r.seq=f.seq WHERE f.author=? ORDER BY f.rowid"
                " LIMIT 1", (author,)).fetchone()
            if fork is not None:
                pair = [bytes(fork[1])] if fork[2] > seq else [bytes(fork[0]), bytes(fork[1])]
                rows[:0] = pair
        return rows

    def high_water(self) -> int:
        """A mark of how far the store has grown: records stored later have a higher
        one (SQLite's rowid: records are never deleted, so it only grows)."""
        row = self._db.execute("SELECT max(rowid) FROM records").fetchone()
        return int(row[0] or 0)

    def stored_after(self, mark: int, limit: int) -> list[tuple[int, bytes, int, bytes]]:
        """Up to ``limit`` records stored after the :meth:`high_water` ``mark``, in the
        order they were stored, as (mark, author, seq, data): page on with the last
        mark. One walk of the rowid B-tree from ``mark``: it costs what is new only."""
        return [(int(m), bytes(a), int(q), bytes(d)) for m, a, q, d in self._db.execute(
            "SELECT rowid, author, seq, data FROM records WHERE rowid>? ORDER BY rowid"
            " LIMIT ?", (mark, limit))]

    def clock_of(self, author: bytes) -> int:
        """The highest contiguous seq held of ``author`` (0 if none)."""
        row = self._db.execute("SELECT seq FROM clock WHERE author=?", (author,)).fetchone()
        return int(row[0]) if row else 0

    def held_above_clock(self, limit: int) -> dict[bytes, list[int]]:
        """Author → seqs held above its contiguous clock (records past a seq gap), at
        most ``limit`` pairs in all, lowest authors first (for sync's "have" list).

        Every sync session asks, so it costs one index probe per author, not a scan
        of every record (16 ms at 40,000 records, and growing with the store, on the
        event loop: 0.2 ms now). Every author with a record has a clock row (saving
        a record advances its author's clock); CROSS JOIN keeps the clock outside."""
        out: dict[bytes, list[int]] = {}
        for a, s in self._db.execute(
                "SELECT r.author, r.seq FROM clock c CROSS JOIN records r"
                " ON r.author = c.author AND r.seq > c.seq"
                " ORDER BY r.author, r.seq LIMIT ?", (limit,)):
            out.setdefault(bytes(a), []).append(int(s))
        return out

    # ------------------------------------------------------------ annotations
    def annotations(self, task: bytes, item: bytes | None = None) -> list[StoredAnnotation]:
        if item is None:
            rows = self._db.execute(
                "SELECT task, item, author, label, seq, cid FROM annotations WHERE task=?"
                " ORDER BY item, author", (task,))
        else:
            rows = self._db.execute(
                "SELECT task, item, author, label, seq, cid FROM annotations"
                " WHERE task=? AND item=? ORDER BY author", (task, item))
        return _annotations(rows)

    def annotations_by_author(self, author: bytes, after: int, limit: int
                              ) -> list[StoredAnnotation]:
        rows = self._db.execute(
            "SELECT task, item, author, label, seq, cid FROM annotations"
            " WHERE author=? AND seq>? ORDER BY seq LIMIT ?", (author, after, limit))
        return _annotations(rows)

    def annotations_page(self, task: bytes | None, item: bytes | None, author: bytes | None,
                         offset: int, limit: int) -> list[StoredAnnotation]:
        where, args = [], []
        for col, val in (("task", task), ("item", item), ("author", author)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        rows = self._db.execute(
            "SELECT task, item, author, label, seq, cid FROM annotations WHERE "
            + " AND ".join(where or ["1"]) + " ORDER BY task, item, author LIMIT ? OFFSET ?",
            (*args, limit, offset))
        return _annotations(rows)

    def annotation_count(self, task: bytes, item: bytes) -> int:
        return int(self._db.execute("SELECT count(*) FROM annotations WHERE task=? AND item=?",
                                    (task, item)).fetchone()[0])

    # ------------------------------------------------------------ own seq
    def reserve_seq(self, author: bytes, count: int = 1) -> int:
        """Durably reserve ``count`` seqs for our own records; return the first.

        Committed before anything is signed, so a crash can only skip seqs,
        never reuse one."""
        with self._tx():
            row = self._db.execute("SELECT next_seq FROM own_seq WHERE author=?",
                                   (author,)).fetchone()
            stored = self._db.execute("SELECT max(seq) FROM records WHERE author=?",
                                      (author,)).fetchone()[0] or 0
            nxt = max(row[0] if row else 1, stored + 1)
            self._db.execute("INSERT INTO own_seq(author, next_seq) VALUES (?,?) ON CONFLICT"
                             "(author) DO UPDATE SET next_seq=excluded.next_seq",
                             (author, nxt + count))
        return int(nxt)

    def next_seq(self, author: bytes) -> int:
        """The next seq an author should use, as far as this store knows."""
        row = self._db.execute("SELECT next_seq FROM own_seq WHERE author=?", (author,)).fetchone()
        stored = self._db.execute("SELECT max(seq) FROM records WHERE author=?",
                                  (author,)).fetchone()[0] or 0
        own = int(row[0]) if row else 1
        if row and own <= stored:
            raise SeqError(f"own seq counter {own} is behind stored seq {stored}")
        return max(own, stored + 1)

    # ------------------------------------------------------------ forks / evidence
    def forks(self) -> list[tuple[bytes, bytes]]:
        """(stored record bytes, conflicting record bytes) per fork."""
        rows = self._db.execute(
            "SELECT r.data, f.data FROM forks f JOIN records r"
            " ON r.author=f.author AND r.seq=f.seq ORDER BY f.rowid")
        return [(bytes(a), bytes(b)) for a, b in rows]

    def forked_authors(self) -> set[bytes]:
        """Authors of whom we hold two different records with one seq (a fork)."""
        return {bytes(a) for (a,) in self._db.execute("SELECT DISTINCT author FROM forks")}

    def save_evidence(self, kind: str, a: bytes, b: bytes) -> bool:
        lo, hi = sorted((a, b))
        with self._tx():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO evidence(kind, a, b) VALUES (?,?,?)", (kind, lo, hi))
        return cur.rowcount == 1

    def evidence(self, after: int = 0, limit: int = 100) -> list[tuple[int, str, bytes, bytes]]:
        return [(i, k, bytes(a), bytes(b)) for i, k, a, b in self._db.execute(
            "SELECT id, kind, a, b FROM evidence WHERE id>? ORDER BY id LIMIT ?",
            (after, limit))]

    # ------------------------------------------------------------ maintenance
    def integrity_check(self) -> list[str]:
        """SQLite's own page-level check; an empty list means the file is sound."""
        try:
            rows = [r[0] for r in self._db.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:  # a header or root page too broken to walk
            return [f"database is malformed: {exc}"]
        return [] if rows == ["ok"] else rows


def open_store(path: Path, readonly: bool = False, durable: bool = True) -> Store:
    """Open (creating and migrating if needed) the store at ``path``.

    ``durable`` (the default) fsyncs every commit (``synchronous=FULL``); pass
    False only where power loss does not matter (benchmarks' comparison figure)."""
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(path, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        if not readonly:
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open store {path}: {exc}") from exc
    return Store(conn, path, durable=durable and not readonly)
