"""Ed25519 keys and libp2p peer ids.

A participant is named by its libp2p peer id: the base58btc identity multihash
of the protobuf ``PublicKey{Type: Ed25519, Data: key}``, which always starts
``12D3KooW``. The public key, and so every signature, can be checked from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import base58
import nacl.exceptions
import nacl.signing

from protocol.errors import KeyError_, SignatureError

# protobuf PublicKey{Type=1 (Ed25519), Data=<32 bytes>} and the identity multihash header
_PB_PREFIX = b"\x08\x01\x12\x20"
_MH_PREFIX = b"\x00\x24"
_PEER_ID_PREFIX = _MH_PREFIX + _PB_PREFIX


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key, made from a 32-byte seed."""

    seed: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise KeyError_("an Ed25519 seed is exactly 32 bytes")

    @property
    def _nacl(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @property
    def public_key(self) -> bytes:
        return bytes(self._nacl.verify_key)

    @property
    def peer_id(self) -> str:
        return peer_id_from_public_key(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._nacl.sign(message).signature)

    def __repr__(self) -> str:  # never print the seed
        return f"SigningKey({self.peer_id})"


class Signer:
    """A signing key with its NaCl object built once, for hot paths."""

    __slots__ = ("_key", "peer_id", "public_key")

    def __init__(self, key: SigningKey) -> None:
        self._key = nacl.signing.SigningKey(key.seed)
        self.public_key = bytes(self._key.verify_key)
        self.peer_id = peer_id_from_public_key(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)


def _b58(raw: bytes) -> str:
    return base58.b58encode(raw).decode("ascii")


def peer_id_from_public_key(public_key: bytes) -> str:
    if len(public_key) != 32:
        raise KeyError_(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return _b58(_PEER_ID_PREFIX + public_key)


def public_key_from_peer_id(peer_id: str) -> bytes:
    """The Ed25519 public key a peer id names; ``KeyError_`` if it names none."""
    if not isinstance(peer_id, str) or not peer_id:
        raise KeyError_("peer id must be a non-empty string")
    try:
        raw = base58.b58decode(peer_id.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise KeyError_(f"peer id {peer_id!r} is not base58btc") from None
    if len(raw) != 38 or not raw.startswith(_PEER_ID_PREFIX) or _b58(raw) != peer_id:
        raise KeyError_(f"peer id {peer_id!r} does not name an Ed25519 key (want 12D3KooW…)")
    return raw[len(_PEER_ID_PREFIX):]


def verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise ``SignatureError`` unless ``signature`` is ``public_key``'s over ``message``."""
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        raise SignatureError(
            f"signature does not verify for {peer_id_from_public_key(public_key)}"
        ) from None
