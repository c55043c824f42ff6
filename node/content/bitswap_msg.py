"""Bitswap wire messages: frozen values in, length-prefixed protobuf bytes out.

Every bitswap stream, whichever side opened it, carries the same thing: a
sequence of frames, each an unsigned-varint length followed by one protobuf
``Message`` (wantlist and/or blocks and/or block presences). This module turns
those bytes into :class:`BitswapMessage` values and back, and owns the rules
that need no I/O:

- frames are at most :data:`MAX_MESSAGE_SIZE` (4 MiB) and are refused from
  the length prefix alone, before any allocation;
- from bitswap 1.1.0 a block travels as ``(prefix, data)`` where ``prefix`` is
  the CID without its digest (version, codec, multihash code, digest length);
  the receiver rebuilds the CID by hashing ``data``, so bytes that are corrupt
  simply name another CID — one nobody asked for;
- 1.0.0 peers get bare block data (``blocks``; CIDv0 implied), and no
  presences; 1.1.0 peers get ``payload`` blocks and no presences.

CIDs stay in their *wire form* here (a 34-byte CIDv0 multihash or a binary
CIDv1): a peer that asked for a CIDv0 must be answered with a CIDv0 prefix.
The service normalizes them with :func:`protocol.cid.normalize_cid`.
Uses py-libp2p's generated bitswap protobuf; nothing here touches trio.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError as _PbDecodeError
from libp2p.bitswap.pb.bitswap_pb2 import Message as _Pb
from libp2p.custom_types import TProtocol

from node.errors import NodeError
from protocol.cid import DAG_PB, SHA2_256, cid_bytes, decode_cid, encode_varint

__all__ = [
    "MAX_BLOCK_SIZE",
    "MAX_MESSAGE_SIZE",
    "PROTOCOLS",
    "PROTOCOL_V100",
    "PROTOCOL_V110",
    "PROTOCOL_V120",
    "BitswapError",
    "BitswapMessage",
    "Block",
    "BlockPresence",
    "FrameDecoder",
    "MessageError",
    "Presence",
    "WantEntry",
    "WantType",
    "cid_from_prefix",
    "decode_message",
    "encode_frame",
    "encode_message",
    "encode_prefix",
]

PROTOCOL_V120 = TProtocol("/ipfs/bitswap/1.2.0")
PROTOCOL_V110 = TProtocol("/ipfs/bitswap/1.1.0")
PROTOCOL_V100 = TProtocol("/ipfs/bitswap/1.0.0")
PROTOCOLS = (PROTOCOL_V120, PROTOCOL_V110, PROTOCOL_V100)  # our preference order

MAX_MESSAGE_SIZE = 4 << 20
MAX_BLOCK_SIZE = 1 << 20
_MAX_VARINT_LEN = 9
_V0_PREFIX = bytes((0, DAG_PB, SHA2_256, 32))


class BitswapError(NodeError):
    """Root of the bitswap errors (tree in :mod:`node.content.bitswap`)."""


class MessageError(BitswapError):
    """Bytes from a peer that are not a valid bitswap frame or message."""


class WantType(enum.IntEnum):
    BLOCK = 0
    HAVE = 1


class Presence(enum.IntEnum):
    HAVE = 0
    DONT_HAVE = 1


@dataclass(frozen=True, slots=True)
class WantEntry:
    """One wantlist entry; ``cancel=True`` revokes an earlier want for ``cid``."""

    cid: bytes
    want_type: WantType = WantType.BLOCK
    send_dont_have: bool = False
    cancel: bool = False
    priority: int = 1


@dataclass(frozen=True, slots=True)
class Block:
    """A block and its CID (on decode: rebuilt from the prefix and the data's hash)."""

    cid: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class BlockPresence:
    cid: bytes
    presence: Presence


@dataclass(frozen=True, slots=True)
class BitswapMessage:
    """One bitswap message. ``rejected`` lists blocks dropped on decode, and why."""

    wants: tuple[WantEntry, ...] = ()
    full: bool = False
    blocks: tuple[Block, ...] = ()
    presences: tuple[BlockPresence, ...] = ()
    rejected: tuple[str, ...] = ()



def _read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(value, next position), or None if ``buf`` ends inside the varint."""
    value = shift = 0
    for i in range(pos, min(len(buf), pos + _MAX_VARINT_LEN)):
        value |= (buf[i] & 0x7F) << shift
        if not buf[i] & 0x80:
            return value, i + 1
        shift += 7
    if len(buf) - pos >= _MAX_VARINT_LEN:
        raise MessageError(f"varint longer than {_MAX_VARINT_LEN} bytes")
    return None


def encode_prefix(cid: bytes) -> bytes:
    """The bitswap 1.1 block prefix of a wire CID (CIDv0 multihash or CIDv1)."""
    if len(cid) == 34 and cid[0] == SHA2_256 and cid[1] == 32:
        return _V0_PREFIX
    codec, hash_code, digest = decode_cid(cid)
    return b"\x01" + encode_varint(codec) + encode_varint(hash_code) + encode_varint(len(digest))


def cid_from_prefix(prefix: bytes, data: bytes) -> bytes:
    """Rebuild the wire CID of ``data`` from a block prefix; MessageError if unusable."""
    fields: list[int] = []
    pos = 0
    while pos < len(prefix) and len(fields) < 4:
        got = _read_varint(prefix, pos)
        if got is None:
            break
        fields.append(got[0])
        pos = got[1]
    if len(fields) != 4 or pos != len(prefix):
        raise MessageError(f"malformed block prefix {prefix.hex()}")
    version, codec, hash_code, length = fields
    if hash_code != SHA2_256 or length != 32:
        raise MessageError(f"unsupported multihash 0x{hash_code:x}/{length} in block prefix")
    if version == 0 and codec == DAG_PB:
        return bytes((SHA2_256, 32)) + hashlib.sha256(data).digest()
    if version == 1:
        return cid_bytes(data, codec)
    raise MessageError(f"unsupported CID version {version} / codec 0x{codec:x} in block prefix")


def encode_message(msg: BitswapMessage, protocol: str = PROTOCOL_V120) -> bytes:
    """Protobuf bytes of ``msg`` as a peer speaking ``protocol`` expects them."""
    v12 = protocol == PROTOCOL_V120
    pb = _Pb()
    if msg.wants or msg.full:
        pb.wantlist.full = msg.full
        for w in msg.wants:
            if w.want_type == WantType.HAVE and not v12:
                continue  # want-have does not exist before 1.2.0
            entry = pb.wantlist.entries.add()
            entry.block = w.cid
            entry.priority = w.priority
            entry.cancel = w.cancel
            if v12:
                entry.wantType = int(w.want_type)  # type: ignore[assignment]
                entry.sendDontHave = w.send_dont_have
    for b in msg.blocks:
        if protocol == PROTOCOL_V100:
            pb.blocks.append(b.data)
        else:
            pb.payload.add(prefix=encode_prefix(b.cid), data=b.data)
    if v12:
        for p in msg.presences:
            pb.blockPresences.add(cid=p.cid, type=int(p.presence))
    return pb.SerializeToString()


def encode_frame(payload: bytes) -> bytes:
    """Length-prefix one encoded message for the stream."""
    if len(payload) > MAX_MESSAGE_SIZE:
        raise MessageError(f"message of {len(payload)} bytes is over {MAX_MESSAGE_SIZE}")
    return encode_varint(len(payload)) + payload


def decode_message(payload: bytes, max_wants: int | None = None) -> BitswapMessage:
    """A :class:`BitswapMessage` from protobuf bytes; MessageError if malformed.

    With ``max_wants``, wantlist entries past that many are not decoded: they are
    reported in ``rejected`` (a 4 MiB frame holds ~87k wants, and building and
    normalizing each was 10% of a node's time under the mixed attack)."""
    pb = _Pb()
    try:
        pb.ParseFromString(payload)
    except (_PbDecodeError, ValueError) as exc:
        raise MessageError(f"not a bitswap message: {exc}") from None
    rejected: list[str] = []
    entries: Any = pb.wantlist.entries
    if max_wants is not None and len(entries) > max_wants:
        rejected.append(f"{len(entries) - max_wants} wants over the limit of {max_wants} "
                        "in one message")
        entries = entries[:max_wants]
    wants = tuple(
        WantEntry(
            cid=bytes(e.block),
            want_type=WantType.HAVE if e.wantType == 1 else WantType.BLOCK,
            send_dont_have=e.sendDontHave,
            cancel=e.cancel,
            priority=e.priority,
        )
        for e in entries
    )
    blocks: list[Block] = []
    for data in pb.blocks:  # 1.0.0: CIDv0 dag-pb implied
        if len(data) > MAX_BLOCK_SIZE:
            rejected.append(f"block of {len(data)} bytes is over {MAX_BLOCK_SIZE}")
            continue
        blocks.append(Block(bytes((SHA2_256, 32)) + hashlib.sha256(data).digest(), bytes(data)))
    for item in pb.payload:
        if len(item.data) > MAX_BLOCK_SIZE:
            rejected.append(f"block of {len(item.data)} bytes is over {MAX_BLOCK_SIZE}")
            continue
        try:
            blocks.append(Block(cid_from_prefix(bytes(item.prefix), item.data), bytes(item.data)))
        except MessageError as exc:
            rejected.append(str(exc))
    presences = tuple(
        BlockPresence(bytes(p.cid), Presence.DONT_HAVE if p.type == 1 else Presence.HAVE)
        for p in pb.blockPresences
    )
    full = pb.HasField("wantlist") and pb.wantlist.full
    return BitswapMessage(wants, full, tuple(blocks), presences, tuple(rejected))


class FrameDecoder:
    """Splits a byte stream into message payloads; refuses oversized frames early."""

    __slots__ = ("_buf", "_max")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._max = max_size

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes read from the stream; return every payload now complete."""
        self._buf += data
        frames: list[bytes] = []
        while True:
            got = _read_varint(self._buf, 0)
            if got is None:
                return frames
            length, start = got
            if length > self._max:
                raise MessageError(f"frame of {length} bytes is over the limit of {self._max}")
            if len(self._buf) - start < length:
                return frames
            frames.append(bytes(self._buf[start : start + length]))
            del self._buf[: start + length]

    @property
    def buffered(self) -> int:
        """Bytes held of an incomplete frame (nonzero at EOF means a truncated frame)."""
        return len(self._buf)
