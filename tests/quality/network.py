"""Replay a crowd CSV through a real testnet and check its labels against the offline rule.

The demo (:func:`node.testnet.demo.run_demo`) publishes one task over the CSV's items
and submits every answer as an annotation signed by the worker's own key.
Then, independently of what the demo reported, :func:`read_network` asks
every node over RPC for the task record, its annotations and each item's final
value, and :func:`compare` runs the validators' own code
(:func:`protocol.aggregate.propose`) offline over exactly the annotations the
network held — not over the CSV, since the demo may drop rows (duplicate
(item, worker) pairs, items past the genesis cap) — and counts agreement.

Nothing here imports from ``tests``: the module is used both by
``python -m tests.quality.quality --network`` and by the pytest suite
(``tests/`` is on sys.path there, so it is ``quality.network``).
"""

from __future__ import annotations

import itertools
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.core.home import NodeHome
from node.rpc.client import RPCClient, read_home
from node.testnet.demo import CHUNK, Report, node_homes, run_demo
from node.testnet.demo_data import Workload, load_csv
from protocol.aggregate import majority, propose
from protocol.cid import cid_bytes, cid_from_str, cid_to_str
from protocol.keys import public_key_from_peer_id
from protocol.records import EXPIRED, Task

Say = Callable[[str], None]
Ann = tuple[bytes, bytes, str]  # (item CID, author public key, label)
PAGE = 1000  # annotation.list's largest page


class ReplayError(Exception):
    """The network's state is not what a replay check can compare."""


@dataclass(frozen=True, slots=True)
class NetworkView:
    """What the network holds for one task, read back over RPC."""

    task: Task
    annotations: list[Ann]  # node0's, equal on every node (checked)
    finals: list[dict[bytes, str | None]]  # per node: item CID -> final value (None: not final)


@dataclass(frozen=True, slots=True)
class Comparison:
    rule: str
    items: int
    annotations: int
    offline: dict[bytes, str | None]  # propose() over the network's annotations
    network: dict[bytes, str | None]  # node0's final values
    equal: int  # items whose node0 final value == offline
    nodes_agree: bool  # every node holds the same final value for every item
    expired: int  # items final as EXPIRED

    @property
    def ok(self) -> bool:
        return self.nodes_agree and self.equal == self.items


def free_base_port(n: int, tries: int = 200) -> int:
    """A testnet base port whose p2p (BASE+10i) and RPC (BASE+10i+1) ports are free now."""
    rng = random.Random()
    for _ in range(tries):
        base = rng.randrange(20_000, 60_000, 10)
        try:
            for port in (base + 10 * i + k for i in range(n) for k in (0, 1)):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise ReplayError("no free port range found for a testnet")


