"""annot's libp2p networking: host, gossip, sync and peer bookkeeping.

    host.py    open_host / P2PHost (Noise-only, Yamux, TCP), serve_bootstrap, bans
    gossip.py  Gossip: topic validator, ingest queue, batching publisher
    sync.py    Sync: /annot/sync/1.1.0 (and 1.0.0) vector-clock sync, scheduler
    sync_serve.py  what the sync server sends a peer, and what not again
    frames.py  pure codecs for gossip batches and sync frames
    peers.py   counters, invalid-message scores, ban list (with reasons)
    health.py  per-peer sync health and the p2p layer's Prometheus metrics
    safe_pubsub.py  py-libp2p's Pubsub with three upstream bugs fixed (docs/upstream/)
    spr_cache.py  py-libp2p's per-RPC signed peer record, built and checked once
    stack.py   serve_p2p / P2PNode: the whole stack in one nursery
"""

from node.p2p.frames import SYNC_PROTOCOL, FrameError, NetworkMismatchError
from node.p2p.gossip import Gossip, OnRecords, serve_gossip
from node.p2p.host import ConnEvent, DialError, P2PHost, open_host, serve_bootstrap
from node.p2p.peers import BanList, P2PCounters, PeerScores
from node.p2p.stack import P2PNode, serve_p2p
from node.p2p.sync import Sync, SyncError, serve_sync

__all__ = [
    "SYNC_PROTOCOL", "BanList", "ConnEvent", "DialError", "FrameError", "Gossip",
    "NetworkMismatchError", "OnRecords", "P2PCounters", "P2PHost", "P2PNode", "PeerScores",
    "Sync", "SyncError", "open_host", "serve_bootstrap", "serve_gossip", "serve_p2p",
    "serve_sync",
]
