"""Backups of a node home, taken while the node runs, and their restore.

A backup is one tar file (mode 0600: it holds the node's key)::

    annot-backup.json   what it is: format, annot version, peer id, record count
    store.db            the SQLite store, copied by SQLite's online backup API
    node.key, config.toml, genesis.json
    blocks/…            the block store, file by file

The store is copied with :meth:`sqlite3.Connection.backup` in a single step, so
the copy is one read transaction of the WAL database: a record the running node
commits during the backup is either wholly in it or not at all, and derived
tables (annotations, the vector clock, certificates) agree with the records.
Blocks are copied after the store: blocks are immutable and content-addressed,
and a block written meanwhile is at worst an extra file; temp files of writes in
progress are skipped.

Restore refuses a home whose daemon is running (its lock is held) and, unless
``force``, a home that is not empty; it checks the tar's names, the store's
integrity and its record count before anything lands in the home.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import node
from node.core.home import NodeHome
from node.errors import AlreadyRunningError, HomeError, StoreError

MANIFEST = "annot-backup.json"
FORMAT = 1
HOME_FILES = ("node.key", "config.toml", "genesis.json")
_TMP_PREFIX = ".tmp-"  # node.content.blockstore's temp files


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup holds."""

    path: Path
    records: int
    blocks: int
    size: int


def _count(db: Path) -> tuple[int, int]:
    """(records, schema version) of a store file, after an integrity check."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"store copy {db} fails its integrity check: {check}")
        records = int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        return records, int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def snapshot_store(store: Path, dest: Path) -> None:
    """Copy a (possibly live) store with SQLite's online backup API, in one step."""
    if not store.exists():
        raise HomeError(f"{store} not found — is this a node home?")
    src = sqlite3.connect(store, timeout=30)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)  # pages=-1: the whole database within one read transaction
    except sqlite3.Error as exc:
        raise StoreError(f"cannot back up {store}: {exc}") from exc
    finally:
        dst.close()
        src.close()


def save_backup(home: Path, out: Path) -> BackupInfo:
    """Write a backup of ``home`` (running or not) to ``out``."""
    h = NodeHome(home)
    peer_id = h.load_key().peer_id
    out = out.resolve()
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".annot-backup-") as tmp:
        snap = Path(tmp) / "store.db"
        snapshot_store(h.store_path, snap)
        records, schema = _count(snap)
        manifest = {"format": FORMAT, "annot": node.__version__, "peer_id": peer_id,
                    "records": records, "schema_version": schema, "created": int(time.time())}
        (Path(tmp) / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        part = Path(tmp) / "backup.tar"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        blocks = 0
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
            tar.add(Path(tmp) / MANIFEST, MANIFEST)
            tar.add(snap, "store.db")
            for name in HOME_FILES:
                if (home / name).exists():
                    tar.add(home / name, name)
            for path in sorted(h.blocks_path.rglob("*")):
                if path.is_file() and not path.name.startswith(_TMP_PREFIX):
                    try:
                        tar.add(path, f"blocks/{path.relative_to(h.blocks_path)}")
                    except FileNotFoundError:  # moved away (corrupt) meanwhile
                        continue
                    blocks += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, out)
    return BackupInfo(out, records, blocks, out.stat().st_size)


def _refuse_running(h: NodeHome) -> None:
    if not h.lock_path.exists():
        return
    fd = os.open(h.lock_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise AlreadyRunningError(h.root) from None
    finally:
        os.close(fd)


def _members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    allowed = {MANIFEST, "store.db", *HOME_FILES}
    out = []
    for m in tar.getmembers():
        if not (m.isfile() or m.isdir()) or ".." in Path(m.name).parts or \
                m.name.startswith("/") or not (m.name in allowed or m.name.startswith("blocks/")):
            raise HomeError(f"not an annot backup: unexpected entry {m.name!r}")
        out.append(m)
    return out


def load_backup(backup: Path, home: Path, force: bool = False) -> BackupInfo:
    """Restore ``backup`` into ``home`` (refused while a daemon runs on it)."""
    h = NodeHome(home)
    _refuse_running(h)
    if home.exists() and any(home.iterdir()) and not force:
        raise HomeError(f"{home} is not empty; restore into a new folder, or pass --force "
                        "to replace its key, config, genesis, store and blocks")
    try:
        tar = tarfile.open(backup, "r")
    except (OSError, tarfile.TarError) as exc:
        raise HomeError(f"cannot read backup {backup}: {exc}") from None
    home.mkdir(parents=True, exist_ok=True)
    with tar, tempfile.TemporaryDirectory(dir=home.parent, prefix=".annot-restore-") as tmp:
        members = _members(tar)
        names = {m.name for m in members}
        if MANIFEST not in names or "store.db" not in names:
            raise HomeError(f"{backup} is not an annot backup (no {MANIFEST} or store.db)")
        tar.extractall(tmp, members=members, filter="data")
        manifest = json.loads((Path(tmp) / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise HomeError(f"backup format {manifest.get('format')!r} is not {FORMAT}")
        records, _ = _count(Path(tmp) / "store.db")
        if records != manifest["records"]:
            raise StoreError(f"backup store holds {records} records, its manifest says "
                             f"{manifest['records']}")
        for name in ("store.db-wal", "store.db-shm"):
            (home / name).unlink(missing_ok=True)
        if h.blocks_path.exists():
            shutil.rmtree(h.blocks_path)
        blocks_dir = Path(tmp) / "blocks"
        blocks = sum(1 for p in blocks_dir.rglob("*") if p.is_file()) if blocks_dir.exists() else 0
        if blocks_dir.exists():
            os.replace(blocks_dir, h.blocks_path)
        else:
            h.blocks_path.mkdir()
        for name in ("store.db", *HOME_FILES):
            if (Path(tmp) / name).exists():
                os.replace(Path(tmp) / name, home / name)
        if h.key_path.exists():
            os.chmod(h.key_path, 0o600)
        os.chmod(home, 0o700)
    return BackupInfo(backup, records, blocks, backup.stat().st_size)
