"""protocol.keys agrees with py-libp2p on Ed25519 peer ids (kept out of tests/protocol,
which must not import libp2p)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from protocol.keys import SigningKey, public_key_from_peer_id, verify

SEEDS = [bytes(range(32)), bytes(32), b"\xff" * 32, b"annot" + bytes(27)]


def _ours_and_theirs(seed: bytes) -> tuple[SigningKey, str]:
    kp = create_new_key_pair(seed)
    return SigningKey(seed), ID.from_pubkey(kp.public_key).to_base58()


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s[:4].hex())
def test_peer_id_matches_libp2p(seed: bytes) -> None:
    ours, theirs = _ours_and_theirs(seed)
    assert ours.peer_id == theirs
    assert theirs.startswith("12D3KooW")


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_peer_id_matches_libp2p_for_any_seed(seed: bytes) -> None:
    ours, theirs = _ours_and_theirs(seed)
    assert ours.peer_id == theirs


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s[:4].hex())
def test_public_key_extracted_by_libp2p_matches(seed: bytes) -> None:
    key = SigningKey(seed)
    extracted = ID.from_base58(key.peer_id).extract_public_key()
    assert extracted is not None
    assert extracted.to_bytes() == key.public_key == public_key_from_peer_id(key.peer_id)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s[:4].hex())
def test_signatures_cross_verify(seed: bytes) -> None:
    kp = create_new_key_pair(seed)
    key = SigningKey(seed)
    verify(key.public_key, b"hello", kp.private_key.sign(b"hello"))
    assert kp.public_key.verify(b"hello", key.sign(b"hello"))
