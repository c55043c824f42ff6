"""The mixed attack's p2p attackers, in a process of their own at the lowest CPU priority.

``python -m tests.faults.mixed_attackers SPEC.json`` (run by
``test_faults_mixed.py``, with ``tests/`` on ``PYTHONPATH``) runs every p2p attack
class of the mixed scenario at once for ``attack_s`` seconds, each bounded in
count, and writes what it sent to ``spec["out"]``.

Why a process of its own, at ``nice 19``, with its stores in memory: an
attacker's CPU and disk are the attacker's machine's. Run inside the test
process, it took the same two cores as the four honest nodes (and the GIL from
the honest client), so the honest rate measured the attack's own signing, Noise
and msgpack work as much as its cost to the nodes. At nice 19 it still sends
everything it is asked to (the counts are printed and checked), but only from
CPU the nodes leave idle; ``main`` also makes it SCHED_IDLE, keeps it on one core
and has it verify nothing it receives (why, there). Its peers keep what they sync
(each fresh identity pulls the whole store) in SQLite files under ``/dev/shm``
(``attacker_dir``), not on the disk where the nodes fsync.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from libp2p.peer.id import ID

from node.core.config import Config
from node.p2p.frames import encode_batch
from node.p2p.host import open_host
from node.store.db import open_store
from protocol import cid as cidlib
from protocol import keys
from protocol.genesis import Genesis, genesis_from_json
from protocol.keys import Signer, SigningKey
from protocol.records import PREVOTE, Annotation, Vote, VoteEntry, sign_record

from .test_faults_attack_edge import attack_bitswap, attack_pubsub
from .test_faults_attack_records import _flood, open_attacker

SYBIL_ROUNDS, SYBILS = 4, 1_000
BYZ_VOTES = 20
GAP_AUTHOR = SigningKey(b"\xf9" * 32)
OVERRUN_S = 20.0  # how long past the attack's end a class may take to wind down
CLASSES = ("pubsub", "bitswap", "seq_gap", "sybil", "byzantine", "large_gossip", "fork")


@dataclass
class Attack:
    """What the attackers know: the nodes' addresses, the network, the time left."""

    addrs: list[str]
    peer_ids: list[str]
    genesis: Genesis
    tmp: Path
    attack_s: float
    deadline: float = 0.0  # trio's clock
    sent: dict[str, int] = field(default_factory=dict)

    def count(self, what: str, n: int) -> None:
        self.sent[what] = self.sent.get(what, 0) + n


async def pause(a: Attack, seconds: float) -> None:
    """Sleep ``seconds``, but not past the end of the attack."""
    await trio.sleep(max(0.0, min(seconds, a.deadline - trio.current_time())))


async def from_fresh_hosts(a: Attack, hosts: int, key_base: int,
                           attack: Callable[[Any, ID], Awaitable[None]],
                           pause_s: float = 0.0) -> None:
    """Throwaway hosts one after another (host ``k`` has key byte ``key_base + k``), each
    connected to node ``k % 4`` and handed to ``attack`` with that node's peer id, then
    closed; ``pause_s`` between hosts. Stops at ``hosts`` or the attack's end."""
    for k in range(hosts):
        if trio.current_time() > a.deadline:
            break
        async with open_host(SigningKey(bytes([key_base + k]) * 32),
                             Config.for_tests().p2p) as h:
            await h.connect(a.addrs[k % 4])
            await attack(h, ID.from_base58(a.peer_ids[k % 4]))
        await pause(a, pause_s)


async def pubsub_frames(a: Attack) -> None:
    threshold = Config.for_tests().gossip.invalid_threshold

    async def frames(h: Any, victim: ID) -> None:
        a.count("malformed_frames", await attack_pubsub(h, victim, threshold + 5))
    await from_fresh_hosts(a, 8, 0xa0, frames, a.attack_s / 8)


