"""``annot backup`` and ``annot restore``: the command-line face of
:mod:`node.store.backup` (a running node's store via SQLite's online backup API,
plus its block store, in one tar file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.store.backup import BackupInfo, load_backup, save_backup


def _summary(info: BackupInfo) -> dict[str, Any]:
    return {"file": str(info.path), "records": info.records, "blocks": info.blocks,
            "bytes": info.size}


def backup_home(home: Path, out: Path) -> dict[str, Any]:
    """Back up ``home`` (the node may be running) to the tar file ``out``."""
    return _summary(save_backup(home, out))


def restore_home(backup: Path, home: Path, force: bool) -> dict[str, Any]:
    """Restore a backup into ``home`` (never while a node runs on it)."""
    out = _summary(load_backup(backup, home, force))
    out["home"] = str(home)
    return out
