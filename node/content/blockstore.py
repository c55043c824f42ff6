"""A persistent, content-addressed block store on the local filesystem.

Layout follows Kubo's flatfs ``next-to-last/2`` sharding, keyed by the CIDv1
base32 string::

    <root>/blocks/<2 chars before the last>/<cid>.data
    <root>/corrupt/<cid>.<n>           blocks that failed verification on read

Writes are atomic: a temp file in the shard directory, ``fsync``, ``rename``,
then ``fsync`` of the directory, so a ``kill -9`` leaves either the whole
block or nothing. :meth:`BlockStore.put_blocks` writes many blocks with the same
guarantee at the cost of two syncs for the whole batch, not two per block: every
temp file is written, one ``syncfs`` makes their bytes durable, every rename is
done, and a second ``syncfs`` makes the names durable (where ``syncfs`` is missing,
each temp file and each touched shard directory is fsynced instead).

Every block is checked against its CID when it is written
(:class:`~protocol.errors.BlockMismatchError`) and again when it is read: a
block corrupted on disk is never served — it is moved into ``corrupt/`` and
:class:`CorruptBlockError` is raised, after which ``get`` returns ``None`` so
the caller can fetch it again from the network.

All I/O is synchronous; trio callers wrap calls in ``trio.to_thread.run_sync``.

    NodeError
    └── BlockStoreError
        ├── BlockTooLargeError      a block over MAX_BLOCK_SIZE
        ├── CorruptBlockError       bytes on disk that do not match their CID
        ├── MissingBlockError       a block that the store does not hold
        └── BlockWriteError         a block the disk refused (full, read-only, I/O error)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from node.errors import NodeError
from protocol.cid import RAW, cid_bytes, cid_from_str, cid_to_str, normalize_cid
from protocol.cid import verify_block as _verify_block
from protocol.errors import BlockMismatchError

__all__ = [
    "MAX_BLOCK_SIZE",
    "BlockStore",
    "BlockStoreError",
    "BlockTooLargeError",
    "BlockWriteError",
    "CorruptBlockError",
    "MissingBlockError",
    "to_cid_bytes",
]

MAX_BLOCK_SIZE = 1 << 20  # 1 MiB: what Kubo and bitswap peers accept for one block
_SUFFIX = ".data"
_TMP_PREFIX = ".tmp-"


class BlockStoreError(NodeError):
    """Root of the block store's errors."""


