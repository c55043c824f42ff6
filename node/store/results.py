"""The store's tables of results: final items' certificates and task tallies.

Mixed into :class:`node.store.db.Store`, whose connection (``_db``), write
transaction (``_tx``) and record lookup (``get``) they use; kept apart so each
module stays one room. Certificates are not fsynced (``durable=False``): they are
derived from the precommits, which are stored records (see ``db``'s module doc).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager

from node.errors import StoreError
from node.store.tables import pack_refs, unpack_refs


class ResultTables:
    """Certificates (final value, round, precommit ids per item) and tallies."""

    _db: sqlite3.Connection

    def _tx(self, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # Store's

    def get(self, cid: bytes) -> bytes | None:
        raise NotImplementedError  # Store's

    def save_certificate(self, task: bytes, item: bytes, value: str, round_: int,
                         refs: Iterable[bytes]) -> None:
        """Record an item's final value and the ids of the precommits that prove it
        (not fsynced: derived from stored votes, see the module doc)."""
        with self._tx(durable=False):
            self._db.execute(
                "INSERT OR IGNORE INTO certificates(task, item, value, round, data)"
                " VALUES (?,?,?,?,?)", (task, item, value, round_, pack_refs(refs)))

    def add_certificate_vote(self, task: bytes, item: bytes, ref: bytes) -> None:
        """A later precommit for the final value and round joins the certificate, so the
        certificates of all nodes converge on the same complete set of signatures."""
        row = self._db.execute("SELECT data FROM certificates WHERE task=? AND item=?",
                               (task, item)).fetchone()
        if row is None:
            return
        refs = set(unpack_refs(bytes(row[0])))
        if ref not in refs:
            refs.add(ref)
            with self._tx(durable=False):
                self._db.execute("UPDATE certificates SET data=? WHERE task=? AND item=?",
                                 (pack_refs(refs), task, item))

    def certificate(self, task: bytes, item: bytes) -> tuple[str, int, list[bytes]] | None:
        """(final value, round, precommit record ids) of a final item."""
        row = self._db.execute("SELECT value, round, data FROM certificates WHERE task=? AND"
                               " item=?", (task, item)).fetchone()
        return None if row is None else (row[0], row[1], unpack_refs(bytes(row[2])))

    def authors(self, cids: list[bytes]) -> list[bytes]:
        """The authors of the stored records ``cids`` (all must be stored)."""
        out = []
        for c in cids:
            row = self._db.execute("SELECT author FROM records WHERE cid=?", (c,)).fetchone()
            if row is None:
                raise StoreError(f"record {c.hex()} missing from the store")
            out.append(bytes(row[0]))
        return out

    def certificate_votes(self, refs: list[bytes]) -> list[bytes]:
        """The vote records named by ``refs`` (all are stored: they were counted)."""
        out = []
        for ref in refs:
            data = self.get(ref)
            if data is None:
                raise StoreError(f"certificate vote {ref.hex()} missing from the store")
            out.append(data)
        return out

    def final_count(self, task: bytes | None = None) -> int:
        """Final items, of one task or of all."""
        if task is None:
            return int(self._db.execute("SELECT count(*) FROM certificates").fetchone()[0])
        return int(self._db.execute("SELECT count(*) FROM certificates WHERE task=?",
                                    (task,)).fetchone()[0])

    def save_tally(self, task: bytes, root: bytes, data: bytes) -> None:
        with self._tx():
            self._db.execute("INSERT OR IGNORE INTO tallies(task, root, data) VALUES (?,?,?)",
                             (task, root, data))

    def tally(self, task: bytes) -> tuple[bytes, bytes] | None:
        row = self._db.execute("SELECT root, data FROM tallies WHERE task=?", (task,)).fetchone()
        return None if row is None else (bytes(row[0]), bytes(row[1]))

    def tallies(self) -> list[tuple[bytes, bytes, bytes]]:
        return [(bytes(t), bytes(r), bytes(d)) for t, r, d in self._db.execute(
            "SELECT task, root, data FROM tallies ORDER BY task")]

    def certificate_page(self, task: bytes, after: bytes, limit: int
                         ) -> list[tuple[bytes, str, int, list[bytes]]]:
        """(item, final value, round, precommit ids) of a task's final items after item
        ``after``, in item order (a task's export pages through them)."""
        return [(bytes(i), str(v), int(r), unpack_refs(bytes(d))) for i, v, r, d in
                self._db.execute("SELECT item, value, round, data FROM certificates"
                                 " WHERE task=? AND item>? ORDER BY item LIMIT ?",
                                 (task, after, limit))]
