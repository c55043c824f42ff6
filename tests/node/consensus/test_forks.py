"""Issue 13, finding 4: a forking annotator can never stall an item.

An annotator signs two different annotations with one seq and hands one to
each half of the validators. Before the fork rule each half kept the variant it
saw first, proposals differed forever and the item never finalized. Now the
fork variant travels with the author's records in sync, every node excludes the
forker's annotations from proposals and tallies, and the item finalizes on the
honest labels.
"""

from __future__ import annotations

import trio
from consensus_net import ANNOTATORS, Net, annotation, items_of, make_genesis, task_record

from protocol.cid import cid_bytes
from protocol.grouping import best_label

FORKER = ANNOTATORS[7]


def _tie_goes_to_dog() -> bytes:
    """An item whose cat/dog tie is broken towards dog (so a half that sees a tie and
    a half that sees cat disagree without the fork rule)."""
    for k in range(100):
        item = cid_bytes(f"fork item {k}".encode())
        if best_label(item, {"cat": 2, "dog": 2}) == "dog":
            return item
    raise AssertionError("no item breaks the tie towards dog")


async def test_a_fork_split_across_validators_finalizes_on_every_node(
        autojump_clock: trio.testing.MockClock) -> None:
    g, keys = make_genesis(4)
    net = Net(g, keys, sync=True)
    item = _tie_goes_to_dog()
    items = (item, *items_of(2))
    task = task_record(g, items, redundancy=3)
    a1, a2, a3 = ANNOTATORS[:3]
    x = annotation(g, FORKER, 1, task.cid, item, "cat")  # to nodes 0 and 1
    y = annotation(g, FORKER, 1, task.cid, item, "dog")  # to nodes 2 and 3
    async with trio.open_nursery() as nursery:
        await net.start(nursery)
        net.broadcast([task])
        net.broadcast([annotation(g, a1, 1, task.cid, item, "cat"),
                       annotation(g, a2, 1, task.cid, item, "dog")])
        for i in (0, 1):
            net.submit(i, [x])
        for i in (2, 3):
            net.submit(i, [y])
        # one gossip message crosses: node 1 alone holds both variants; the others
        # learn of the fork only through sync, whichever variant they hold
        net.submit(1, [y])
        # the third honest label: without the fork rule nodes 0, 1 see cat 3:1 and
        # nodes 2, 3 a 2:2 tie that goes to dog: no value ever has a quorum
        net.broadcast([annotation(g, a3, 1, task.cid, item, "cat")])
        with trio.move_on_after(120):
            while any(n.store.certificate(task.cid, item) is None for n in net.nodes):
                await trio.sleep(0.5)
        finals = [net.final(i, task.cid, (item,))[item] for i in range(4)]
        nursery.cancel_scope.cancel()
    assert finals == ["cat"] * 4, finals
    for n in net.nodes:
        # every node holds the evidence and applies the same rule
        assert n.store.forked_authors() == {FORKER.public_key}
        assert n.service.proposer.forkers == {FORKER.public_key}
        authors = {a for _, a, _ in n.service.proposer.admitted(task.cid)}
        assert FORKER.public_key not in authors  # never counted toward a reward
        assert authors == {a1.public_key, a2.public_key, a3.public_key}


def test_fork_evidence_is_bounded_per_author() -> None:
    g, keys = make_genesis(1)
    net = Net(g, keys)
    items = items_of(4)
    task = task_record(g, items)
    n = net.nodes[0]
    net.submit(0, [task])
    variants = [annotation(g, FORKER, 1, task.cid, items[k % 4], ("cat", "dog")[k % 2])
                for k in range(8)]
    more = [annotation(g, FORKER, 2, task.cid, items[k % 4], ("cat", "dog")[k % 2])
            for k in range(8)]
    for r in variants + more:
        net.submit(0, [r])
    assert n.store.count("annotation") == 2  # seq 1 and seq 2, the first variant of each
    assert len(n.store.forks()) == 1  # one variant proves the fork; the rest cost nothing
    # both variants come with the author's records, even to a peer past the forked seq
    first, second = n.store.forks()[0]
    assert n.store.records_after(FORKER.public_key, 2, 512)[:2] == [first, second]
    # ... and never make a page as long as the limit (a pager would ask again forever)
    assert n.store.records_after(FORKER.public_key, 0, 3) == [variants[0].data, more[0].data]
