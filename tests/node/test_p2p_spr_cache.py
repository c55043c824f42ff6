"""Our signed peer record is built once, a peer's is checked once (node/p2p/spr_cache.py).

py-libp2p 0.8.1 rebuilds the host's record for every pubsub RPC it sends and
checks the sender's for every RPC it receives (docs/upstream/py-libp2p.md,
bug 3; ``tests/upstream/repro_pylibp2p_pubsub.py spr``)."""

from __future__ import annotations

from typing import Any

import libp2p.pubsub.gossipsub as gossipsub_mod
import libp2p.pubsub.pubsub as pubsub_mod
import pytest
from libp2p.peer import peerstore
from libp2p.pubsub import utils as pubsub_utils
from libp2p.pubsub.pb import rpc_pb2

from node.core.config import Config
from node.p2p import spr_cache
from node.p2p.host import open_host
from protocol.keys import SigningKey


def _count(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    calls = [0]
    real = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, counted)
    return calls


async def test_own_record_is_built_once_per_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_host(SigningKey(b"\x31" * 32), Config.for_tests().p2p) as h:
        raw = h.raw
        stock, _ = peerstore.env_to_send_in_RPC(raw)
        calls = _count(monkeypatch, raw, "get_addrs")
        got = {spr_cache.env_to_send_in_rpc(raw)[0] for _ in range(200)}
        assert got == {stock}  # the same bytes py-libp2p sends
        assert calls[0] == 1, calls  # stock: 200 (one per RPC)
        # past the refresh, py-libp2p's own function looks again
        later = spr_cache.time.monotonic() + spr_cache.OWN_REFRESH_S + 1
        monkeypatch.setattr(spr_cache.time, "monotonic", lambda: later)
        assert spr_cache.env_to_send_in_rpc(raw)[0] == stock
        assert calls[0] == 2


async def test_a_peer_record_is_checked_once_and_a_bad_one_every_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config.for_tests().p2p
    async with open_host(SigningKey(b"\x32" * 32), cfg) as a, \
            open_host(SigningKey(b"\x33" * 32), cfg) as b:
        env, _ = peerstore.env_to_send_in_RPC(b.raw)
        good = rpc_pb2.RPC(senderRecord=env)
        calls = _count(monkeypatch, pubsub_utils, "consume_envelope")
        b_id = b.raw.get_id()
        for _ in range(100):
            assert spr_cache.maybe_consume_signed_record(good, a.raw, b_id)
        assert calls[0] == 1, calls  # stock: 100
        assert a.raw.get_peerstore().get_peer_record(b_id) is not None
        # a record for another peer id, or a broken one: refused, and never remembered
        c_id = a.raw.get_id()
        bad = rpc_pb2.RPC(senderRecord=env[:-1] + bytes([env[-1] ^ 1]))
        for _ in range(3):
            assert not spr_cache.maybe_consume_signed_record(good, a.raw, c_id)
            assert not spr_cache.maybe_consume_signed_record(bad, a.raw, b_id)
        assert calls[0] == 1 + 6
        # the good record after a bad one from the same peer is checked again
        assert spr_cache.maybe_consume_signed_record(good, a.raw, b_id)
        assert calls[0] == 8
        assert spr_cache.maybe_consume_signed_record(rpc_pb2.RPC(), a.raw, b_id)  # none sent


def test_install_points_pubsub_at_the_cached_versions() -> None:
    spr_cache.install()
    for module in (gossipsub_mod, pubsub_mod):
        assert module.env_to_send_in_RPC is spr_cache.env_to_send_in_rpc
        assert module.maybe_consume_signed_record is spr_cache.maybe_consume_signed_record