async def _pages(client: RPCClient, task: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await client.call("annotation.list", task=task, cursor=cursor, limit=PAGE)
        out += page["annotations"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


async def _batch(client: RPCClient, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(calls), CHUNK):
        out += [r.unwrap() for r in await client.batch(calls[start:start + CHUNK])]
    return out


def task_of(got: dict[str, Any]) -> Task:
    """The :class:`Task` behind a ``task.get`` result. ``block.get`` does not serve
    record blocks, so the record is rebuilt from its fields; ``task.get`` does not
    show ``weights_from``, which the demo never sets."""
    return Task(
        title=got["title"], labels=tuple(got["labels"]),
        items=tuple(cid_from_str(i) for i in got["items"]), redundancy=got["redundancy"],
        reward_per_item=got["reward_per_item"], validator_share_bps=got["validator_share_bps"],
        instructions=cid_from_str(got["instructions"]) if got["instructions"] else None,
        allow=tuple(public_key_from_peer_id(a) for a in got["allow"]),
        close_time=got["close_time"] or 0, rule=got["rule"])


async def read_network(homes: Sequence[Path], task: str) -> NetworkView:
    """The task, the annotations node0 holds, and every node's final values. Raises ReplayError if
    nodes hold different annotation sets: the offline check would be ambiguous."""
    clients = [RPCClient(*read_home(h), timeout=60.0) for h in homes]
    try:
        body = task_of(await clients[0].call("task.get", task=task))
        items = [cid_to_str(i) for i in body.items]
        held: list[list[Ann]] = []
        finals: list[dict[bytes, str | None]] = []
        for c in clients:
            rows = await _pages(c, task)
            held.append(sorted((cid_from_str(a["item"]), public_key_from_peer_id(a["author"]),
                                a["label"]) for a in rows))
            got = await _batch(c, [("item.get", {"task": task, "item": i}) for i in items])
            finals.append({cid_from_str(r["item"]): r["final"] for r in got})
    finally:
        for c in clients:
            await c.aclose()
    for n, anns in enumerate(held[1:], start=1):
        if anns != held[0]:
            raise ReplayError(f"node{n} holds {len(anns)} annotations of task {task}, "
                              f"node0 {len(held[0])}, and the sets differ")
    return NetworkView(body, held[0], finals)


def admitted(task: Task, annotations: Sequence[Ann]) -> list[Ann]:
    """The annotations a validator counts (:meth:`node.consensus.proposals.Proposer.admitted`)."""
    allow, labels, items = frozenset(task.allow), frozenset(task.labels), frozenset(task.items)
    return [a for a in annotations
            if a[2] in labels and a[0] in items and (not allow or a[1] in allow)]


def compare(view: NetworkView) -> Comparison:
    """Offline proposals over the network's annotations vs the network's final values.

    ``closed=False``: the demo's tasks never close; an item short of redundancy
    then has no offline label (``None``) and cannot equal a final value, so it
    shows up as a mismatch rather than being silently skipped. Weights: the
    demo's tasks name no earlier tallies (``weights_from``), checked here."""
    task = view.task
    if task.weights_from:
        raise ReplayError("the task is weighted by earlier tallies; compare() does not "
                          "rebuild reputation weights")
    offline = propose(task, admitted(task, view.annotations), closed=False)
    network = view.finals[0]
    agree = all(f == network for f in view.finals[1:])
    equal = sum(network.get(item) is not None and network.get(item) == value
                for item, value in offline.items())
    expired = sum(v == EXPIRED for v in network.values())
    return Comparison(task.rule, len(task.items), len(view.annotations), offline, network,
                      equal, agree, expired)


def early_final(view: NetworkView, cmp: Comparison) -> list[bytes]:
    """Mismatched ``majority`` items whose final value is the majority of some subset of
    at least ``redundancy`` of the item's annotations: the item was decided before its
    last answers arrived, as the protocol allows (a per-item rule proposes as soon as
    an item has ``redundancy`` annotations, and a final value never changes).

    Task-wide rules get no such excuse here: ``dawid-skene`` proposes nothing until
    every item has ``redundancy`` annotations, and there are too many subsets to try.
    Subsets are enumerated per item, so only for items with few surplus annotations."""
    task = view.task
    if task.rule != "majority":
        return []
    held: dict[bytes, list[Ann]] = {}
    for a in admitted(task, view.annotations):
        held.setdefault(a[0], []).append(a)
    out = []
    for item, value in cmp.offline.items():
        final = cmp.network.get(item)
        anns = held.get(item, [])
        if final is None or final == value or len(anns) - task.redundancy > 4:
            continue
        if any(majority(list(sub), task.labels, redundancy=task.redundancy) == final
               for size in range(task.redundancy, len(anns))
               for sub in itertools.combinations(anns, size)):
            out.append(item)
    return out


def by_name(work: Workload, report: Report, labels: dict[bytes, str | None]
            ) -> dict[str, str | None]:
    """Item CID -> label turned into CSV item id -> label (the demo's item order)."""
    names = {cid_bytes(i.data): i.name for i in work.items}
    if [cid_from_str(c) for c in report.items] != [cid_bytes(i.data) for i in work.items]:
        raise ReplayError("the demo's item CIDs are not the workload's")
    return {names[item]: value for item, value in labels.items()}


async def replay(root: Path, csv: Path, n_items: int, rule: str, *, timeout: float,
                 say: Say) -> tuple[Workload, Report, NetworkView, Comparison]:
    """Run the demo for ``csv`` on the testnet in ``root`` (``n_items`` 0: all the
    CSV's items up to the genesis cap, as the demo does), then compare."""
    homes = node_homes(root)
    cap = NodeHome(homes[0]).load_genesis().params.max_items_per_task
    n_items = min(n_items, cap) if n_items else cap
    report = await run_demo(root, 0, n_items, csv, timeout=timeout, rule=rule, say=say)
    view = await read_network(homes, report.task)
    work = load_csv(csv, n_items)
    return work, report, view, compare(view)


__all__ = [
    "Comparison", "NetworkView", "ReplayError", "admitted", "by_name", "compare", "early_final",
    "free_base_port", "read_network", "replay", "task_of",
]
