"""A key's seq counter, kept where the key lives: ``KEYFILE.seq`` beside the key file.

An honest client never forks itself: every record it signs takes a seq from
this counter, which is

- **locked** (``fcntl.flock`` on the counter file) while a seq is read and
  advanced, so two ``annot label --key K`` started at once get different seqs;
- **durable**: the advanced value is written and fsynced (and, when the file is
  created, its directory too) *before* the seq is handed out, so neither a
  crash nor a power loss can hand the same seq out twice;
- **never behind the network**: callers pass ``floor``, the next seq a node
  knows for the key (``account.get``), so a key that signed elsewhere, or
  before the counter existed, continues above what peers already hold.

The file holds the next free seq as 20 zero-padded decimal digits and a newline.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from node.errors import HomeError

MAX_SEQ = 2**53  # far beyond any honest key's lifetime; refuse a corrupted counter above it


def seq_path(key_path: Path) -> Path:
    """The counter file of the key at ``key_path``."""
    return key_path.with_name(key_path.name + ".seq")


def reserve_key_seq(key_path: Path, count: int = 1, floor: int = 1) -> int:
    """Durably reserve ``count`` seqs for the key at ``key_path``; return the first.

    The first seq is at least ``floor``. The counter is advanced and fsynced
    before this returns, under an exclusive lock on the counter file."""
    if count < 1 or floor < 1:
        raise HomeError(f"seq reservation needs count >= 1 and floor >= 1, got {count}, {floor}")
    path = seq_path(key_path)
    created = not path.exists()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise HomeError(f"cannot open the seq counter {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        try:
            stored = int(raw) if raw else 1
        except ValueError:
            raise HomeError(f"seq counter {path} is corrupt ({raw[:20]!r}); it must hold the "
                            "next free seq: restore it above every seq this key signed") from None
        if not 1 <= stored <= MAX_SEQ:
            raise HomeError(f"seq counter {path} holds {stored}, outside 1..{MAX_SEQ}")
        first = max(stored, floor)
        # fixed width, written in place: no truncation, so a crash mid-write can
        # never leave an empty (or shorter, smaller) counter behind
        os.pwrite(fd, f"{first + count:020d}\n".encode(), 0)
        os.fsync(fd)
        if created:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return first
    except OSError as exc:
        raise HomeError(f"cannot advance the seq counter {path}: {exc}") from None
    finally:
        os.close(fd)  # releases the lock


def next_key_seq(key_path: Path) -> int:
    """The next seq the counter would hand out (1 if it does not exist yet)."""
    path = seq_path(key_path)
    try:
        raw = path.read_text().strip()
    except FileNotFoundError:
        return 1
    except OSError as exc:
        raise HomeError(f"cannot read the seq counter {path}: {exc}") from None
    try:
        return int(raw)
    except ValueError:
        raise HomeError(f"seq counter {path} is corrupt ({raw[:20]!r})") from None