async def bitswap_floods(a: Attack) -> None:
    async def flood(h: Any, victim: ID) -> None:
        with trio.move_on_after(max(0.0, min(a.attack_s / 4,
                                             a.deadline - trio.current_time()))):
            await attack_bitswap(h, victim, 2)
            a.count("bitswap_want_frames", 2)
            await trio.sleep(a.attack_s / 4)  # a slow reader that never reads its replies
    await from_fresh_hosts(a, 4, 0xb0, flood)


def sign_sybils(net: bytes) -> list[list[bytes]]:
    """Per round, ``SYBILS`` annotations from fresh keys for a task nobody published."""
    item = cidlib.cid_bytes(b"mixed ghost item")
    out = []
    for k in range(SYBIL_ROUNDS):
        ghost = cidlib.cid_bytes(b"a task nobody published %d" % k)
        out.append([sign_record(net, SigningKey((k << 20 | j).to_bytes(4, "big") * 8), 1,
                                Annotation(ghost, item, "cat")).data
                    for j in range(1, SYBILS + 1)])
    return out


async def sybils(a: Attack, rounds: list[list[bytes]]) -> None:
    for k, recs in enumerate(rounds):
        if trio.current_time() > a.deadline:
            break
        await _flood(a.tmp, SigningKey(bytes([0xc0 + k]) * 32), a.genesis, a.addrs,
                     [encode_batch(recs[i:i + 64]) for i in range(0, len(recs), 64)])
        a.count("sybil_records", len(recs))
        await pause(a, a.attack_s / (2 * SYBIL_ROUNDS))  # every round well inside


def sign_byzantine(net: bytes, validator: SigningKey, task: bytes) -> list[bytes]:
    """Votes with a validator's key: 3,000 entries (genesis limit 256), round 2^31,
    items that do not exist."""
    return [sign_record(net, validator, 10_000 + s, Vote(
        PREVOTE, 2**31, tuple(VoteEntry(task, cidlib.cid_bytes(b"ghost %d %d" % (s, k)), "cat")
                              for k in range(3_000)))).data for s in range(BYZ_VOTES)]


async def byzantine_votes(a: Attack, byz: list[bytes]) -> None:
    await pause(a, 6.0)  # while the honest task is labelled
    await _flood(a.tmp, SigningKey(b"\xd0" * 32), a.genesis, a.addrs[:3],
                 [encode_batch([d]) for d in byz])
    a.count("byzantine_votes", len(byz))


async def fork_split(a: Attack, x: bytes, y: bytes) -> None:
    """One seq, two labels: ``x`` gossiped to node 0 and ``y`` to node 2 at once, by two
    peers each connected to one of them (the RPC refuses a reused seq, so a forker
    goes around it)."""
    async with trio.open_nursery() as nursery:
        for key, i, d in ((b"\xd4", 0, x), (b"\xd5", 2, y)):
            nursery.start_soon(_flood, a.tmp, SigningKey(key * 32), a.genesis,
                               [a.addrs[i]], [encode_batch([d])])
    a.count("fork_variants", 2)


async def large_gossip(a: Attack, tasks: list[bytes]) -> None:
    """Big task records published while fresh peers join node 0 (finding 2)."""
    async with open_attacker(a.tmp, SigningKey(b"\xd1" * 32), a.genesis) as p:
        for addr in a.addrs:
            await p.connect(addr)
        await trio.sleep(1.0)
        async with trio.open_nursery() as nursery:
            async def join(k: int) -> None:
                await trio.sleep(0.2 * k)
                async with open_attacker(a.tmp, SigningKey(bytes([0xd8 + k]) * 32),
                                         a.genesis) as joiner:
                    await joiner.connect(a.addrs[0])
                    await trio.sleep(3.0)
            for k in range(3):
                nursery.start_soon(join, k)
            for d in tasks:
                p.publish_nowait(d)
                await trio.sleep(0.3)
        a.count("large_task_records", len(tasks))
        await trio.sleep(3.0)


