"""py-libp2p drops an outbound RPC silently (a debug log) when a peer's queue is full;
gossip counts each dropped publish, split by whether the peer is a validator, so an
operator sees records that will reach a peer only by its next sync."""

from __future__ import annotations

from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from p2p_cluster import key

from node.core.metrics import Metrics
from node.p2p.gossip import CountingGossipSub
from node.p2p.peers import P2PCounters


def _router(counters: P2PCounters, validator: ID) -> CountingGossipSub:
    return CountingGossipSub(counters=counters, validators={validator},
                             protocols=[], degree=6, degree_low=4, degree_high=12)


def test_dropped_publishes_are_counted_by_peer_kind() -> None:
    metrics = Metrics()
    counters = P2PCounters(metrics=metrics)
    validator, stranger = (ID.from_base58(key(i).peer_id) for i in (0, 1))
    router = _router(counters, validator)
    publish = rpc_pb2.RPC(publish=[rpc_pb2.Message(data=b"records", topicIDs=["t"])])
    control = rpc_pb2.RPC(control=rpc_pb2.ControlMessage(
        ihave=[rpc_pb2.ControlIHave(topicID="t", messageIDs=[b"m"])]))
    router._handle_dropped_rpc(validator, publish, "queue_full")
    router._handle_dropped_rpc(stranger, publish, "queue_full")
    router._handle_dropped_rpc(stranger, publish, "queue_full")
    router._handle_dropped_rpc(stranger, control, "queue_full")  # no records lost
    assert counters.drops == {"to_validator": 1, "to_other": 2}
    text = metrics.render().decode()
    assert 'annot_gossip_drops_total{where="to_validator"} 1.0' in text
    assert 'annot_gossip_drops_total{where="to_other"} 2.0' in text
