"""UnixFS files: the importer and reader Kubo uses, byte for byte.

The importer reproduces ``ipfs add --cid-version=1 --raw-leaves`` (Kubo's
defaults for CIDv1): fixed 262,144-byte chunks, raw leaves, a balanced DAG of
dag-pb nodes with at most 174 links each, CIDv1 sha2-256. A file of one chunk
(including the empty file) is just its raw leaf.

Each interior node is a dag-pb ``PBNode`` whose ``Data`` is a UnixFS ``Data``
message. Both are hand-encoded protobuf, in the field order go-unixfs and
js-ipfs-unixfs write, so the CIDs match theirs:

    PBNode  = Links (2, repeated PBLink) … then Data (1, bytes)
    PBLink  = Hash (1, CID bytes), Name (2, "" written), Tsize (3, cumulative)
    Data    = Type (1, File=2), filesize (3), blocksizes (4, one per child)

Memory is bounded: :class:`FileImporter` holds one partial chunk and at most
174 pending links per tree level, never the whole file. :func:`read_file`
walks a root CID through a caller-supplied ``get_block`` and checks every
block against its CID before using it. Malformed nodes raise
:class:`~protocol.errors.DecodeError`; mismatched blocks raise
:class:`~protocol.errors.BlockMismatchError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from protocol.cid import (
    DAG_PB,
    RAW,
    cid_bytes,
    decode_cid,
    encode_varint,
    normalize_cid,
    verify_block,
)
from protocol.errors import DecodeError

__all__ = [
    "CHUNK_SIZE",
    "MAX_LINKS",
    "Block",
    "FileImporter",
    "PBLink",
    "UnixFSData",
    "decode_dag_pb",
    "decode_unixfs_data",
    "encode_dag_pb",
    "encode_unixfs_file",
    "import_bytes",
    "read_file",
]

CHUNK_SIZE = 262_144
MAX_LINKS = 174
MAX_DEPTH = 32  # a balanced tree of 174-way nodes is 10 levels deep at 2**64 bytes

T_RAW, T_DIRECTORY, T_FILE, T_METADATA, T_SYMLINK, T_HAMT_SHARD = 0, 1, 2, 3, 4, 5

Block = tuple[bytes, bytes]
"""A ``(cid, block bytes)`` pair."""


@dataclass(frozen=True, slots=True)
class PBLink:
    """One link of a dag-pb node: child CID, name and cumulative size."""

    cid: bytes
    name: str | None = ""
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class UnixFSData:
    """The fields of a UnixFS ``Data`` message that files and directories use."""

    type: int
    data: bytes = b""
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()
    hash_type: int | None = None  # HAMT shards: 0x22 (murmur3-x64-64)
    fanout: int | None = None  # HAMT shards: 256


@dataclass(frozen=True, slots=True)
class _Child:
    cid: bytes
    tsize: int  # the child's block plus everything below it
    filesize: int  # file bytes under the child


# --- protobuf encoding -------------------------------------------------------


def _field_bytes(field: int, value: bytes) -> bytes:
    return encode_varint(field << 3 | 2) + encode_varint(len(value)) + value


def _field_varint(field: int, value: int) -> bytes:
    return encode_varint(field << 3) + encode_varint(value)


def encode_unixfs_file(filesize: int, blocksizes: list[int]) -> bytes:
    """The UnixFS ``Data`` of a file node with no inline data."""
    parts = [_field_varint(1, T_FILE), _field_varint(3, filesize)]
    parts.extend(_field_varint(4, size) for size in blocksizes)
    return b"".join(parts)


def encode_dag_pb(links: list[PBLink], data: bytes | None) -> bytes:
    """A dag-pb PBNode in canonical order: links first, then data."""
    parts = []
    for link in links:
        body = _field_bytes(1, link.cid)
        if link.name is not None:
            body += _field_bytes(2, link.name.encode("utf-8"))
        if link.tsize is not None:
            body += _field_varint(3, link.tsize)
        parts.append(_field_bytes(2, body))
    if data is not None:
        parts.append(_field_bytes(1, data))
    return b"".join(parts)


# --- protobuf decoding -------------------------------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("protobuf truncated inside a varint")
        if shift > 63:
            raise DecodeError("protobuf varint longer than 64 bits")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for varint and length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise DecodeError("protobuf field number 0")
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield field, wire, value
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise DecodeError("protobuf length-delimited field runs past the end")
            yield field, wire, buf[pos : pos + length]
            pos += length
        else:
            raise DecodeError(f"unsupported protobuf wire type {wire} (field {field})")


def _decode_link(buf: bytes) -> PBLink:
    cid: bytes | None = None
    name: str | None = None
    tsize: int | None = None
    last = 0
    for field, wire, value in _fields(buf):
        if field <= last:
            raise DecodeError(f"dag-pb PBLink field {field} repeated or out of order")
        last = field
        if field == 1 and isinstance(value, bytes):
            cid = value
        elif field == 2 and isinstance(value, bytes):
            try:
                name = value.decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("dag-pb PBLink name is not UTF-8") from None
        elif field == 3 and isinstance(value, int):
            tsize = value
        else:
            raise DecodeError(f"dag-pb PBLink has unexpected field {field} (wire type {wire})")
    if cid is None:
        raise DecodeError("dag-pb PBLink has no Hash")
    return PBLink(cid, name, tsize)


def decode_dag_pb(block: bytes) -> tuple[list[PBLink], bytes | None]:
    """Decode a dag-pb PBNode strictly (links before data, no unknown fields)."""
    links: list[PBLink] = []
    data: bytes | None = None
    for field, wire, value in _fields(block):
        if field == 2 and isinstance(value, bytes):
            if data is not None:
                raise DecodeError("dag-pb PBNode has Links after Data")
            links.append(_decode_link(value))
        elif field == 1 and isinstance(value, bytes):
            if data is not None:
                raise DecodeError("dag-pb PBNode has Data twice")
            data = value
        else:
            raise DecodeError(f"dag-pb PBNode has unexpected field {field} (wire type {wire})")
    return links, data


def decode_unixfs_data(buf: bytes) -> UnixFSData:
    """Decode the file and directory fields of a UnixFS ``Data`` message."""
    type_: int | None = None
    data = b""
    filesize: int | None = None
    sizes: list[int] = []
    hash_type: int | None = None
    fanout: int | None = None
    for field, wire, value in _fields(buf):
        if field == 1 and isinstance(value, int):
            type_ = value
        elif field == 2 and isinstance(value, bytes):
            data = value
        elif field == 3 and isinstance(value, int):
            filesize = value
        elif field == 4 and isinstance(value, int):
            sizes.append(value)
        elif field == 4 and isinstance(value, bytes):  # packed encoding
            pos = 0
            while pos < len(value):
                size, pos = _read_varint(value, pos)
                sizes.append(size)
        elif field == 5 and isinstance(value, int):
            hash_type = value
        elif field == 6 and isinstance(value, int):
            fanout = value
        elif field in (1, 3, 5, 6):
            raise DecodeError(f"UnixFS Data field {field} has wire type {wire}")
        # mode, mtime: metadata a reader may ignore
    if type_ is None:
        raise DecodeError("UnixFS Data has no Type")
    return UnixFSData(type_, data, filesize, tuple(sizes), hash_type, fanout)


# --- importer ----------------------------------------------------------------


class FileImporter:
    """Chunk a byte stream into a balanced raw-leaf UnixFS DAG, incrementally.

    Call :meth:`update` with successive pieces of the file and :meth:`finish`
    once; each returns the blocks completed so far as ``(cid, bytes)`` pairs,
    children always before their parents. After :meth:`finish`, :attr:`root`
    is the root CID (binary) and :attr:`size` the file size.
    """

    __slots__ = ("_buf", "_chunk_size", "_done", "_levels", "_max_links", "root", "size",
                 "tsize")

    def __init__(self, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS) -> None:
        if chunk_size < 1 or max_links < 2:
            raise ValueError("chunk_size must be >= 1 and max_links >= 2")
        self._chunk_size = chunk_size
        self._max_links = max_links
        self._buf = bytearray()
        self._levels: list[list[_Child]] = [[]]
        self._done = False
        self.root: bytes | None = None
        self.size = 0
        self.tsize = 0  # the root's cumulative size (block + everything below): a link's Tsize

    def update(self, data: bytes) -> list[Block]:
        """Feed more file bytes; return the blocks this completed."""
        if self._done:
            raise ValueError("FileImporter.update() after finish()")
        self.size += len(data)
        out: list[Block] = []
        buf = self._buf
        if not buf and len(data) >= self._chunk_size:
            view = memoryview(data)
            start = 0
            while len(data) - start >= self._chunk_size:
                self._add_leaf(bytes(view[start : start + self._chunk_size]), out)
                start += self._chunk_size
            buf += view[start:]
            return out
        buf += data
        while len(buf) >= self._chunk_size:
            self._add_leaf(bytes(buf[: self._chunk_size]), out)
            del buf[: self._chunk_size]
        return out

    def finish(self) -> list[Block]:
        """Flush the last chunk and the pending tree levels; set :attr:`root`."""
        if self._done:
            raise ValueError("FileImporter.finish() called twice")
        self._done = True
        out: list[Block] = []
        if self._buf or self.size == 0:
            self._add_leaf(bytes(self._buf), out)
            self._buf.clear()
        levels = self._levels
        if len(levels) == 1 and len(levels[0]) == 1:
            self.root, self.tsize = levels[0][0].cid, levels[0][0].tsize  # one chunk: raw leaf
            return out
        depth = 0
        while True:
            pending = levels[depth]
            top = depth == len(levels) - 1
            if top and len(pending) == 1:
                self.root, self.tsize = pending[0].cid, pending[0].tsize
                return out
            if pending:
                self._add_node(depth, out)
            depth += 1

    def _add_leaf(self, chunk: bytes, out: list[Block]) -> None:
        cid = cid_bytes(chunk, RAW)
        out.append((cid, chunk))
        self._push(0, _Child(cid, len(chunk), len(chunk)), out)

    def _push(self, depth: int, child: _Child, out: list[Block]) -> None:
        level = self._levels[depth]
        level.append(child)
        if len(level) == self._max_links:
            self._add_node(depth, out)

    def _add_node(self, depth: int, out: list[Block]) -> None:
        """Turn the pending children at ``depth`` into one parent at ``depth + 1``."""
        children = self._levels[depth]
        self._levels[depth] = []
        sizes = [c.filesize for c in children]
        filesize = sum(sizes)
        data = encode_unixfs_file(filesize, sizes)
        links = [PBLink(c.cid, "", c.tsize) for c in children]
        block = encode_dag_pb(links, data)
        cid = cid_bytes(block, DAG_PB)
        out.append((cid, block))
        if depth + 1 == len(self._levels):
            self._levels.append([])
        tsize = len(block) + sum(c.tsize for c in children)
        self._push(depth + 1, _Child(cid, tsize, filesize), out)


def import_bytes(data: bytes) -> tuple[bytes, list[Block]]:
    """Import a whole in-memory file; return (root CID, blocks)."""
    importer = FileImporter()
    blocks = importer.update(data)
    blocks += importer.finish()
    assert importer.root is not None
    return importer.root, blocks


# --- reader ------------------------------------------------------------------


def read_file(get_block: Callable[[bytes], bytes], root: bytes) -> Iterator[bytes]:
    """Yield a UnixFS file's bytes in order, verifying every block against its CID.

    ``get_block(cid)`` returns a block's bytes (and raises if it cannot).
    Raw leaves and dag-pb File/Raw nodes (with or without inline data) are read;
    anything else, or sizes that disagree with the node's metadata, is a
    :class:`~protocol.errors.DecodeError`.
    """
    yield from _read_node(get_block, normalize_cid(root), 0, None)


def _read_node(
    get_block: Callable[[bytes], bytes], cid: bytes, depth: int, expect: int | None
) -> Iterator[bytes]:
    if depth > MAX_DEPTH:
        raise DecodeError(f"UnixFS DAG deeper than {MAX_DEPTH} levels")
    codec, _, _ = decode_cid(cid)
    block = get_block(cid)
    verify_block(cid, block)
    if codec == RAW:
        if expect is not None and expect != len(block):
            raise DecodeError(f"raw leaf is {len(block)} bytes, its parent says {expect}")
        if block:
            yield block
        return
    if codec != DAG_PB:
        raise DecodeError(f"cannot read a file from a block with codec 0x{codec:x}")
    links, data = decode_dag_pb(block)
    if data is None:
        raise DecodeError("dag-pb node has no UnixFS Data")
    node = decode_unixfs_data(data)
    if node.type not in (T_FILE, T_RAW):
        raise DecodeError(f"UnixFS node of type {node.type} is not a file")
    if node.blocksizes and len(node.blocksizes) != len(links):
        raise DecodeError(f"{len(links)} links but {len(node.blocksizes)} blocksizes")
    total = len(node.data) + sum(node.blocksizes)
    if node.filesize is not None and node.filesize != total and (node.blocksizes or node.data):
        raise DecodeError(f"UnixFS filesize {node.filesize} but parts sum to {total}")
    if expect is not None and node.filesize is not None and expect != node.filesize:
        raise DecodeError(f"UnixFS node holds {node.filesize} bytes, its parent says {expect}")
    if node.data:
        yield node.data
    for i, link in enumerate(links):
        size = node.blocksizes[i] if node.blocksizes else None
        yield from _read_node(get_block, normalize_cid(link.cid), depth + 1, size)
