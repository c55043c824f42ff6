"""Ed25519 keys and libp2p peer ids (libp2p agreement: tests/node/test_libp2p_identity.py)."""

from __future__ import annotations

from typing import Any

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import KeyError_, ProtocolError, SignatureError
from protocol.keys import (
    Signer,
    SigningKey,
    peer_id_from_public_key,
    public_key_from_peer_id,
    verify,
)

# RFC 8032, section 7.1, TEST 1
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701"
    "cf9b46bd25bf5f0595bbe24655141438e7a100b")
PEER = SigningKey(bytes(range(32))).peer_id


def test_rfc8032_vector() -> None:
    key = SigningKey(RFC_SEED)
    assert key.public_key == RFC_PUB
    assert key.sign(b"") == RFC_SIG
    assert Signer(key).sign(b"") == RFC_SIG
    verify(RFC_PUB, b"", RFC_SIG)


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=200))
def test_sign_verify_and_signer_agree(seed: bytes, msg: bytes) -> None:
    key = SigningKey(seed)
    signer = Signer(key)
    assert signer.public_key == key.public_key and signer.peer_id == key.peer_id
    sig = key.sign(msg)
    assert len(sig) == 64 and signer.sign(msg) == sig
    verify(key.public_key, msg, sig)
    with pytest.raises(SignatureError):
        verify(key.public_key, msg + b"!", sig)


@given(st.binary(min_size=32, max_size=32))
def test_peer_id_round_trip(public_key: bytes) -> None:
    pid = peer_id_from_public_key(public_key)
    assert pid.startswith("12D3KooW")
    assert public_key_from_peer_id(pid) == public_key


@given(st.binary(min_size=32, max_size=32))
def test_peer_id_is_identity_multihash_of_protobuf_key(seed: bytes) -> None:
    key = SigningKey(seed)
    raw = base58.b58decode(key.peer_id)
    # multihash identity (0x00), length 36, protobuf {Type: Ed25519 (1), Data: 32 bytes}
    assert raw == b"\x00\x24" + b"\x08\x01\x12\x20" + key.public_key


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), "0" * 32, bytearray(32), None],
                         ids=repr)
def test_bad_seed(seed: Any) -> None:
    with pytest.raises(KeyError_):
        SigningKey(seed)


def test_repr_never_shows_the_seed() -> None:
    key = SigningKey(bytes(range(32)))
    text = repr(key)
    assert key.peer_id in text
    assert bytes(range(32)).hex() not in text and "\\x00\\x01" not in text


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_public_key_of_wrong_size(size: int) -> None:
    with pytest.raises(KeyError_):
        peer_id_from_public_key(bytes(size))


def _b58(raw: bytes) -> str:
    return base58.b58encode(raw).decode()


MALFORMED = {
    "empty": "",
    "none": None,
    "bytes": PEER.encode(),
    "int": 12,
    "not-base58-0": "12D3KooW0000",
    "not-base58-l": "12D3KooWlllllllllllllllllllllllllllllllllllllll",
    "non-ascii": "12D3KooWé",
    "space": " " + PEER,
    # base58's decoder strips trailing whitespace: these must not alias the real id
    "newline": PEER + "\n",
    "trailing-space": PEER + " ",
    "trailing-tab": PEER + "\t",
    "crlf": PEER + "\r\n",
    "truncated": PEER[:-1],
    "extended": PEER + "1",
    "leading-1": "1" + PEER,
    "rsa-style-Qm": "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
    "cidv1": "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
    # secp256k1 key (type 2, 33 bytes) in an identity multihash: a real libp2p id, not Ed25519
    "secp256k1": _b58(b"\x00\x25\x08\x02\x12\x21" + b"\x02" * 33),
    # Ed25519 protobuf behind a sha2-256 multihash code
    "sha256-code": _b58(b"\x12\x24\x08\x01\x12\x20" + bytes(32)),
    "wrong-type": _b58(b"\x00\x24\x08\x00\x12\x20" + bytes(32)),
    "short-key": _b58(b"\x00\x23\x08\x01\x12\x1f" + bytes(31)),
}


@pytest.mark.parametrize("peer_id", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_peer_ids(peer_id: Any) -> None:
    with pytest.raises(KeyError_):
        public_key_from_peer_id(peer_id)


@given(st.text(max_size=60))
def test_any_text_is_a_peer_id_or_key_error(text: str) -> None:
    try:
        pk = public_key_from_peer_id(text)
    except KeyError_:
        return
    assert peer_id_from_public_key(pk) == text


def test_verify_rejects_bad_signatures() -> None:
    key = SigningKey(bytes(range(32)))
    sig = key.sign(b"m")
    for bad in (sig[:-1], sig + b"\x00", bytes(64), b"", bytes([sig[0] ^ 1]) + sig[1:],
                sig[:32] + bytes([sig[32] ^ 1]) + sig[33:]):
        with pytest.raises(SignatureError):
            verify(key.public_key, b"m", bad)
    other = SigningKey(bytes(32)).public_key
    with pytest.raises(SignatureError):
        verify(other, b"m", sig)


def test_verify_rejects_non_canonical_s() -> None:
    """S + L is the textbook malleated Ed25519 signature; libsodium must refuse it."""
    ell = 2**252 + 27742317777372353535851937790883648493
    key = SigningKey(bytes(range(32)))
    sig = key.sign(b"m")
    s = int.from_bytes(sig[32:], "little") + ell
    if s < 2**256:
        with pytest.raises(SignatureError):
            verify(key.public_key, b"m", sig[:32] + s.to_bytes(32, "little"))


def test_verify_with_a_malformed_key_is_a_protocol_error() -> None:
    sig = SigningKey(bytes(32)).sign(b"m")
    with pytest.raises(ProtocolError):
        verify(bytes(31), b"m", sig)
