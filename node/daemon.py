"""The daemon: the one module that wires the layers together, in one trio nursery.

store and ingest → p2p (host, gossip, sync) and bitswap → consensus (restores
its state; gets narrow ports, never the node) → admin RPC → public gateway.
SIGINT/SIGTERM cancel the nursery; py-libp2p alone hangs on SIGINT, so the
signal handling is ours. A lock file refuses a second daemon on one home.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import math
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

from node.consensus.ports import ConsensusPorts
from node.consensus.service import ConsensusService
from node.content.bitswap import BitswapService
from node.content.items import ItemResolver
from node.content.kubo import KuboClient
from node.content.router import Content
from node.core.config import Config
from node.core.home import NodeHome
from node.core.local import Node, open_node
from node.core.logs import setup_logging
from node.core.metrics import Metrics
from node.errors import AlreadyRunningError, StoreError
from node.gateway.server import serve_gateway
from node.gateway.service import gateway_for
from node.p2p import P2PNode, serve_p2p
from node.rpc.adapter import NodeRPC
from node.rpc.server import serve_rpc
from protocol.payout import preload
from protocol.records import Record

log = logging.getLogger("annot.service")


@contextmanager
def hold_lock(home: NodeHome) -> Iterator[None]:
    fd = os.open(home.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunningError(home.root) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class RunningNode:
    """What a running daemon is made of, for its own run loop and for tests.

    The parts never see this record: each was handed its narrow interface at
    construction by :func:`open_running_node`, the one place that wires them.
    """

    node: Node
    consensus: ConsensusService
    p2p: P2PNode
    content: Content
    rpc_url: str
    gateway_url: str | None

    @property
    def peer_id(self) -> str:
        return self.node.peer_id


@asynccontextmanager
async def open_running_node(home: NodeHome, config: Config | None = None
                            ) -> AsyncIterator[RunningNode]:
    """Run a node's services in a nursery for the duration of the block.

    Order: store and ingest; consensus subscribes to ingest before anything can
    arrive; p2p (host, gossip, sync) and bitswap; consensus serves (restoring
    its state from the store) once its sync and block ports exist; then the
    admin RPC and the public gateway.
    """
    with hold_lock(home):
        # ingest gossips what it saves through this outbox; p2p drains it once up
        outbox_send, outbox_recv = trio.open_memory_channel[bytes](math.inf)
        node = open_node(home, config, publish=outbox_send.send_nowait)
        cfg = node.config
        try:
            async with trio.open_nursery() as nursery:

                async def on_records(records: list[Record], peer: str) -> None:
                    try:
                        node.ingest.accept(records, source=peer)
                    except StoreError as exc:
                        # refuse rather than corrupt: sync brings them again later
                        log.error("dropped %d records from %s: %s", len(records), peer, exc)

                p2p = await nursery.start(partial(
                    serve_p2p, node.key, node.genesis, cfg, node.store, on_records,
                    metrics=node.metrics))
                nursery.start_soon(_serve_outbox, outbox_recv, p2p.publish_nowait)
                nursery.start_soon(_watch_loop_lag, node.metrics)
                nursery.start_soon(_watch_gc, node.metrics)
                # gossip refuses (never forwards) messages holding a never-valid record
                # and charges their sender; sync and bitswap offenders are charged too
                p2p.set_screen(node.ingest.screen)
                # records waiting for their task are held too: not pulled again each sync
                p2p.set_pool(node.ingest.admission)
                # ingest calls on_invalid(peer, reason): a keyword ``layer`` here collided
                # with penalize's second positional parameter (TypeError on the first
                # never-valid record from sync, which ended the daemon)
                node.ingest.on_invalid = lambda peer, reason: _charge(p2p, peer, reason)
                bitswap = BitswapService(
                    p2p.host.raw, node.blocks,
                    on_penalty=lambda peer, why: p2p.penalize(str(peer), "bitswap", why))
                await nursery.start(bitswap.serve)
                kubo = KuboClient(cfg.ipfs.api) if cfg.ipfs.api else None
                content = Content(node.blocks, bitswap, kubo)
                consensus = ConsensusService(
                    node.genesis, node.public_key, _consensus_ports(node, p2p, content),
                    cfg.consensus)
                # a folder task reaches consensus once its items directory is resolved
                # (local blocks, then peers); every other record passes straight through
                items = ItemResolver(node.store, content.get, consensus.records_nowait)
                node.ingest.subscribe(items.records_nowait)
                nursery.start_soon(items.serve)
                await nursery.start(consensus.serve)
                items.restore(node.genesis.network_id)
                rpc_url = await nursery.start(partial(
                    serve_rpc, NodeRPC(node, p2p, consensus, content), cfg.rpc, home.root,
                    node.metrics.render, on_call=node.metrics.count_rpc))
                gateway_url = None
                if cfg.gateway.enabled:
                    gateway_url = await nursery.start(partial(
                        serve_gateway, gateway_for(node, p2p, content), cfg.gateway, home.root))
                log.info("annot node %s up: p2p %s, rpc %s, gateway %s", node.peer_id,
                         " ".join(p2p.listen_addrs()), rpc_url, gateway_url or "off")
                yield RunningNode(node, consensus, p2p, content, rpc_url, gateway_url)
                nursery.cancel_scope.cancel()
        finally:
            node.close()


def _consensus_ports(node: Node, p2p: P2PNode, content: Content) -> ConsensusPorts:
    """The narrow interfaces consensus gets: the store, our signer, sync and blocks."""
    sync_timeout = node.config.sync.request_timeout_s

    async def request_sync() -> None:
        with trio.move_on_after(sync_timeout):
            await p2p.request_sync()

    async def fetch_block(cid: bytes, timeout: float) -> bytes | None:
        return await content.get(cid, timeout=timeout)

    def put_block(data: bytes) -> None:
        node.blocks.put(data)

    return ConsensusPorts(store=node.store, sign_own=node.sign_own, metrics=node.metrics,
                          request_sync=request_sync, fetch_block=fetch_block,
                          put_block=put_block)


def _charge(p2p: P2PNode, peer: str, reason: str) -> None:
    """Charge ``peer`` for a never-valid record (ingest's ``on_invalid``)."""
    p2p.penalize(peer, "records", reason)


LAG_PROBE_S = 0.05


async def _watch_loop_lag(metrics: Metrics) -> None:
    """Observe how late a short sleep wakes: the event loop is one thread, so anything
    that holds it (a big decode, a synchronous verify) delays every RPC and vote."""
    while True:
        t = trio.current_time()
        await trio.sleep(LAG_PROBE_S)
        metrics.loop_lag.observe(max(0.0, trio.current_time() - t - LAG_PROBE_S))


async def _watch_gc(metrics: Metrics) -> None:
    """Time every cyclic garbage collection (``gc.callbacks``) until cancelled."""
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            metrics.gc_pause.labels(generation=str(info["generation"])).observe(
                time.perf_counter() - started[0])
    gc.callbacks.append(on_gc)
    try:
        await trio.sleep_forever()
    finally:
        gc.callbacks.remove(on_gc)


async def _serve_outbox(outbox: trio.MemoryReceiveChannel[bytes],
                        publish_nowait: Callable[[bytes], bool]) -> None:
    """Hand every record ingest saved to gossip (which batches, or drops and lets sync
    repair when its buffer is full)."""
    async for data in outbox:
        publish_nowait(data)


async def _run(home: NodeHome) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_running_node(home) as running:
            # what start-up loaded (py-libp2p, protobuf, the store's caches: most of the
            # heap) lives as long as the node; frozen, every full collection skips it
            # (under attack, 35-40% less collector time per node in the mixed attack)
            gc.collect()
            gc.freeze()
            running.node.metrics.gc_frozen.set(gc.get_freeze_count())
            async for sig in signals:
                log.info("received %s, shutting down %s", signal.Signals(sig).name,
                         running.peer_id)
                break


def run_node(home: Path) -> None:
    """``annot run``: run the daemon in the foreground until SIGINT/SIGTERM."""
    h = NodeHome(home)
    h.load_key()  # refuse an unsafe or missing key before anything heavy is imported
    cfg = h.load_config()
    from node.core.ports import check_ports, no_reuseport

    with hold_lock(h):  # "already running" says more than "port in use" for one home
        pass
    check_ports(cfg)  # PortsInUseError: one line per taken listener, no traceback
    no_reuseport()  # and no second process may share our p2p port
    setup_logging(cfg.log.level, cfg.log.format)
    # eth-account's import (payout bindings) costs ~0.6 s of CPU: done beside startup,
    # not on the event loop at the first binding a client submits
    threading.Thread(target=preload, name="preload", daemon=True).start()
    trio.run(_run, h)
    log.info("stopped")
