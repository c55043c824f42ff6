"""The testnet demo: seed a labelling task, let annotators label it, check the nodes agree.

    python -m node.testnet.demo --dir testnet [--annotators 8] [--items 100] [--data answer.csv]

Against a running testnet (``python -m node.testnet up`` runs this for you):
store every item as an IPFS block on node0, create a task there, then let each
annotator sign its labels with its own key (like a wallet) and submit them to
its own node over RPC — annotator ``i`` talks to node ``i mod N`` — so records
must cross the network to be counted. Then wait, bounded, until every item and
the task's tally are final on every node, and print what happened: accuracy
against the truth, finality latency, the top of the ledger, and whether every
node holds byte-identical certificates and the same tally and ledger roots.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import math
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from node.testnet.demo_data import DemoDataError, Workload, load_csv, simulate
from node.core.home import NodeHome, load_key, new_key, write_key
from node.errors import NodeError
from node.rpc.client import (
    ClientError,
    NodeUnreachableError,
    RPCClient,
    RPCClientError,
    read_home,
)
from protocol.cid import cid_bytes, cid_from_str, cid_to_str
from protocol.keys import SigningKey
from protocol.payout import sign_binding
from protocol.records import Annotation, sign_record

POLL_S = 0.2
CHUNK = 200  # calls per JSON-RPC batch
SUBMITTERS = 8  # annotators submitting at once
Say = Callable[[str], None]


class DemoError(NodeError):
    """The demo could not run or did not converge."""


def demo_payout_key(key: SigningKey) -> bytes:
    """A simulated annotator's EVM key (secp256k1), derived from its annotator key so
    reruns bind the same address; a real annotator binds its own wallet's address."""
    return hashlib.sha256(b"annot demo payout key\x00" + key.public_key).digest()


@dataclass(slots=True)
class Report:
    task: str = ""
    items: list[str] = field(default_factory=list)  # item CIDs, in workload order
    final: list[int] = field(default_factory=list)  # final items per node
    values: list[str | None] = field(default_factory=list)  # node0's final value per item
    latencies: list[float] = field(default_factory=list)
    agree: bool = False
    wall_s: float = 0.0


def node_homes(root: Path) -> list[Path]:
    """``root/node0``, ``root/node1``, … in index order."""
    homes = [p for p in root.glob("node*") if p.is_dir() and p.name[4:].isdigit()]
    return sorted(homes, key=lambda p: int(p.name[4:]))


def annotator_keys(root: Path, n: int) -> list[SigningKey]:
    """``root/annotators/<i>.key``: made on first use, reused afterwards (mode 0600)."""
    folder = root / "annotators"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = []
    for i in range(n):
        path = folder / f"{i}.key"
        if not path.exists():
            write_key(path, new_key())
        keys.append(load_key(path))
    return keys


