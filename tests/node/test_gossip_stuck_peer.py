"""A peer that never reads its pubsub stream must not hold every gossip publish.

The publisher waits (up to ``OUTBOUND_WAIT_S``) while a peer's pubsub queue is
near py-libp2p's silent-drop limit, so a tight publish loop does not lose RPCs.
It used to wait like that for every publish while any one peer's queue stayed
full: one stranger that connects and never reads held each batch for a second,
and honest validators got their records by sync instead (issue 13's mixed
attack: 0.32-0.37 of the unattacked rate). Now a peer that stayed full for a
whole wait is not waited for again until its queue drains. One seam, with a
stand-in for py-libp2p's per-peer queues, on trio's mock clock.
"""

from __future__ import annotations

from types import SimpleNamespace

import trio
import trio.testing

from node.p2p.gossip import OUTBOUND_HIGH_WATER, OUTBOUND_WAIT_S, Gossip


def publisher(queues: dict[str, list[int]]) -> Gossip:
    g = Gossip.__new__(Gossip)  # only the wait's state: no host, no router
    g.pubsub = SimpleNamespace(peer_queues=queues)
    g._stuck = set()
    return g


async def test_a_peer_that_never_reads_is_waited_for_once(
        autojump_clock: trio.testing.MockClock) -> None:
    queues = {"stuck": [0] * OUTBOUND_HIGH_WATER, "honest": []}
    g = publisher(queues)
    t0 = trio.current_time()
    for _ in range(10):
        await g._wait_for_room()
    # one whole wait for the stuck peer, then none: not 10 x OUTBOUND_WAIT_S
    assert trio.current_time() - t0 < OUTBOUND_WAIT_S + 0.1
    assert g._stuck == {"stuck"}


async def test_a_drained_peer_is_waited_for_again(
        autojump_clock: trio.testing.MockClock) -> None:
    queues = {"slow": [0] * OUTBOUND_HIGH_WATER}
    g = publisher(queues)
    await g._wait_for_room()
    assert g._stuck == {"slow"}
    queues["slow"] = []  # it read its queue: no longer stuck
    await g._wait_for_room()
    assert g._stuck == set()

    async def drain() -> None:
        await trio.sleep(0.3)
        queues["slow"] = []

    queues["slow"] = [0] * OUTBOUND_HIGH_WATER  # full again: a normal wait, until it drains
    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        t0 = trio.current_time()
        await g._wait_for_room()
        waited = trio.current_time() - t0
    assert 0.29 < waited < 0.4, waited
