"""UnixFS directories as Kubo and Helia build them: plain, or HAMT-sharded when large.

:class:`DirectoryBuilder` takes files by path (and empty folders) and builds the
directory DAG bottom-up, byte for byte as ``ipfs-unixfs-importer`` 17 (the
importer Helia uses; its defaults are Kubo's) builds it for the same tree:

* A plain directory is a dag-pb node whose links are sorted by name (UTF-8 bytes)
  and whose Data is UnixFS ``Directory`` (``08 01``). Its Tsize is the block's
  length plus its links' Tsizes.
* A directory is sharded when its estimated size is over 262,144 bytes. The
  estimate is the importer's ``links-bytes`` rule (boxo's ``estimatedSize``):
  the sum, over the folder's direct children, of the name's UTF-8 length plus the
  child CID's byte length — where a sub-folder counts 0, because the importer
  estimates before any sub-folder has a CID. The comparison is strict (``>``).
* A HAMT shard has fanout 256. A name's slot at depth ``d`` is byte ``d`` of the
  big-endian first 64 bits of murmur3-x64-128 (seed 0) of the name; after 8 levels
  the name is re-hashed with one more byte, the level count (``name + bytes([k])``).
  Names that share a slot go to a sub-shard (link name ``"%02X" % slot``); a
  lone entry's link is named ``"%02X" % slot + name``. Data is UnixFS
  ``HAMTShard`` with the occupied-slot bitfield (big-endian, leading zero bytes
  dropped, at least one byte), hashType 0x22 and fanout 256.

Reading is sans-IO: :class:`DirectoryWalk` says which blocks it wants, is fed
them, and yields every file's ``(path, cid)``; :func:`walk_files` drives it with a
synchronous getter. Malformed or inconsistent directories raise
:class:`~protocol.errors.DecodeError`; a block that does not hash to its CID
raises :class:`~protocol.errors.BlockMismatchError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import mmh3

from protocol.cid import DAG_PB, RAW, cid_bytes, decode_cid, normalize_cid, verify_block
from protocol.errors import DecodeError
from protocol.unixfs import (
    T_DIRECTORY,
    T_FILE,
    T_HAMT_SHARD,
    T_RAW,
    Block,
    PBLink,
    decode_dag_pb,
    decode_unixfs_data,
    encode_dag_pb,
)

__all__ = [
    "FANOUT",
    "HASH_MURMUR3_128",
    "SHARD_THRESHOLD",
    "DirectoryBuilder",
    "DirectoryWalk",
    "hamt_slot",
    "walk_files",
]

FANOUT = 256
HASH_MURMUR3_128 = 0x22
SHARD_THRESHOLD = 262_144
MAX_PATH_DEPTH = 64
_DIR_DATA = b"\x08\x01"


def _hash64(name: bytes, rehash: int) -> int:
    """The first 64 bits of murmur3-x64-128 (seed 0), as the big-endian integer Go uses."""
    key = name if rehash == 0 else name + bytes((rehash,))
    return int.from_bytes(mmh3.hash_bytes(key)[:8], "little")


def hamt_slot(name: bytes, depth: int) -> int:
    """The slot (0..255) of ``name`` in a shard ``depth`` levels below the root shard."""
    rehash, byte = divmod(depth, 8)
    if rehash > 255:
        raise DecodeError("HAMT deeper than 2048 levels")
    return (_hash64(name, rehash) >> (56 - 8 * byte)) & 0xFF


def _bitfield(slots: list[int]) -> bytes:
    bits = 0
    for s in slots:
        bits |= 1 << s
    return bits.to_bytes(max(1, (bits.bit_length() + 7) // 8), "big")


def _shard_data(slots: list[int]) -> bytes:
    bitfield = _bitfield(slots)
    # Type=HAMTShard, Data=bitfield, hashType=0x22, fanout=256 (field order of ipfs-unixfs)
    return (b"\x08\x05\x12" + bytes((len(bitfield),)) + bitfield
            + b"\x28\x22\x30\x80\x02")


@dataclass(frozen=True, slots=True)
class _Ref:
    """A finished child: its CID and Tsize."""

    cid: bytes
    tsize: int


_Tree = dict[str, "_Ref | _Tree"]


def split_path(path: str) -> list[str]:
    """The components of a relative ``/``-separated path; refuse empty, ``.`` and ``..``."""
    parts = path.split("/")
    if len(parts) > MAX_PATH_DEPTH:
        raise ValueError(f"path {path!r} is more than {MAX_PATH_DEPTH} folders deep")
    for p in parts:
        if p in ("", ".", ".."):
            raise ValueError(f"path {path!r} has an empty, '.' or '..' component")
    return parts


class DirectoryBuilder:
    """Collects files by path, then builds the directory DAG (children before parents)."""

    def __init__(self, shard_threshold: int = SHARD_THRESHOLD) -> None:
        self._root: _Tree = {}
        self._threshold = shard_threshold
        self.files = 0

    def _folder(self, parts: list[str], path: str) -> _Tree:
        node = self._root
        for p in parts:
            child = node.setdefault(p, {})
            if isinstance(child, _Ref):
                raise ValueError(f"path {path!r} goes through a file")
            node = child
        return node

    def add_file(self, path: str, cid: bytes, tsize: int) -> None:
        """Add the file (or UnixFS DAG) ``cid`` of cumulative size ``tsize`` at ``path``."""
        parts = split_path(path)
        folder = self._folder(parts[:-1], path)
        if parts[-1] in folder:
            raise ValueError(f"path {path!r} added twice")
        folder[parts[-1]] = _Ref(normalize_cid(cid), tsize)
        self.files += 1

    def add_folder(self, path: str) -> None:
        """Add a (possibly empty) folder at ``path``."""
        self._folder(split_path(path), path)

    def finish(self) -> tuple[bytes, int, list[Block]]:
        """Build every folder; return (root CID, root Tsize, blocks children-first)."""
        blocks: list[Block] = []
        ref = self._build(self._root, blocks)
        return ref.cid, ref.tsize, blocks

    def _build(self, tree: _Tree, blocks: list[Block]) -> _Ref:
        refs: dict[str, _Ref] = {}
        estimate = 0
        for name, child in tree.items():
            if isinstance(child, _Ref):
                refs[name] = child
                estimate += len(name.encode("utf-8")) + len(child.cid)
            else:
                refs[name] = self._build(child, blocks)  # a sub-folder counts 0
        if estimate > self._threshold:
            entries = [(n.encode("utf-8"), r) for n, r in refs.items()]
            return _build_shard(entries, 0, blocks)
        links = sorted(((n.encode("utf-8"), r) for n, r in refs.items()), key=lambda e: e[0])
        block = encode_dag_pb([PBLink(r.cid, n.decode("utf-8"), r.tsize) for n, r in links],
                              _DIR_DATA)
        return _emit(block, sum(r.tsize for _, r in links), blocks)


def _emit(block: bytes, below: int, blocks: list[Block]) -> _Ref:
    cid = cid_bytes(block, DAG_PB)
    blocks.append((cid, block))
    return _Ref(cid, len(block) + below)


def _build_shard(entries: list[tuple[bytes, _Ref]], depth: int, blocks: list[Block]) -> _Ref:
    slots: dict[int, list[tuple[bytes, _Ref]]] = {}
    for entry in entries:
        slots.setdefault(hamt_slot(entry[0], depth), []).append(entry)
    links: list[PBLink] = []
    for slot in sorted(slots):
        group = slots[slot]
        label = f"{slot:02X}"
        if len(group) == 1:
            name, ref = group[0]
            links.append(PBLink(ref.cid, label + name.decode("utf-8"), ref.tsize))
        else:
            sub = _build_shard(group, depth + 1, blocks)
            links.append(PBLink(sub.cid, label, sub.tsize))
    block = encode_dag_pb(links, _shard_data(sorted(slots)))
    return _emit(block, sum(link.tsize or 0 for link in links), blocks)


# --- reading -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Want:
    path: str  # the entry's path (a folder's own path for a shard)
    shard_depth: int  # -1: a child of unknown kind; >= 0: a sub-shard of folder ``path``


class DirectoryWalk:
    """Sans-IO walk of a UnixFS directory: :meth:`wants` → fetch → :meth:`feed`.

    Raw-codec children are files without fetching; a dag-pb child is fetched to
    learn whether it is a file (UnixFS File/Raw) or a folder. Files are reported
    with their full ``/``-joined path. ``max_files`` bounds what an untrusted
    directory can make the walker do.
    """

    def __init__(self, root: bytes, max_files: int = 10_000_000) -> None:
        root = normalize_cid(root)
        if decode_cid(root)[0] != DAG_PB:
            raise DecodeError("a UnixFS directory root is a dag-pb block")
        self._wants: dict[bytes, list[_Want]] = {root: [_Want("", -1)]}
        self._root = root
        self._max = max_files
        self.files = 0
        self.blocks = 0

    @property
    def done(self) -> bool:
        return not self._wants

    def wants(self) -> list[bytes]:
        """The CIDs of the blocks the walk needs next (any order, all at once)."""
        return list(self._wants)

    def feed(self, cid: bytes, block: bytes) -> list[tuple[str, bytes]]:
        """Give the walk a wanted block; return the files it reveals as (path, cid)."""
        cid = normalize_cid(cid)
        wants = self._wants.pop(cid, None)
        if wants is None:
            raise ValueError("feed() of a block the walk did not ask for")
        verify_block(cid, block)
        self.blocks += 1
        out: list[tuple[str, bytes]] = []
        links, data = decode_dag_pb(block)
        if data is None:
            raise DecodeError("dag-pb node in a directory has no UnixFS Data")
        node = decode_unixfs_data(data)
        for want in wants:
            if want.shard_depth < 0 and node.type in (T_FILE, T_RAW):
                if cid == self._root:
                    raise DecodeError("the root is a file, not a directory")
                self._file(want.path, cid, out)
            elif want.shard_depth < 0 and node.type == T_DIRECTORY:
                self._folder(want.path, links, out)
            elif node.type == T_HAMT_SHARD:
                self._shard(want.path, max(want.shard_depth, 0), node.data, node.hash_type,
                            node.fanout, links, out)
            else:
                where = want.path or "the root"
                raise DecodeError(f"{where}: UnixFS node type {node.type} is not a file or "
                                  "folder (symlinks and metadata nodes are not supported)")
        return out

    def _file(self, path: str, cid: bytes, out: list[tuple[str, bytes]]) -> None:
        self.files += 1
        if self.files > self._max:
            raise DecodeError(f"directory holds more than {self._max} files")
        out.append((path, cid))

    def _child(self, parent: str, name: str, cid: bytes, out: list[tuple[str, bytes]]) -> None:
        if name in ("", ".", "..") or "/" in name:
            raise DecodeError(f"{parent or 'the root'}: bad entry name {name!r}")
        path = f"{parent}/{name}" if parent else name
        if path.count("/") >= MAX_PATH_DEPTH:
            raise DecodeError(f"{path}: more than {MAX_PATH_DEPTH} folders deep")
        cid = normalize_cid(cid)
        codec = decode_cid(cid)[0]
        if codec == RAW:
            self._file(path, cid, out)
        elif codec == DAG_PB:
            self._want(cid, _Want(path, -1))
        else:
            raise DecodeError(f"{path}: codec 0x{codec:x} is not UnixFS")

    def _want(self, cid: bytes, want: _Want) -> None:
        self._wants.setdefault(cid, []).append(want)

    def _folder(self, path: str, links: list[PBLink], out: list[tuple[str, bytes]]) -> None:
        last: bytes | None = None
        for link in links:
            name = link.name or ""
            raw = name.encode("utf-8")
            if last is not None and raw <= last:
                raise DecodeError(f"{path or 'the root'}: names not sorted or repeated")
            last = raw
            self._child(path, name, link.cid, out)

    def _shard(self, path: str, depth: int, bitfield: bytes, hash_type: int | None,
               fanout: int | None, links: list[PBLink], out: list[tuple[str, bytes]]) -> None:
        where = path or "the root"
        if hash_type != HASH_MURMUR3_128 or fanout != FANOUT:
            raise DecodeError(f"{where}: HAMT shard with hashType {hash_type} and fanout "
                              f"{fanout} (want 0x22 and 256)")
        slots: list[int] = []
        for link in links:
            label = link.name or ""
            try:
                slot = int(label[:2], 16)
            except ValueError:
                raise DecodeError(f"{where}: HAMT link name {label!r} has no slot") from None
            if len(label) < 2 or label[:2] != f"{slot:02X}" or (slots and slot <= slots[-1]):
                raise DecodeError(f"{where}: HAMT link {label!r} out of order or malformed")
            slots.append(slot)
            if len(label) == 2:
                self._want(normalize_cid(link.cid), _Want(path, depth + 1))
                continue
            name = label[2:]
            if hamt_slot(name.encode("utf-8"), depth) != slot:
                raise DecodeError(f"{where}: {name!r} is in HAMT slot {slot}, its hash says "
                                  f"{hamt_slot(name.encode('utf-8'), depth)}")
            self._child(path, name, link.cid, out)
        if not slots or bitfield != _bitfield(slots):
            raise DecodeError(f"{where}: HAMT bitfield does not match its links")


def walk_files(get_block: Callable[[bytes], bytes], root: bytes,
               max_files: int = 10_000_000) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, cid)`` of every file under the directory ``root``."""
    walk = DirectoryWalk(root, max_files)
    while not walk.done:
        for cid in walk.wants():
            yield from walk.feed(cid, get_block(cid))
