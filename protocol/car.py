"""CARv1 archives: the block container ``ipfs dag import`` and ``ipfs dag export`` use.

Layout (https://ipld.io/specs/transport/car/carv1/)::

    varint(len(header)) header   header = dag-cbor {"roots": [CID, ...], "version": 1}
    varint(len(cid) + len(data)) cid data      (once per block)

The header is hand-encoded canonical dag-cbor (map keys "roots" then "version",
each CID as tag 42 over a 0x00-prefixed binary CID), so one set of roots always
gives the same bytes. :func:`decode_car` reads an archive back, checking every
block against its CID; malformed input raises :class:`~protocol.errors.DecodeError`,
a block that does not hash to its CID raises
:class:`~protocol.errors.BlockMismatchError`.
"""

from __future__ import annotations

from collections.abc import Iterator

from protocol.cid import encode_varint, normalize_cid, verify_block
from protocol.errors import DecodeError
from protocol.unixfs import Block

__all__ = ["decode_car", "encode_car_block", "encode_car_header", "iter_car"]

MAX_HEADER = 1 << 20
MAX_SECTION = 4 << 20  # a block (1 MiB at most on IPFS) plus its CID, generously


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes((major << 5 | n,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes((major << 5 | info,)) + n.to_bytes(size, "big")
    raise ValueError("CBOR length over 64 bits")


def encode_car_header(roots: list[bytes]) -> bytes:
    """The length-prefixed CARv1 header naming ``roots``."""
    body = bytearray(b"\xa2\x65roots")
    body += _cbor_head(4, len(roots))
    for root in roots:
        cid = b"\x00" + normalize_cid(root)
        body += b"\xd8\x2a" + _cbor_head(2, len(cid)) + cid
    body += b"\x67version\x01"
    return encode_varint(len(body)) + bytes(body)


def encode_car_block(cid: bytes, data: bytes) -> bytes:
    """One length-prefixed CARv1 section: the block's binary CID, then its bytes."""
    cid = normalize_cid(cid)
    return encode_varint(len(cid) + len(data)) + cid + data


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("CAR truncated inside a varint")
        if shift > 56:
            raise DecodeError("CAR varint too long")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _header_roots(header: bytes) -> list[bytes]:
    if not header.startswith(b"\xa2\x65roots") or not header.endswith(b"\x67version\x01"):
        raise DecodeError("CAR header is not {roots, version: 1} in canonical dag-cbor")
    pos = 7
    head = header[pos]
    if head >> 5 != 4:
        raise DecodeError("CAR header roots is not an array")
    count, pos = _cbor_uint(header, pos)
    roots = []
    for _ in range(count):
        if header[pos : pos + 2] != b"\xd8\x2a" or header[pos + 2] >> 5 != 2:
            raise DecodeError("CAR header root is not a tag-42 CID")
        length, pos = _cbor_uint(header, pos + 2)
        raw = header[pos : pos + length]
        if len(raw) != length or not raw.startswith(b"\x00"):
            raise DecodeError("CAR header root CID malformed")
        roots.append(normalize_cid(raw[1:]))
        pos += length
    if pos != len(header) - 9:
        raise DecodeError("CAR header has trailing bytes")
    return roots


def _cbor_uint(buf: bytes, pos: int) -> tuple[int, int]:
    info = buf[pos] & 0x1F
    if info < 24:
        return info, pos + 1
    size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if size is None or pos + 1 + size > len(buf):
        raise DecodeError("CAR header has a bad CBOR length")
    return int.from_bytes(buf[pos + 1 : pos + 1 + size], "big"), pos + 1 + size


def _split_cid(section: bytes) -> int:
    """The length of the CIDv1 at the start of a section."""
    pos = 0
    for _ in range(3):  # version, codec, multihash code
        _, pos = _varint(section, pos)
    length, pos = _varint(section, pos)
    return pos + length


def iter_car(car: bytes) -> tuple[list[bytes], Iterator[Block]]:
    """(roots, an iterator of verified (cid, data) blocks) of a CARv1 archive."""
    size, pos = _varint(car, 0)
    if size > MAX_HEADER or pos + size > len(car):
        raise DecodeError(f"CAR header of {size} bytes is truncated or too large")
    roots = _header_roots(car[pos : pos + size])

    def blocks(pos: int) -> Iterator[Block]:
        while pos < len(car):
            size, pos = _varint(car, pos)
            if size > MAX_SECTION or pos + size > len(car):
                raise DecodeError(f"CAR section of {size} bytes is truncated or too large")
            section = car[pos : pos + size]
            cut = _split_cid(section)
            if cut > len(section):
                raise DecodeError("CAR section shorter than its CID")
            cid = normalize_cid(section[:cut])
            verify_block(cid, section[cut:])
            yield cid, section[cut:]
            pos += size

    return roots, blocks(pos + size)


def decode_car(car: bytes) -> tuple[list[bytes], dict[bytes, bytes]]:
    """(roots, cid → data) of a whole CARv1 archive, every block verified."""
    roots, blocks = iter_car(car)
    return roots, dict(blocks)