async def batch(client: RPCClient, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Every call's result, in order, CHUNK calls per HTTP request; the first error raises."""
    out: list[Any] = []
    for start in range(0, len(calls), CHUNK):
        out += [r.unwrap() for r in await client.batch(calls[start:start + CHUNK])]
    return out


async def _until(deadline: float, what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Poll the async ``check`` until it returns true; DemoError after ``deadline``.

    A node that cannot be reached is polled again rather than failing the demo:
    a node busy aggregating may answer late, and an idle keep-alive connection
    that the server closes just as a request goes out surfaces as a reset."""
    while True:
        try:
            if await check():
                return
            why = ""
        except NodeUnreachableError as exc:
            why = f" (last error: {exc})"
        if trio.current_time() > deadline:
            raise DemoError(f"timed out waiting for {what}{why}")
        await trio.sleep(POLL_S)


class Demo:
    def __init__(self, clients: list[RPCClient], work: Workload, say: Say) -> None:
        self.clients, self.work, self.say = clients, work, say
        self.report = Report()
        self.items: list[str] = []
        self.ready_at: dict[int, float] = {}  # item -> when its redundancy-th label was acked

    async def run(self, timeout: float, rule: str) -> Report:
        started = trio.current_time()
        deadline = started + timeout
        node0, w = self.clients[0], self.work
        status = await node0.call("node.status")
        network = bytes.fromhex(status["network_id"])
        puts = await batch(node0, [("block.put", {"data": base64.b64encode(i.data).decode()})
                                   for i in w.items])
        self.items = self.report.items = [p["cid"] for p in puts]
        if self.items != [cid_to_str(cid_bytes(i.data)) for i in w.items]:
            raise DemoError("block.put returned CIDs that differ from the local CIDv1 raw")
        task = await node0.call(
            "task.create", title=f"annot demo: {w.source}", labels=list(w.labels),
            items=self.items, redundancy=w.redundancy, reward_per_item=1000,
            validator_share_bps=1000, rule=rule)
        self.report.task = task["task"]
        self.say(f"task {self.report.task}: {len(self.items)} items, labels "
                 f"{', '.join(w.labels)}, redundancy {w.redundancy}, rule {rule}")
        for c in self.clients:
            await _until(deadline, "the task to reach every node", partial(self._has_task, c))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_node0, deadline)
            await self._submit_all(network)
        self.say(f"every item final on node0 after {trio.current_time() - started:.1f} s; "
                 "waiting for every node and the tally")
        for c in self.clients:
            await _until(deadline, f"finality on {c.url}", partial(self._all_final, c))
            try:
                await _until(deadline, f"the tally on {c.url}", partial(self._tally_final, c))
            except DemoError as exc:
                raise DemoError(f"{exc}; {await self._tally_votes(c)}") from None
        await _until(deadline, "equal ledger roots", self._ledgers_agree)
        self.report.agree = await self._agree()
        self.report.wall_s = trio.current_time() - started
        return self.report

    async def _has_task(self, c: RPCClient) -> bool:
        try:
            await c.call("task.get", task=self.report.task)
        except RPCClientError:  # not there yet; an unreachable node is an error
            return False
        return True

    async def _submit_all(self, network: bytes) -> None:
        per_worker: dict[int, list[int]] = {}
        for n, a in enumerate(self.work.answers):
            per_worker.setdefault(a.worker, []).append(n)
        acked = [0] * len(self.work.items)
        limiter = trio.CapacityLimiter(SUBMITTERS)
        t0 = trio.current_time()

        async def submit(worker: int, answers: list[int]) -> None:
            async with limiter:
                key = self.work.workers[worker]
                client = self.clients[worker % len(self.clients)]
                seq = (await client.call("account.get", author=key.peer_id))["next_seq"]
                # bind a payout address first, so `annot payout export` has claims to show
                binding = sign_binding(demo_payout_key(key), key.peer_id, network)
                await batch(client, [("record.submit", {"record": base64.b64encode(
                    sign_record(network, key, seq, binding).data).decode()})])
                seq += 1
                for start in range(0, len(answers), 64):
                    chunk = [self.work.answers[n] for n in answers[start:start + 64]]
                    calls = []
                    for a in chunk:
                        body = Annotation(cid_from_str(self.report.task),
                                          cid_from_str(self.items[a.item]), a.label)
                        data = sign_record(network, key, seq, body).data
                        calls.append(("record.submit", {"record": base64.b64encode(data).decode()}))
                        seq += 1
                    await batch(client, calls)
                    for a in chunk:
                        acked[a.item] += 1
                        if acked[a.item] == self.work.redundancy:
                            self.ready_at[a.item] = trio.current_time()

        async with trio.open_nursery() as nursery:
            for worker, answers in sorted(per_worker.items()):
                nursery.start_soon(submit, worker, answers)
        spent = trio.current_time() - t0
        self.say(f"submitted {len(self.work.answers)} signed annotations from "
                 f"{len(per_worker)} annotators in {spent:.1f} s "
                 f"({len(self.work.answers) / max(spent, 1e-3):.0f}/s)")

    async def _watch_node0(self, deadline: float) -> None:
        """Poll node0 for final items; an item's latency runs from its ready time to now."""
        pending = set(range(len(self.items)))
        values: list[str | None] = [None] * len(self.items)
        while pending:
            if trio.current_time() > deadline:
                raise DemoError(f"timed out: {len(pending)} items not final on node0")
            await trio.sleep(POLL_S)
            order = sorted(pending)
            try:
                got = await batch(self.clients[0], [("item.get", {"task": self.report.task,
                                                                  "item": self.items[i]})
                                                    for i in order])
            except NodeUnreachableError:  # busy or a keep-alive reset: see _until
                continue
            now = trio.current_time()
            for i, r in zip(order, got, strict=True):
                if r["final"] is not None:
                    values[i] = r["final"]
                    pending.discard(i)
                    self.report.latencies.append(now - self.ready_at.get(i, now))
        self.report.values = values

    async def _all_final(self, c: RPCClient) -> bool:
        got = await batch(c, [("item.get", {"task": self.report.task, "item": i})
                              for i in self.items])
        return all(r["final"] is not None for r in got)

    async def _tally_final(self, c: RPCClient) -> bool:
        return bool((await c.call("tally.get", task=self.report.task))["final"])

    async def _tally_votes(self, c: RPCClient) -> str:
        t = await c.call("tally.get", task=self.report.task)
        votes = ", ".join(f"{p[-6:]} {str(r)[:12]}" for p, r in sorted(t.get("votes", {}).items()))
        return f"its tally votes: {votes or 'none'}; quorum root {str(t.get('quorum_root'))[:12]}"

    async def _ledgers_agree(self) -> bool:
        roots = {(await c.call("ledger.get"))["root"] for c in self.clients}
        return len(roots) == 1

    async def _agree(self) -> bool:
        """Byte-identical certificates for every item, one tally root, one ledger root."""
        certs, tallies = [], set()
        for c in self.clients:
            got = await batch(c, [("certificate.get", {"task": self.report.task, "item": i})
                                  for i in self.items])
            certs.append([r["certificate"] for r in got])
            tallies.add((await c.call("tally.get", task=self.report.task))["root"])
            self.report.final.append(len(got))
        return all(x == certs[0] for x in certs) and len(tallies) == 1


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p * len(xs)) - 1))] if xs else float("nan")


