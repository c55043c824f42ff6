"""Gossip between real in-process nodes: batching, validation, penalties."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
from p2p_cluster import key, make_genesis, make_records, open_cluster, p2p_config, wait_until

from node.core.config import Config, GossipConfig, SyncConfig
from node.p2p.frames import FrameError, decode_batch, encode_batch
from protocol.encoding import encode_canonical
from protocol.genesis import Genesis, Validator
from protocol.records import Annotation, Record


def gossip_only(**gossip: Any) -> Config:
    """Periodic sync off, so only gossip can deliver what a test publishes."""
    return replace(p2p_config(**gossip), sync=SyncConfig(interval_s=1000))


def test_batch_codec_is_strict() -> None:
    recs = [b"a" * 10, b"b" * 20]
    assert decode_batch(encode_batch(recs), 4, 100) == recs
    with pytest.raises(FrameError, match="non-empty list"):
        decode_batch(encode_batch([]), 4, 100)
    with pytest.raises(FrameError, match="limit"):
        decode_batch(encode_batch([b"x"] * 5), 4, 100)
    with pytest.raises(FrameError, match="expected record bytes"):
        decode_batch(encode_canonical(["t"]), 4, 100)
    with pytest.raises(FrameError):
        decode_batch(b"\xc1garbage", 4, 100)


async def test_published_records_reach_every_node(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_cluster(tmp_path, 3, config=gossip_only()) as c:
            await c.connect(1, 0)
            await c.connect(2, 0)
            await wait_until(lambda: len(c.nodes[0].peers()) == 2)
            records = make_records(c.genesis, key(0), range(1, 301))
            c.stores[0].save_records(records)
            for r in records:
                assert c.nodes[0].publish_nowait(r.data)
            await wait_until(lambda: c.stores[1].count() == 300 and c.stores[2].count() == 300)
            # batched: the 300 records queued at once leave in full batches (256 + 44),
            # 2 messages, not one per record; our own messages not ingested
            per_batch = GossipConfig().batch_max_records
            assert c.nodes[0].counters.gossip_out == -(-300 // per_batch) == 2
            assert c.nodes[0].counters.gossip_records_out == 300
            assert c.received[0] == []
            assert c.nodes[1].counters.rejected == {}


async def test_invalid_gossip_is_rejected_and_forwarder_banned(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture
                                                               ) -> None:
    config = gossip_only(invalid_threshold=3)
    other = make_genesis("another-network")
    with trio.fail_after(20):
        async with open_cluster(tmp_path, 3, config=config) as c:
            honest, victim, bad = c.nodes
            await c.connect(1, 0)
            await c.connect(2, 1)
            await wait_until(lambda: len(victim.peers()) == 2)
            good = make_records(c.genesis, key(0), range(1, 3))
            forged = make_records(c.genesis, key(2), [1])[0]
            forged_data = forged.data[:-70] + forged.data[-70:].replace(forged.signature,
                                                                        bytes(64))
            wrong_net = make_records(other, key(2), [1])[0].data
            # each bad message carries a valid record too: the whole message is rejected
            await bad.gossip.publish_payload(encode_batch([good[0].data, forged_data]))
            await bad.gossip.publish_payload(encode_batch([wrong_net]))
            await wait_until(lambda: sum(victim.counters.rejected.values()) == 2)
            assert victim.counters.rejected == {"SignatureError": 1, "WrongNetworkError": 1}
            assert bad.peer_id in victim.peers()
            await bad.gossip.publish_payload(b"\x92garbage")
            await wait_until(lambda: bad.peer_id not in victim.peers())
            assert victim.host.is_banned(bad.peer_id)
            assert victim.counters.rejected["FrameError"] == 1
            assert c.stores[1].count() == 0
            assert "rejected message forwarded by " + bad.peer_id in caplog.text
            # honest traffic continues
            c.stores[0].save_records(good)
            for r in good:
                honest.publish_nowait(r.data)
            await wait_until(lambda: c.stores[1].count() == 2)
            assert bad.peer_id not in victim.peers()


async def test_full_buffer_drops_from_gossip_only(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_cluster(tmp_path, 1) as c:
            node = c.nodes[0]
            big = b"x" * 1_000_001
            assert not node.publish_nowait(big)
            assert node.counters.gossip_dropped == 1


async def test_throughput_batched_vs_single(tmp_path: Path) -> None:
    n = 1000
    results = {}
    # three validators: a publisher waits for a validator's full queue (anyone else
    # holds it a bounded share of the time, then syncs what gossip dropped)
    three = Genesis(name="p2p-test", validators=tuple(Validator(key(i).peer_id, 1)
                                                      for i in range(3)))
    for label, cfg in (("batched", gossip_only()),
                       ("one-per-message", gossip_only(batch_max_records=1))):
        with trio.fail_after(60):
            async with open_cluster(tmp_path / label, 3, config=cfg, genesis=three) as c:
                await c.connect(1, 0)
                await c.connect(2, 0)
                await wait_until(lambda: len(c.nodes[0].peers()) == 2)
                await trio.sleep(0.5)
                records: list[Record] = make_records(c.genesis, key(0), range(1, n + 1))
                c.stores[0].save_records(records)
                t0 = trio.current_time()
                for r in records:
                    c.nodes[0].publish_nowait(r.data)
                with trio.move_on_after(30):
                    await wait_until(lambda: min(s.count() for s in c.stores[1:]) == n,
                                     timeout=30, step=0.01)
                dt = trio.current_time() - t0
                got = min(s.count() for s in c.stores[1:])
                results[label] = (got, got / dt)
    for label, (got, rate) in results.items():
        print(f"gossip {label}: {got}/{n} records at both peers, {rate:,.0f} records/s")
    assert results["batched"][0] == results["one-per-message"][0] == n


async def test_records_waiting_for_their_task_are_kept_but_not_relayed(tmp_path: Path) -> None:
    """gossipsub v1.1's "ignore": a message with a record for a task not here yet is
    handed to ingest (its pool) but not relayed, and its sender is not charged.
    Relayed, a flood of such records from fresh keys reached every node once from its
    sender and again from every node that relayed it (issue 13's Sybil volume)."""
    def no_waiting(records: list[Record]) -> tuple[str | None, bool]:
        return None, not any(isinstance(r.body, Annotation) and r.body.label == "wait"
                             for r in records)
    with trio.fail_after(30):
        async with open_cluster(tmp_path, 3, config=gossip_only()) as c:
            sender, relay, far = c.nodes
            relay.set_screen(no_waiting)
            await c.connect(1, 0)
            await c.connect(2, 1)  # far hears only what relay forwards
            await wait_until(lambda: len(relay.peers()) == 2)
            for node in (relay, far):
                await wait_until(lambda n=node: bool(n.gossip.pubsub.peer_topics.get(
                    n.gossip.topic)))
            await trio.sleep(1.0)  # the mesh
            waiting = make_records(c.genesis, key(4), [1, 2], label="wait")
            await sender.gossip.publish_payload(encode_batch([r.data for r in waiting]))
            await wait_until(lambda: c.stores[1].count() == 2)  # kept where it came
            good = make_records(c.genesis, key(5), [1])
            await sender.gossip.publish_payload(encode_batch([good[0].data]))
            await wait_until(lambda: c.stores[2].count() == 1)  # relayed as before
            assert not any(c.stores[2].has(r.cid) for r in waiting)
            assert relay.counters.not_forwarded == 1
            assert relay.counters.rejected == {} and relay.scores.count(sender.peer_id) == 0
