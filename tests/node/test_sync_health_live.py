"""Issue 15: sync health in ``annot status``, ``annot peers`` and ``/metrics``, on real
nodes.

Before, a joining node that refused every sync batch and then banned its only
validator showed none of it: ``status`` and ``peers`` listed counts and peer ids
only. Now each peer's records behind, last good sync, last error and ban (with its
reason) are in the RPC results, the CLI output and the metrics. Two ``annot run``
processes sync with each other; a third, in-process libp2p node on another network
connects to one of them and is banned for it (a misconfigured peer, as an operator
meets one).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import trio
from harness import ANNOT, ROOT, Cluster
from libp2p.io.msgio import VarIntLengthMsgReadWriter
from libp2p.peer.id import ID
from p2p_cluster import open_cluster

from node.p2p import frames as fr
from protocol import cid as cidlib
from protocol.keys import SigningKey
from protocol.records import Task, sign_record


def _annot(*args: str) -> str:
    out = subprocess.run([*ANNOT, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _health(c: Cluster, i: int, method: str = "node.status") -> dict[str, dict[str, object]]:
    return {h["peer_id"]: h for h in c.rpc(i, method)["sync"]}


def test_status_peers_and_metrics_show_sync_health_and_bans(tmp_path: Path) -> None:
    with Cluster(tmp_path / "net", n=2) as c:
        c.start()
        c.wait_connected()
        task = sign_record(c.genesis.network_id, SigningKey(b"\x77" * 32), 1, Task(
            "health", ("a", "b"), (cidlib.cid_bytes(b"item"),), 1, 0, 0))
        c.submit(0, task.data)
        p0 = c.peer_id(0)

        def synced() -> bool:
            h = _health(c, 1).get(p0)
            return h is not None and h["last_ok"] is not None and c.status(1)["record_count"] >= 1
        c.wait(synced, 30, "a good sync with node 0")
        h0 = _health(c, 1)[p0]
        assert h0["connected"] is True and h0["last_error"] is None
        assert h0["banned_for_s"] is None and h0["ban_reason"] is None

        # an outsider on another network connects to node 1: banned, with the reason
        outsider_id = trio.run(_outsider_banned_by, c, tmp_path / "outsider")
        h = _health(c, 1)[outsider_id]
        assert "peer is on network" in str(h["ban_reason"])
        assert float(h["banned_for_s"]) > 0  # type: ignore[arg-type]
        peers = _health(c, 1, "node.peers")
        assert outsider_id in peers and p0 in peers  # bans outlive the connection

        home = str(c.home(1))
        status = _annot("status", "--home", home)
        assert "LAST SYNC" in status and "s ago" in status
        assert outsider_id in status and "peer is on network" in status
        listing = _annot("peers", "--home", home)
        assert p0 in listing and outsider_id in listing and "peer is on network" in listing

        metrics = httpx.get(f"http://127.0.0.1:{c.rpc_ports[1]}/metrics").text
        assert (f'annot_p2p_peer_banned_seconds{{peer="{outsider_id}",'
                f'reason="sync: peer is on network') in metrics
        assert f'annot_sync_peer_last_ok_seconds{{peer="{p0}"}}' in metrics


async def _outsider_banned_by(c: Cluster, tmp: Path) -> str:
    """Run a libp2p node of another network, connect it to node 1, and wait until node 1
    bans it; its peer id."""
    async with open_cluster(tmp, 0) as other:
        outsider = await other.add(9)  # a key of its own (keys 0.. are the harness's)
        assert outsider.peer_id not in (c.peer_id(0), c.peer_id(1))
        async def hang_up(stream: Any) -> None:  # node 1's sync sessions with it fail
            await stream.reset()
        # (its own sync server would ban node 1 first, for the same wrong network)
        for proto in fr.SYNC_PROTOCOLS:
            outsider.host.raw.set_stream_handler(proto, hang_up)
        # its sync hello names its own network; node 1 may drop the first connection
        # (its gossip and sync meet a peer of another topic), so dial again, bounded
        for _ in range(50):
            try:
                await outsider.connect(c.addr(1))
                stream = await outsider.host.raw.new_stream(ID.from_base58(c.peer_id(1)),
                                                            [fr.SYNC_PROTOCOL])
                rw = VarIntLengthMsgReadWriter(stream, max_msg_size=1 << 21)
                await rw.write_msg(fr.encode_hello(other.genesis.network_id, [], False))
                break
            except Exception:  # a dropped connection: try again
                await trio.sleep(0.2)

        def banned() -> bool:
            h = _health(c, 1).get(outsider.peer_id)
            return h is not None and h["banned_for_s"] is not None
        await trio.to_thread.run_sync(lambda: c.wait(banned, 30, "the outsider banned"))
        other.nursery.cancel_scope.cancel()
        return outsider.peer_id
