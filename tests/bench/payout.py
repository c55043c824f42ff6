"""Benchmark 8, issue 16: the time to export payouts for 10,000 accounts.

One final tally pays N accounts (N = 10,000, or 1,000 with ``--quick``), each bound
to its own address. Figures:

* compute: seconds for what every node does for a payout epoch
  (:func:`node.consensus.payouts.next_candidate`: amounts owed, the OpenZeppelin
  StandardMerkleTree, every proof, the claim file's bytes); baseline: pycryptodome's
  keccak256 alone over the same number of hashes the tree needs (2 per leaf, 1 per
  inner node), so the ratio is the cost of everything around the hashing;
* CLI: seconds for ``annot payout export -o FILE`` against a running node (a real
  ``annot run`` process on 127.0.0.1) whose store holds that epoch (a fresh CLI
  process: start-up, the ``payout.epoch`` RPC, counting the payout votes, writing
  the file); baseline: ``annot --help`` in a fresh process.

Run alone: ``python -m tests.bench.run --only payout``.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

from node.consensus.payouts import next_candidate
from node.core.home import init_home
from node.rpc.client import ClientError, SyncRPCClient
from node.store.db import open_store
from protocol.cid import cid_bytes
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.merkle import keccak256
from protocol.tally import Tally, TallyEntry
from tests.bench.common import Figure
from tests.harness import ANNOT, ROOT, free_ports

TARGET_S = 2.0  # a payout epoch of 10,000 accounts computed within one tally-settle period


def workload(n: int) -> tuple[Genesis, dict[bytes, Tally], dict[bytes, bytes]]:
    accounts = sorted(hashlib.sha256(b"payout bench %d" % i).digest() for i in range(n))
    requester = b"\xff" * 32
    task = cid_bytes(b"payout bench task")
    entries = tuple(TallyEntry(a, 1_000 + i, 1, 0) for i, a in enumerate(accounts))
    tally = Tally(task, requester, sum(e.amount for e in entries), entries)
    bindings = {a: hashlib.sha256(b"address" + a).digest()[:20] for a in accounts}
    genesis = Genesis(name="payout-bench", validators=(
        Validator(SigningKey(b"\x01" * 32).peer_id, 1),))
    return genesis, {task: tally}, bindings


def _wait_rpc(home: Path, node: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Until the node at ``home`` answers ``node.status`` (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise RuntimeError(f"annot run exited: {(home / 'node.log').read_text()[-2000:]}")
        if (home / "rpc.url").exists():
            try:
                SyncRPCClient.from_home(home).call("node.status")
                return
            except ClientError:
                pass
        time.sleep(0.1)
    raise TimeoutError(f"the node's RPC did not answer in {timeout:g} s")


def run(root: Path, quick: bool = False) -> list[Figure]:
    n = 1_000 if quick else 10_000
    genesis, tallies, bindings = workload(n)
    t0 = time.perf_counter()
    cand = next_candidate(genesis.network_id, tallies, [], bindings)
    compute_s = time.perf_counter() - t0
    assert cand is not None and cand.data.count(b'"address":"0x') == n
    hashes = [b"%d" % i for i in range(3 * n - 1)]
    keccak256(b"")  # the import, outside the clock
    t0 = time.perf_counter()
    for h in hashes:
        keccak256(h)
    keccak_s = time.perf_counter() - t0

    home = root / "home"
    root.mkdir(parents=True, exist_ok=True)
    gpath = root / "genesis.json"
    gpath.write_text(genesis.to_json())
    p2p, rpc = free_ports(2)
    init_home(home, gpath, p2p_port=p2p, rpc_port=rpc, gateway_port=0)
    store = open_store(home / "store.db")
    store.save_payout_epoch(cand.epoch, cand.root, cand.tasks, cand.data)
    store.close()
    out = root / "payouts.json"
    with (home / "node.log").open("ab") as log:
        node = subprocess.Popen([*ANNOT, "run", "--home", str(home)], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_rpc(home, node)
        t0 = time.perf_counter()
        subprocess.run([*ANNOT, "payout", "export", "--home", str(home), "-o", str(out),
                        "--json"], cwd=ROOT, check=True, capture_output=True, timeout=300)
        cli_s = time.perf_counter() - t0
    finally:
        node.terminate()
        try:
            node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait(timeout=20)
    assert out.read_bytes() == cand.data
    t0 = time.perf_counter()
    subprocess.run([*ANNOT, "--help"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    help_s = time.perf_counter() - t0
    notes = {"accounts": n, "file_bytes": len(cand.data)}
    return [
        Figure("payout", f"compute epoch + claim file, {n:,} accounts", compute_s, "s",
               keccak_s, f"keccak256 alone, {3 * n - 1:,} hashes",
               f"<= {TARGET_S:g} s", compute_s <= TARGET_S, notes),
        Figure("payout", f"annot payout export, {n:,} accounts", cli_s, "s",
               help_s, "annot --help (process start-up)", notes=notes),
    ]