async def seq_gap_server(a: Attack) -> None:
    """A peer holding one author's records past a missing seq; every node syncs from it
    every second for the whole attack (the records name a task nobody has: the pool)."""
    net = a.genesis.network_id
    ghost = cidlib.cid_bytes(b"the gap author's task")
    recs = [sign_record(net, Signer(GAP_AUTHOR), s, Annotation(
        ghost, cidlib.cid_bytes(b"gap %d" % s), "cat")) for s in range(1, 201) if s != 3]
    key = SigningKey(b"\xd2" * 32)
    store = open_store(a.tmp / f"attacker-{key.peer_id[-6:]}.db", durable=False)  # its store
    store.save_records(recs)
    store.close()
    async with open_attacker(a.tmp, key, a.genesis) as p:
        for addr in a.addrs:
            await p.connect(addr)
        await trio.sleep_until(a.deadline)
        a.count("seq_gap_records_served", p.counters.sync_served)


def attacker_dir(tmp: Path) -> Path:
    """A new directory for the attackers' stores: in memory (``/dev/shm``) if the
    machine has it. The test that made it removes it."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="annot-attackers-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="attackers-", dir=tmp))


async def run(spec: dict[str, Any], stores: Path) -> dict[str, int]:
    genesis = genesis_from_json(Path(spec["genesis"]).read_text())
    a = Attack(spec["addrs"], spec["peer_ids"], genesis, stores, spec["attack_s"])
    net = genesis.network_id
    task = bytes.fromhex(spec["task"])
    sybil = sign_sybils(net)
    byz = sign_byzantine(net, SigningKey(bytes.fromhex(spec["byz_seed"])), task)
    big = [bytes.fromhex(d) for d in spec["big"]]
    x, y = (bytes.fromhex(d) for d in spec["fork"])
    attacks: dict[str, Any] = {
        "pubsub": lambda: pubsub_frames(a), "bitswap": lambda: bitswap_floods(a),
        "seq_gap": lambda: seq_gap_server(a), "sybil": lambda: sybils(a, sybil),
        "byzantine": lambda: byzantine_votes(a, byz),
        "large_gossip": lambda: large_gossip(a, big), "fork": lambda: fork_split(a, x, y)}
    a.deadline = trio.current_time() + a.attack_s
    Path(spec["ready"]).write_text("attacking\n")  # the honest client starts from here
    async def bounded(name: str) -> None:
        # every class ends by itself; one that does not is cut off and named (the test
        # fails on it) rather than holding the whole process past the test's wait
        with trio.move_on_at(a.deadline + OVERRUN_S) as scope:
            await attacks[name]()
        if scope.cancelled_caught:
            print(f"attack class {name} overran the attack by {OVERRUN_S:.0f} s",
                  file=sys.stderr, flush=True)
            a.count(f"overran:{name}", 1)
        print(f"attack class {name} done", file=sys.stderr, flush=True)
    async with trio.open_nursery() as nursery:
        for name in spec["only"]:
            nursery.start_soon(bounded, name)
    # what was sent, now: the test reads it once it exists (see main)
    part = Path(spec["out"] + ".part")
    part.write_text(json.dumps(a.sent))
    part.replace(spec["out"])  # whole or not at all
    return a.sent


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    os.nice(19)  # only the CPU the honest nodes leave idle
    # and off the CPU the moment a node wakes (nice 19 alone still runs its slice first)
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    # An attacker does not check what it receives, and its machine is not the nodes':
    # its peers pull whole stores from every node, and verifying them in sync's worker
    # threads was 69% of its samples, on both cores. Even at SCHED_IDLE that cost the
    # nodes (two idle-class busy loops took 18% off their unattacked rate on this
    # 2-core machine): the rig's cost, not the attack's. So it verifies nothing, and
    # runs on one core.
    keys.verify = lambda public_key, message, signature: None
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    # ``out`` is written inside: py-libp2p's hosts do not always finish closing (a
    # stopped swarm still accepting the nodes' dials), so the test reads ``out`` and
    # then ends this process itself if it has not exited
    trio.run(run, spec, Path(spec["stores"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
