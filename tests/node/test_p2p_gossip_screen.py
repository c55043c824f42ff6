"""Gossip's admission screen: a message holding a never-valid record is refused by
the topic validator (not stored, not forwarded) and charged to the peer that sent
it; messages the screen passes are delivered as before. Real hosts on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from p2p_cluster import key, make_records, open_cluster, wait_until

from node.p2p.frames import encode_batch
from protocol.records import Annotation, Record


def no_bad_labels(records: list[Record]) -> tuple[str | None, bool]:
    for r in records:
        if isinstance(r.body, Annotation) and r.body.label == "bad":
            return "label 'bad' is not in the task's schema", False
    return None, True


async def test_screened_gossip_is_refused_and_charged(tmp_path: Path) -> None:
    async with open_cluster(tmp_path, 2) as c:
        sender, receiver = c.nodes[0], c.nodes[1]
        receiver.set_screen(no_bad_labels)
        await c.connect(1, 0)
        await wait_until(lambda: sender.peer_id in receiver.peers())
        await wait_until(lambda: bool(receiver.gossip.pubsub.peer_topics.get(
            receiver.gossip.topic)))
        bad = make_records(c.genesis, key(4), [1], label="bad")
        good = make_records(c.genesis, key(5), [1, 2])
        await sender.gossip.publish_payload(encode_batch([bad[0].data]))
        # counted under the screen's own reason, as admission would count it
        reason = "label 'bad' is not in the task's schema"
        await wait_until(lambda: receiver.counters.rejected.get(reason, 0) >= 1)
        assert receiver.scores.count(sender.peer_id) >= 1
        await sender.gossip.publish_payload(encode_batch([g.data for g in good]))
        await wait_until(lambda: c.stores[1].count() == 2)
        assert not c.stores[1].has(bad[0].cid)
