"""Store schema and its migrations.

``user_version`` holds the schema version. Each entry of ``MIGRATIONS`` takes
the schema from version i to i+1 and runs in its own transaction; a store
written by a newer annot is refused rather than misread.
"""

from __future__ import annotations

import sqlite3

from node.errors import StoreError

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the first release
    """
    CREATE TABLE records (
        cid BLOB PRIMARY KEY, author BLOB NOT NULL, seq INTEGER NOT NULL,
        kind TEXT NOT NULL, task BLOB, item BLOB, data BLOB NOT NULL,
        received INTEGER NOT NULL DEFAULT 0,
        UNIQUE (author, seq)
    );
    CREATE INDEX records_kind ON records(kind);
    CREATE INDEX records_task ON records(task, kind);
    CREATE TABLE clock (author BLOB PRIMARY KEY, seq INTEGER NOT NULL);
    CREATE TABLE own_seq (author BLOB PRIMARY KEY, next_seq INTEGER NOT NULL);
    CREATE TABLE forks (
        author BLOB NOT NULL, seq INTEGER NOT NULL, cid BLOB NOT NULL, data BLOB NOT NULL,
        UNIQUE (author, seq, cid)
    );
    CREATE TABLE annotations (
        task BLOB NOT NULL, item BLOB NOT NULL, author BLOB NOT NULL, label TEXT NOT NULL,
        seq INTEGER NOT NULL, cid BLOB NOT NULL,
        PRIMARY KEY (task, item, author)
    );
    CREATE INDEX annotations_author ON annotations(author, seq);
    CREATE TABLE evidence (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
        a BLOB NOT NULL, b BLOB NOT NULL, UNIQUE (a, b)
    );
    CREATE TABLE certificates (
        task BLOB NOT NULL, item BLOB NOT NULL, value TEXT NOT NULL, round INTEGER NOT NULL,
        data BLOB NOT NULL, PRIMARY KEY (task, item)
    );
    CREATE TABLE tallies (task BLOB PRIMARY KEY, root BLOB NOT NULL, data BLOB NOT NULL);
    """,
    # 1 -> 2: tasks whose items are a UnixFS directory, resolved (or found invalid) once
    """
    CREATE TABLE task_dirs (
        task BLOB PRIMARY KEY, status TEXT NOT NULL, items INTEGER NOT NULL, error TEXT
    );
    CREATE TABLE task_items (
        task BLOB NOT NULL, path TEXT NOT NULL, item BLOB NOT NULL, PRIMARY KEY (task, path)
    );
    CREATE INDEX task_items_item ON task_items(task, item);
    """,
    # 2 -> 3: fork variants are looked up by id (has) and by author (the fork rule, sync)
    """
    CREATE INDEX forks_cid ON forks(cid);
    CREATE INDEX forks_author ON forks(author, seq);
    """,
    # 3 -> 4: certified payout epochs (issue 16): the claim file whose root a quorum signed
    """
    CREATE TABLE payout_epochs (
        epoch INTEGER PRIMARY KEY, root BLOB NOT NULL, tasks BLOB NOT NULL, data BLOB NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn``'s schema to ``SCHEMA_VERSION``; return the version found."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise StoreError(
            f"store schema version {found} is newer than this annot supports "
            f"({SCHEMA_VERSION}); upgrade annot")
    for version in range(found, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        for stmt in MIGRATIONS[version].split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version={version + 1}")
        conn.execute("COMMIT")
    return found
