"""py-libp2p's signed peer record, built and checked once, not on every pubsub RPC.

py-libp2p 0.8.1's pubsub puts the host's signed peer record (an Envelope) into
every RPC it sends and consumes the one in every RPC it receives
(``docs/upstream/py-libp2p.md``, bug 3):

- Sending, ``env_to_send_in_RPC(host)`` rebuilds the set of the host's listen
  addresses (``host.get_addrs()``: multiaddrs parsed and printed again) to see
  whether the cached record still matches, then marshals the envelope again.
  It runs once per published or forwarded message and once per IDONTWANT to
  each mesh peer. In issue 13's mixed attack it was 5% of a validator's CPU.
- Receiving, ``maybe_consume_signed_record`` parses the envelope, checks its
  signature and rewrites the peer's addresses in the peerstore, for every RPC
  (twice for one that carries control messages), though a peer's record only
  changes when its addresses do.

:func:`install` rebinds both names in py-libp2p's pubsub modules (the only
callers on a hot path) to the cached versions below; the behaviour is the
same. Our record is rebuilt by py-libp2p's own function at most every
``OWN_REFRESH_S``, so a new listen address is announced within that time. A
peer's record is consumed again when its bytes change, and at least every
``PEER_RECONSUME_S`` (py-libp2p's peerstore keeps the addresses 2 hours). An
invalid record is never cached: it is checked, and refused, every time.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import libp2p.pubsub.gossipsub as _gossipsub
import libp2p.pubsub.pubsub as _pubsub
from libp2p.peer import peerstore as _peerstore
from libp2p.pubsub import utils as _utils

OWN_REFRESH_S = 1.0
PEER_RECONSUME_S = 60.0
MAX_PEERS = 4_096  # consumed records remembered per host (oldest forgotten first)

_build = _peerstore.env_to_send_in_RPC
_consume = _utils.maybe_consume_signed_record
_own: weakref.WeakKeyDictionary[Any, tuple[float, bytes]] = weakref.WeakKeyDictionary()
_seen: weakref.WeakKeyDictionary[Any, dict[Any, tuple[float, bytes]]] = (
    weakref.WeakKeyDictionary())


def env_to_send_in_rpc(host: Any) -> tuple[bytes, bool]:
    """``env_to_send_in_RPC`` with its answer kept ``OWN_REFRESH_S`` per host."""
    now = time.monotonic()
    hit = _own.get(host)
    if hit is not None and now - hit[0] < OWN_REFRESH_S:
        return hit[1], False
    env, fresh = _build(host)
    _own[host] = (now, env)
    return env, fresh


def maybe_consume_signed_record(msg: Any, host: Any, peer_id: Any) -> bool:
    """``maybe_consume_signed_record``, skipped for the bytes this peer's last accepted
    record had (within ``PEER_RECONSUME_S``)."""
    if not msg.HasField("senderRecord"):
        return True
    data = msg.senderRecord
    now = time.monotonic()
    seen = _seen.get(host)
    if seen is None:
        seen = _seen[host] = {}
    last = seen.get(peer_id)
    if last is not None and last[1] == data and now - last[0] < PEER_RECONSUME_S:
        return True
    ok = bool(_consume(msg, host, peer_id))
    seen.pop(peer_id, None)
    if ok:
        seen[peer_id] = (now, data)
        while len(seen) > MAX_PEERS:
            del seen[next(iter(seen))]
    return ok


def install() -> None:
    """Point py-libp2p's pubsub at the cached versions (idempotent)."""
    for module in (_gossipsub, _pubsub):
        module.env_to_send_in_RPC = env_to_send_in_rpc  # type: ignore[attr-defined]
        module.maybe_consume_signed_record = maybe_consume_signed_record  # type: ignore[attr-defined]
