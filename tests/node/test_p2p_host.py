"""The libp2p host: identity from the node key, Noise only, real bound addresses, bans."""

from __future__ import annotations

import threading
from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.exceptions import SwarmDialAllFailedError
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from p2p_cluster import key, open_cluster, wait_until

from node.core.config import P2PConfig
from node.p2p import BanList, DialError, PeerScores, open_host, serve_bootstrap

CFG = P2PConfig(listen=("/ip4/127.0.0.1/tcp/0",), reconnect_min_s=0.1, reconnect_max_s=0.4)


async def test_identity_and_bound_addrs() -> None:
    with trio.fail_after(10):
        async with open_host(key(0), CFG) as host:
            assert host.peer_id == key(0).peer_id
            (addr,) = host.listen_addrs()
            assert addr.startswith("/ip4/127.0.0.1/tcp/")
            assert addr.endswith(f"/p2p/{key(0).peer_id}")
            assert "/tcp/0/" not in addr


async def test_connect_disconnect_and_events() -> None:
    with trio.fail_after(15):
        async with open_host(key(0), CFG) as a, open_host(key(1), CFG) as b:
            seen: list[tuple[str, bool]] = []
            a.add_listener(lambda ev: seen.append((ev.peer, ev.connected)))
            assert await b.connect(a.listen_addrs()[0]) == a.peer_id
            await wait_until(lambda: (b.peer_id, True) in seen)
            assert a.connected_peers() == [b.peer_id]
            await b.disconnect(a.peer_id)
            await wait_until(lambda: (b.peer_id, False) in seen)
            await wait_until(lambda: not a.connected_peers())


async def test_plaintext_dialer_is_refused() -> None:
    kp = create_new_key_pair(key(5).seed)
    plain = new_host(key_pair=kp, sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(kp)},
                     listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
    with trio.fail_after(15):
        async with open_host(key(0), CFG) as a:
            async with plain.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
                info = info_from_p2p_addr(multiaddr.Multiaddr(a.listen_addrs()[0]))
                # every address failed the security handshake (no Noise): a refused dial
                with pytest.raises(SwarmDialAllFailedError, match="unable to connect"):
                    await plain.connect(info)
                assert not a.connected_peers()
                assert not plain.get_connected_peers()


async def test_banned_peer_is_disconnected_and_refused() -> None:
    with trio.fail_after(15):
        async with open_host(key(0), CFG) as a, open_host(key(1), CFG) as b:
            await b.connect(a.listen_addrs()[0])
            scores = PeerScores(threshold=3, bans=a.bans)
            banned = [scores.invalid(b.peer_id, trio.current_time()) for _ in range(3)]
            assert banned == [False, False, True]
            a.ban(b.peer_id, 60)
            await wait_until(lambda: not a.connected_peers())
            # b redials: a drops the connection again as soon as it is up
            try:
                await b.connect(a.listen_addrs()[0])
            except DialError:
                pass
            await trio.sleep(0.5)
            assert b.peer_id not in a.connected_peers()
            with pytest.raises(DialError, match="banned"):
                await a.connect(b.listen_addrs()[0])


def test_ban_list_expires() -> None:
    bans = BanList()
    bans.ban("p", now=100.0, seconds=10)
    assert bans.is_banned("p", 105.0)
    assert not bans.is_banned("p", 111.0)
    assert bans.banned(111.0) == []


async def test_bootstrap_redials_with_backoff(tmp_path: Path) -> None:
    with trio.fail_after(20):
        async with open_host(key(0), CFG) as a:
            addr = a.listen_addrs()[0]
            cfg = P2PConfig(listen=CFG.listen, bootstrap=(addr,), reconnect_min_s=0.1,
                            reconnect_max_s=0.4)
            async with open_host(key(1), cfg) as b, trio.open_nursery() as nursery:
                await nursery.start(serve_bootstrap, b, cfg)
                await wait_until(lambda: a.peer_id in b.connected_peers())
                await a.disconnect(b.peer_id)
                await wait_until(lambda: not b.connected_peers())
                await wait_until(lambda: a.peer_id in b.connected_peers())  # redialed
                nursery.cancel_scope.cancel()


async def test_bootstrap_unreachable_keeps_trying() -> None:
    dead = f"/ip4/127.0.0.1/tcp/1/p2p/{key(3).peer_id}"
    cfg = P2PConfig(listen=CFG.listen, bootstrap=(dead,), reconnect_min_s=0.05,
                    reconnect_max_s=0.2)
    with trio.fail_after(10):
        async with open_host(key(1), cfg) as b, trio.open_nursery() as nursery:
            await nursery.start(serve_bootstrap, b, cfg)
            await trio.sleep(1.0)
            assert not b.connected_peers()
            nursery.cancel_scope.cancel()


async def test_cluster_nodes_connect(tmp_path: Path) -> None:
    with trio.fail_after(15):
        async with open_cluster(tmp_path, 2) as c:
            await c.connect(1, 0)
            await wait_until(lambda: c.nodes[0].peers() == [c.nodes[1].peer_id])
            assert c.nodes[0].topics == [c.genesis.topic()]
    # py-libp2p's per-Pubsub sweeper threads are stopped on shutdown
    assert not [t for t in threading.enumerate() if "_background_cleanup" in t.name]


async def test_the_auto_connector_never_dials_the_peerstore(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """py-libp2p's auto-connector dialed every identity in the peerstore every 10 s
    (after issue 13's mixed attack: ~194 dead attacker identities a cycle, at addresses
    they chose). annot's own loop keeps its peers connected; the connector stays off."""
    cfg = P2PConfig(listen=("/ip4/127.0.0.1/tcp/0",))
    async with open_host(key(0x71), cfg) as a, open_host(key(0x72), cfg) as b:
        await a.connect(b.listen_addrs()[0])
        await a.disconnect(b.peer_id)  # b stays in a's peerstore, as a gone peer would
        swarm = a.raw.get_network()
        dialed: list[object] = []

        async def dial(peer_id: object, *args: object, **kwargs: object) -> None:
            dialed.append(peer_id)
        monkeypatch.setattr(swarm, "dial_peer", dial)
        assert b.peer_id in {str(p) for p in a.raw.get_peerstore().peer_ids()}
        await swarm.auto_connector.maybe_connect()  # what its 10 s timer would do
        await trio.sleep(0.2)
        assert dialed == [] and not swarm.auto_connector._started
