"""End to end: ``python -m node.testnet up`` at small size, as real processes.

Four validators (a quorum is 3 of 4, so nodes can build certificates from
different precommits), four annotators and twelve items, on random free ports
in a tmp dir; then, independently of what the demo printed, check over RPC
that every item is final on every node with byte-identical certificates and
that the tally and ledger roots agree, and that every item's final label is the one
its three answers decide: the test rebuilds the demo's seeded workload (answers and
truth), so it knows what each item must be. Every daemon is killed in ``finally``.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from node.rpc.client import SyncRPCClient
from node.testnet.cluster import PID_FILE, is_annot
from node.testnet.demo import annotator_keys, node_homes
from node.testnet.demo_data import simulate
from protocol.cid import cid_bytes, cid_to_str

N, ANNOTATORS, ITEMS = 4, 4, 12
SEED = 7  # the demo's workload seed, passed to `up` and used here to rebuild it
UP_TIMEOUT_S = 100  # the whole test stays under 120 s


def free_base_port() -> int:
    """A base port whose p2p and rpc ports for N nodes are all free right now."""
    for _ in range(200):
        base = random.randrange(20_000, 60_000, 10)
        ports = [base + 10 * i + k for i in range(N) for k in (0, 1)]
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range found")


def run_testnet(root: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.testnet", *args, "--dir", str(root)],
                          capture_output=True, text=True, timeout=timeout, cwd=root.parent)


def pids_of(root: Path) -> dict[Path, int]:
    out = {}
    for home in node_homes(root):
        try:
            out[home] = int((home / PID_FILE).read_text())
        except (OSError, ValueError):
            pass
    return out


def kill_all(root: Path, seen: dict[Path, int]) -> None:
    seen.update(pids_of(root))
    for home, pid in seen.items():
        if is_annot(pid, home):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(seen), "daemons survived SIGKILL"


def alive(seen: dict[Path, int]) -> list[str]:
    return [h.name for h, pid in seen.items() if is_annot(pid, h)]


def check_values(root: Path, items: list[str], finals: list[str]) -> str:
    """Every item's final label against the rebuilt workload: a label that 2 of the 3
    answers give must be final; with three different answers, one of them. Returns
    the accuracy line the demo must have printed (final labels vs truth)."""
    work = simulate(ITEMS, annotator_keys(root, ANNOTATORS), seed=SEED)
    assert items == [cid_to_str(cid_bytes(i.data)) for i in work.items], "another workload"
    wrong = []
    for k, final in enumerate(finals):
        said = [a.label for a in work.answers if a.item == k]
        top = max(set(said), key=said.count)
        expected = {top} if said.count(top) >= 2 else set(said)
        if final not in expected:
            wrong.append((k, final, said))
    assert not wrong, f"items final with a label their answers do not give: {wrong}"
    right = sum(f == i.truth for f, i in zip(finals, work.items, strict=True))
    print(f"final labels vs truth: {right}/{ITEMS}; every final label follows its answers")
    return f"accuracy       {right}/{ITEMS} = {right / ITEMS:.1%}"


def check_agreement(root: Path) -> str:
    nodes = [SyncRPCClient.from_home(h) for h in node_homes(root)]
    assert len(nodes) == N
    tasks = nodes[0].call("task.list")["tasks"]
    assert len(tasks) == 1
    task = tasks[0]["task"]
    items = nodes[0].call("task.get", task=task)["items"]
    assert len(items) == ITEMS
    certs: list[list[str]] = []
    finals: list[list[str]] = []
    for node in nodes:
        views: list[Any] = [r.unwrap() for r in node.batch(
            [("item.get", {"task": task, "item": i}) for i in items])]
        assert all(v["final"] is not None for v in views), f"{node.url}: not every item final"
        finals.append([v["final"] for v in views])
        certs.append([r.unwrap()["certificate"] for r in node.batch(
            [("certificate.get", {"task": task, "item": i}) for i in items])])
    assert all(c == certs[0] for c in certs), "certificates differ between nodes"
    tallies = [node.call("tally.get", task=task) for node in nodes]
    assert all(t["final"] for t in tallies)
    assert len({t["root"] for t in tallies}) == 1
    assert len({node.call("ledger.get")["root"] for node in nodes}) == 1
    assert all(f == finals[0] for f in finals), "final labels differ between nodes"
    return check_values(root, items, finals[0])


@pytest.mark.slow
def test_testnet_up_demo_agree_stop(tmp_path: Path) -> None:
    root = tmp_path / "testnet"
    seen: dict[Path, int] = {}
    try:
        up = run_testnet(root, "up", "--n", str(N), "--annotators", str(ANNOTATORS),
                     "--items", str(ITEMS), "--base-port", str(free_base_port()),
                     "--seed", str(SEED), "--timeout", "60", timeout=UP_TIMEOUT_S)
        seen.update(pids_of(root))
        assert up.returncode == 0, f"stdout:\n{up.stdout}\nstderr:\n{up.stderr}"
        assert f"items final    {ITEMS}/{ITEMS}" in up.stdout
        assert "all agree      yes" in up.stdout
        accuracy = check_agreement(root)
        assert accuracy in up.stdout, (accuracy, up.stdout)
        status = run_testnet(root, "status", timeout=60)  # hang guards, not time targets
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"all {N} nodes agree" in status.stdout
        stop = run_testnet(root, "stop", timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert not pids_of(root), "stop left pid files behind"
        assert len(seen) == N and not alive(seen), "stop left daemons running"
    finally:
        kill_all(root, seen)