async def print_summary(clients: list[RPCClient], work: Workload, report: Report, root: Path,
                        say: Say) -> None:
    n_items = len(work.items)
    say(f"items final    {min(report.final, default=0)}/{n_items} on every node "
        f"({len(clients)} nodes)")
    judged = [(v, i.truth) for v, i in zip(report.values, work.items, strict=True) if i.truth]
    if judged:
        right = sum(v == t for v, t in judged)
        say(f"accuracy       {right}/{len(judged)} = {right / len(judged):.1%} "
            "(final labels vs truth)")
    say(f"finality       p50 {_pct(report.latencies, 0.5):.2f} s, p99 "
        f"{_pct(report.latencies, 0.99):.2f} s on node0 (from the ack of the label that completed "
        f"each item's redundancy of {work.redundancy} to its certificate; polled every "
        f"{POLL_S} s)")
    say(f"wall time      {report.wall_s:.1f} s (blocks, task, labels, finality and tally "
        "on every node)")
    tally = await clients[0].call("tally.get", task=report.task)
    ledger = await clients[0].call("ledger.get")
    verdict = "yes" if report.agree else "NO"
    say(f"all agree      {verdict}: {n_items} certificates compared byte for byte across "
        f"{len(clients)} nodes; tally root {str(tally['root'])[:16]}…, ledger root "
        f"{ledger['root'][:16]}…")
    who = {k.peer_id: name for k, name in zip(work.workers, work.worker_names, strict=True)}
    for path in sorted((root / "annotators").glob("*.key")):  # earlier simulated runs
        who.setdefault(load_key(path).peer_id, f"annotator {path.stem}")
    for n, c in enumerate(clients):
        who.setdefault((await c.call("node.status"))["peer_id"], f"validator node{n}")
    who[tally.get("requester") or ""] = "requester, validator node0"
    say("ledger (top 5)")
    say(f"  {'account':<17} {'balance':>9} {'agreed':>7} {'disagreed':>9} {'rep bps':>7}  who")
    for a in ledger["accounts"][:5]:
        say(f"  {a['author'][:8] + '…' + a['author'][-6:]:<17} {a['balance']:>9} "
            f"{a['agreed']:>7} {a['disagreed']:>9} {a['reputation']:>7}  "
            f"{who.get(a['author'], '?')}")
    home0 = root / "node0"
    with contextlib.suppress(ValueError):
        home0 = home0.resolve().relative_to(Path.cwd())
    exe = ".venv/bin/annot" if Path(".venv/bin/annot").exists() else "annot"
    say("query a node:")
    say(f"  {exe} --home {home0} status")
    say(f"  {exe} --home {home0} ledger")
    say(f"  {exe} --home {home0} tally {report.task}")
    say(f"  {exe} --home {home0} item show {report.task} {report.items[0]}")
    say(f"  {exe} --home {home0} certificate {report.task} {report.items[0]} -o cert.bin")
    say(f"  {exe} --home {home0} payout export --json -o payouts.json   # claims of the "
        "annotators' bound addresses, once validators certify the epoch")


