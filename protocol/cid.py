"""Content identifiers: CIDv1 over sha2-256, as IPFS computes them.

Every record and every block in annot is named by a CIDv1:

    <version=1 varint><codec varint><multihash: 0x12 varint, 0x20 varint, 32-byte digest>

printed in multibase base32 lower (``b`` prefix), exactly as Kubo prints
CIDv1. CIDv0 strings (``Qm…``, base58btc of a bare sha2-256 multihash) are
accepted on input and converted to the equivalent CIDv1 dag-pb binary form,
so one block has one binary name inside annot.

The binary form is what callers compare and store; strings are for people
and for the Kubo RPC. Everything here is pure and cheap: record ids are
computed on a hot path, so nothing is cached and nothing is allocated twice.
Malformed input raises :class:`~protocol.errors.CidError`; bytes that do not
hash to their CID raise :class:`~protocol.errors.BlockMismatchError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import base58

from protocol.errors import BlockMismatchError, CidError

__all__ = [
    "DAG_PB",
    "RAW",
    "SHA2_256",
    "cid_bytes",
    "cid_from_str",
    "cid_str",
    "cid_to_str",
    "decode_cid",
    "normalize_cid",
    "verify_block",
]

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12

_SHA2_256_LEN = 32
_MAX_DIGEST_LEN = 128  # generous for any real multihash; bounds what we accept
_MAX_VARINT_LEN = 9  # the multiformats unsigned-varint spec limit
_MAX_CID_STR_LEN = 512

# CIDv1 + raw + sha2-256 is the common case: precompute its 4-byte prefix.
_PREFIX_RAW = bytes((1, RAW, SHA2_256, _SHA2_256_LEN))
_PREFIX_DAG_PB = bytes((1, DAG_PB, SHA2_256, _SHA2_256_LEN))
_B32_ALPHABET = frozenset(b"abcdefghijklmnopqrstuvwxyz234567")


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128 varint, as multiformats and protobuf use."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    """Read a minimal unsigned varint at ``pos``; return (value, next position)."""
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= len(buf):
            raise CidError(f"CID truncated inside the {what} varint")
        if pos - start >= _MAX_VARINT_LEN:
            raise CidError(f"CID {what} varint is longer than {_MAX_VARINT_LEN} bytes")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and pos - start > 1:
                raise CidError(f"CID {what} varint is not minimally encoded")
            return value, pos
        shift += 7


def cid_bytes(data: bytes, codec: int = RAW) -> bytes:
    """The binary CIDv1 (sha2-256) of a block with the given multicodec."""
    return cid_from_digest(hashlib.sha256(data).digest(), codec)


def cid_from_digest(digest: bytes, codec: int = RAW) -> bytes:
    """The binary CIDv1 of a block whose sha2-256 digest is ``digest``."""
    if len(digest) != _SHA2_256_LEN:
        raise CidError(f"a sha2-256 digest is {_SHA2_256_LEN} bytes, got {len(digest)}")
    if codec == RAW:
        return _PREFIX_RAW + digest
    if codec == DAG_PB:
        return _PREFIX_DAG_PB + digest
    if codec < 0:
        raise CidError(f"codec must be a non-negative integer, got {codec}")
    return b"\x01" + encode_varint(codec) + bytes((SHA2_256, _SHA2_256_LEN)) + digest


def decode_cid(cid: bytes) -> tuple[int, int, bytes]:
    """Split a binary CIDv1 into (codec, hash code, digest), validating its structure."""
    if not isinstance(cid, bytes | bytearray | memoryview):
        raise CidError(f"a binary CID must be bytes, got {type(cid).__name__}")
    cid = bytes(cid)
    if len(cid) == 34 and cid[0] == SHA2_256 and cid[1] == _SHA2_256_LEN:
        raise CidError("binary CIDv0 given where a CIDv1 is expected (use normalize_cid)")
    if not cid:
        raise CidError("empty CID")
    version, pos = _read_varint(cid, 0, "version")
    if version != 1:
        raise CidError(f"unsupported CID version {version}")
    codec, pos = _read_varint(cid, pos, "codec")
    hash_code, pos = _read_varint(cid, pos, "multihash code")
    length, pos = _read_varint(cid, pos, "digest length")
    if length > _MAX_DIGEST_LEN:
        raise CidError(f"CID digest length {length} is over the limit of {_MAX_DIGEST_LEN}")
    digest = cid[pos:]
    if len(digest) != length:
        raise CidError(f"CID digest is {len(digest)} bytes, its multihash says {length}")
    if hash_code == SHA2_256 and length != _SHA2_256_LEN:
        raise CidError(f"sha2-256 digest must be 32 bytes, got {length}")
    return codec, hash_code, digest


def normalize_cid(cid: bytes) -> bytes:
    """Return the CIDv1 binary form of a binary CIDv0 or CIDv1, validated."""
    if len(cid) == 34 and cid[0] == SHA2_256 and cid[1] == _SHA2_256_LEN:
        return _PREFIX_DAG_PB + bytes(cid[2:])
    decode_cid(cid)
    return bytes(cid)


def cid_to_str(cid: bytes) -> str:
    """Multibase base32 lower (``b…``) text of a binary CIDv1."""
    decode_cid(cid)
    return "b" + base64.b32encode(cid).decode("ascii").rstrip("=").lower()


def cid_str(data: bytes, codec: int = RAW) -> str:
    """The CIDv1 string of a block: ``cid_to_str(cid_bytes(data, codec))``."""
    cid = cid_bytes(data, codec)
    return "b" + base64.b32encode(cid).decode("ascii").rstrip("=").lower()


def cid_from_str(s: str) -> bytes:
    """Parse a CIDv1 base32 string (or a CIDv0 ``Qm…``) into binary CIDv1."""
    if not isinstance(s, str):
        raise CidError(f"a CID string must be str, got {type(s).__name__}")
    if not s:
        raise CidError("empty CID string")
    if len(s) > _MAX_CID_STR_LEN:
        raise CidError(f"CID string is {len(s)} characters, over the limit of {_MAX_CID_STR_LEN}")
    if len(s) == 46 and s.startswith("Qm"):
        return _parse_v0(s)
    prefix, body = s[0], s[1:]
    if prefix == "b":
        text = body
    elif prefix == "B":
        text = body.lower()
    else:
        raise CidError(f"unsupported CID multibase prefix {prefix!r} in {s!r} (want base32 'b')")
    raw = text.encode("ascii", "replace")
    if not raw or not _B32_ALPHABET.issuperset(raw):
        raise CidError(f"CID {s!r} is not valid base32")
    padded = raw.upper() + b"=" * (-len(raw) % 8)
    try:
        cid = base64.b32decode(padded)
    except (binascii.Error, ValueError) as exc:
        raise CidError(f"CID {s!r} is not valid base32: {exc}") from None
    # Reject non-canonical text: trailing bits must be zero, so it re-encodes identically.
    if base64.b32encode(cid).rstrip(b"=").lower() != raw:
        raise CidError(f"CID {s!r} is not canonical base32")
    decode_cid(cid)
    return cid


def _parse_v0(s: str) -> bytes:
    try:
        mh = base58.b58decode(s)
    except ValueError as exc:
        raise CidError(f"CIDv0 {s!r} is not valid base58: {exc}") from None
    if len(mh) != 34 or mh[0] != SHA2_256 or mh[1] != _SHA2_256_LEN:
        raise CidError(f"CIDv0 {s!r} is not a sha2-256 multihash")
    return _PREFIX_DAG_PB + mh[2:]


def verify_block(cid: bytes, data: bytes) -> None:
    """Check that ``data`` hashes to ``cid``; raise BlockMismatchError if not."""
    codec, hash_code, digest = decode_cid(cid)
    if hash_code != SHA2_256:
        raise CidError(f"unsupported multihash code 0x{hash_code:x} (only sha2-256)")
    actual = hashlib.sha256(data).digest()
    if actual != digest:
        raise BlockMismatchError(cid_to_str(cid), cid_str(data, codec))