class BlockTooLargeError(BlockStoreError):
    """A block larger than :data:`MAX_BLOCK_SIZE`."""

    def __init__(self, size: int, limit: int = MAX_BLOCK_SIZE) -> None:
        super().__init__(f"block is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class CorruptBlockError(BlockStoreError):
    """A stored block whose bytes no longer hash to its CID; it was moved aside."""

    def __init__(self, cid: str, actual: str, moved_to: str) -> None:
        super().__init__(
            f"stored block {cid} is corrupt (content hashes to {actual}); moved to {moved_to}"
        )
        self.cid = cid
        self.actual = actual
        self.moved_to = moved_to


class BlockWriteError(BlockStoreError, OSError):
    """The filesystem refused a block write; nothing was stored (still an ``OSError``)."""

    def __init__(self, key: str, exc: OSError) -> None:
        super().__init__(f"cannot store block {key}: {exc.strerror or exc}")
        self.key = key
        self.errno = exc.errno


class MissingBlockError(BlockStoreError):
    """A block the store does not hold."""

    def __init__(self, cid: str) -> None:
        super().__init__(f"block {cid} not found")
        self.cid = cid


def to_cid_bytes(cid: bytes | str) -> bytes:
    """Binary CIDv1 from a CID string (v1 or v0) or binary CID (v1 or v0)."""
    if isinstance(cid, str):
        return cid_from_str(cid)
    return normalize_cid(cid)


class BlockStore:
    """Blocks on disk under ``root``, named by CID and verified both ways."""

    __slots__ = ("_blocks", "_corrupt", "_sync", "root")

    def __init__(self, root: str | os.PathLike[str], *, sync: bool = True) -> None:
        self.root = Path(root)
        self._blocks = self.root / "blocks"
        self._corrupt = self.root / "corrupt"
        self._sync = sync
        self._blocks.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()

    # --- paths -------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self._blocks / key[-3:-1] / (key + _SUFFIX)

    def _remove_stale_temps(self) -> None:
        """Temp files left by a crash mid-write are garbage: nothing points at them."""
        for shard in self._blocks.iterdir():
            if shard.is_dir():
                for entry in shard.iterdir():
                    if entry.name.startswith(_TMP_PREFIX):
                        entry.unlink(missing_ok=True)

    # --- writes ------------------------------------------------------------

    def put(self, data: bytes, codec: int = RAW) -> bytes:
        """Store a block under its CIDv1 (sha2-256, ``codec``); return the binary CID."""
        if len(data) > MAX_BLOCK_SIZE:
            raise BlockTooLargeError(len(data))
        cid = cid_bytes(data, codec)
        self._write(cid_to_str(cid), data)
        return cid

    def put_block(self, cid: bytes | str, data: bytes) -> bytes:
        """Store a block under a given CID after checking it; return the binary CID."""
        if len(data) > MAX_BLOCK_SIZE:
            raise BlockTooLargeError(len(data))
        raw = to_cid_bytes(cid)
        _verify_block(raw, data)
        self._write(cid_to_str(raw), data)
        return raw

    def put_blocks(self, blocks: Iterable[tuple[bytes | str, bytes]]) -> list[bytes]:
        """Store many (CID, data) blocks, each checked against its CID, durably as one
        batch (two syncs in all); return their binary CIDs in order. Nothing of the
        batch is stored if one block is refused (too large, wrong bytes)."""
        raws: list[bytes] = []
        todo: dict[str, bytes] = {}
        for cid, data in blocks:
            if len(data) > MAX_BLOCK_SIZE:
                raise BlockTooLargeError(len(data))
            raw = to_cid_bytes(cid)
            _verify_block(raw, data)
            raws.append(raw)
            todo.setdefault(cid_to_str(raw), data)
        self._write_many(todo)
        return raws

    def put_many(self, blocks: Iterable[tuple[bytes, int]]) -> list[bytes]:
        """Store many (data, codec) blocks under their CIDv1s as one durable batch."""
        return self.put_blocks([(cid_bytes(data, codec), data) for data, codec in blocks])

    def _write_many(self, todo: dict[str, bytes]) -> None:
        written: list[tuple[str, Path]] = []  # (temp file, final path)
        key = ""
        try:
            for key, data in todo.items():
                path = self._path(key)
                if path.exists():
                    continue
                path.parent.mkdir(exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
                written.append((tmp, path))
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            if not written:
                return
            key = "(batch)"
            if self._sync:
                self._sync_all([t for t, _ in written], files=True)
            for tmp, path in written:
                os.replace(tmp, path)
            if self._sync:
                self._sync_all(sorted({str(p.parent) for _, p in written}), files=False)
        except OSError as exc:
            for tmp, _ in written:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise BlockWriteError(key, exc) from exc

    def _sync_all(self, paths: list[str], files: bool) -> None:
        """Make ``paths`` (temp files, or shard directories) durable: one ``syncfs`` of
        the store's filesystem, or one fsync each where ``syncfs`` is missing."""
        if _SYNCFS is not None:
            fd = os.open(self._blocks, os.O_RDONLY)
            try:
                if _SYNCFS(fd) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            return
        for p in paths:
            fd = os.open(p, os.O_RDONLY if not files else os.O_RDWR)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _write(self, key: str, data: bytes) -> None:
        try:
            self._write_file(key, data)
        except OSError as exc:  # ENOSPC, EROFS, EIO: a named error, not a stray OSError
            raise BlockWriteError(key, exc) from exc

    def _write_file(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return  # content-addressed: same name, same bytes
        shard = path.parent
        shard.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=shard)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self._sync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self._sync:
            _fsync_dir(shard)

    def delete(self, cid: bytes | str) -> bool:
        """Remove a block; return whether it was there."""
        try:
            self._path(self._key(cid)).unlink()
        except FileNotFoundError:
            return False
        return True

    # --- reads -------------------------------------------------------------

    def _key(self, cid: bytes | str) -> str:
        return cid_to_str(to_cid_bytes(cid))

    def has(self, cid: bytes | str) -> bool:
        """Whether the block is on disk (not re-verified; ``get`` does that)."""
        return self._path(self._key(cid)).is_file()

    def get(self, cid: bytes | str) -> bytes | None:
        """The verified block bytes, or ``None`` if absent.

        Raises :class:`CorruptBlockError` (and moves the file aside) if the bytes
        on disk do not match the CID.
        """
        raw = to_cid_bytes(cid)
        key = cid_to_str(raw)
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            _verify_block(raw, data)
        except BlockMismatchError as exc:
            moved = self._quarantine(key, path)
            raise CorruptBlockError(key, exc.actual, moved) from None
        return data

    def get_or_raise(self, cid: bytes | str) -> bytes:
        """Like :meth:`get`, but a missing block raises :class:`MissingBlockError`."""
        data = self.get(cid)
        if data is None:
            raise MissingBlockError(self._key(cid))
        return data

    def block_size(self, cid: bytes | str) -> int | None:
        """Size in bytes of a stored block, or ``None`` if absent."""
        try:
            return self._path(self._key(cid)).stat().st_size
        except FileNotFoundError:
            return None

    def _quarantine(self, key: str, path: Path) -> str:
        self._corrupt.mkdir(exist_ok=True)
        n = 0
        while (target := self._corrupt / f"{key}.{n}").exists():
            n += 1
        with contextlib.suppress(FileNotFoundError):  # another thread got there first
            os.replace(path, target)
        return str(target)

    # --- enumeration -------------------------------------------------------

    def iter_cids(self) -> Iterator[bytes]:
        """Every stored block's binary CID, in no particular order."""
        for shard in self._blocks.iterdir():
            if not shard.is_dir():
                continue
            for entry in shard.iterdir():
                name = entry.name
                if name.endswith(_SUFFIX) and not name.startswith(_TMP_PREFIX):
                    yield cid_from_str(name[: -len(_SUFFIX)])

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_cids()

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, bytes | str) and self.has(cid)

    def count(self) -> int:
        """Number of stored blocks."""
        return sum(1 for _ in self.iter_cids())

    def total_bytes(self) -> int:
        """Sum of the sizes of all stored blocks."""
        return sum(self.block_size(c) or 0 for c in self.iter_cids())


def _find_syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)`` (flush one filesystem), or None where libc lacks it."""
    try:
        fn: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return fn


_SYNCFS = _find_syncfs()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