async def run_demo(root: Path, n_annotators: int = 8, n_items: int = 100,
                   data: Path | None = None, *, seed: int = 7, timeout: float | None = None,
                   rule: str = "majority", say: Say = print) -> Report:
    """Run the demo against the running testnet in ``root``; DemoError if it fails."""
    homes = node_homes(root)
    if not homes:
        raise DemoError(f"no node homes in {root} — run `python -m node.testnet up` first")
    if data is not None:
        cap = NodeHome(homes[0]).load_genesis().params.max_items_per_task
        if not n_items or n_items > cap:
            n_items = cap  # one task holds at most this many items
        work = load_csv(data, n_items)
    else:
        work = simulate(n_items, annotator_keys(root, n_annotators), seed=seed)
    say(f"demo: {work.source}; {len(work.workers)} annotators -> {len(homes)} nodes")
    timeout = timeout or max(90.0, len(work.answers) / 20)
    clients = [RPCClient(*read_home(h), timeout=30.0) for h in homes]
    try:
        report = await Demo(clients, work, say).run(timeout, rule)
        await print_summary(clients, work, report, root, say)
    finally:
        for c in clients:
            await c.aclose()
    if not report.agree:
        raise DemoError("nodes disagree: see the summary above")
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=Path("testnet"), help="testnet directory")
    parser.add_argument("--annotators", type=int, default=8, help="simulated annotators")
    parser.add_argument("--items", type=int, default=None,
                        help="items to generate (default 100); with --data, at most this many "
                             "of the CSV's items (default all)")
    parser.add_argument("--data", type=Path, default=None,
                        help="replay a crowdsourced answer CSV (item,worker,label)")
    parser.add_argument("--seed", type=int, default=7, help="seed for generated items/answers")
    parser.add_argument("--rule", choices=("majority", "dawid-skene"), default="majority")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for finality (default 90, more for big CSVs)")


def demo_from_args(args: argparse.Namespace) -> int:
    """Run the demo for parsed ``add_arguments`` args; print why and return 1 on failure."""
    items = args.items if args.items is not None else (0 if args.data else 100)
    try:
        trio.run(lambda: run_demo(args.dir, args.annotators, items, args.data, seed=args.seed,
                                  timeout=args.timeout, rule=args.rule))
    except (DemoError, DemoDataError, ClientError, OSError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.testnet.demo", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return demo_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
