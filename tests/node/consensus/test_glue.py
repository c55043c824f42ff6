"""The consensus glue in one process, on virtual time: four validators with real
stores, ingest and signatures finalize a task and agree on its tally, at times the
vote batching and the round timeouts fix exactly."""

from __future__ import annotations

import trio
import trio.testing

from protocol.records import PRECOMMIT, PREVOTE, Vote
from tests.node.consensus.consensus_net import (
    ANNOTATORS,
    Net,
    annotation,
    items_of,
    make_genesis,
    task_record,
)


async def test_four_validators_finalize_and_tally_on_virtual_time(
        autojump_clock: trio.testing.MockClock) -> None:
    g, keys = make_genesis(4, round_timeout_ms=2000, round_timeout_delta_ms=1000)
    net = Net(g, keys)
    items = items_of(3)
    task = task_record(g, items, redundancy=1)
    labels = ["cat", "dog", "cat"]
    records = [task] + [annotation(g, ANNOTATORS[k], 1, task.cid, item, lab)
                        for k, (item, lab) in enumerate(zip(items, labels, strict=True))]
    async with trio.open_nursery() as nursery:
        await net.start(nursery)
        for i in range(4):  # every validator holds the task and its labels
            net.submit(i, records)
        await trio.sleep(1.0)
        for n in net.nodes:
            assert [n.store.certificate(task.cid, it)[0] for it in items] == labels  # type: ignore[index]
            phases = [(t, r.body.phase, r.body.round) for t, r in n.signed  # type: ignore[union-attr]
                      if isinstance(r.body, Vote)]
            # one prevote batch after the 10 ms batch delay, one precommit batch after
            # the polka arrives, both in round 0: no timer fired on the fast path
            assert phases == [(0.01, PREVOTE, 0), (0.02, PRECOMMIT, 0)], phases
        await trio.sleep(2.0)  # tally_settle_s 0.1 and the tally votes
        roots = {n.store.tally(task.cid)[0] for n in net.nodes}  # type: ignore[index]
        assert len(roots) == 1 and None not in roots
        nursery.cancel_scope.cancel()


async def test_a_split_vote_moves_to_round_one_at_the_timeout(
        autojump_clock: trio.testing.MockClock) -> None:
    """Two validators propose cat, two dog: no polka. Each precommits nil once the
    prevote timeout runs out, then votes in round 1; nothing happens earlier."""
    g, keys = make_genesis(4, round_timeout_ms=2000, round_timeout_delta_ms=1000)
    net = Net(g, keys)
    items = items_of(1)
    task = task_record(g, items, redundancy=1)
    async with trio.open_nursery() as nursery:
        await net.start(nursery)
        for i in range(4):
            net.submit(i, [task, annotation(g, ANNOTATORS[i], 1, task.cid, items[0],
                                            "cat" if i < 2 else "dog")])
        await trio.sleep(1.9)
        for n in net.nodes:  # only the round-0 prevote so far: the timeout is 2 s
            assert [(r.body.phase, r.body.round) for _, r in n.signed] == [(PREVOTE, 0)]  # type: ignore[union-attr]
        await trio.sleep(0.2)
        for n in net.nodes:
            kinds = [(t, r.body.phase, r.body.round) for t, r in n.signed]  # type: ignore[union-attr]
            # the prevotes were all in by 0.01 s; the 2 s prevote timeout ran from then,
            # and the nil precommit left after the 10 ms batch delay
            assert kinds[1][1:] == (PRECOMMIT, 0) and abs(kinds[1][0] - 2.02) < 1e-9, kinds
            assert n.signed[1][1].body.entries[0].value is None  # type: ignore[union-attr]
        nursery.cancel_scope.cancel()
