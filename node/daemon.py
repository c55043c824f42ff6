"""The daemon: every subsystem in one trio nursery, started in dependency order.

store → consensus (restores its state) → p2p (host, gossip, sync, bitswap) →
RPC. SIGINT/SIGTERM cancel the nursery; py-libp2p alone hangs on SIGINT, so
the signal handling is ours. A lock file refuses a second daemon on one home.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path

import trio

from node.consensus.service import ConsensusService
from node.core.config import Config
from node.core.home import NodeHome
from node.core.local import Node, open_node
from node.core.logs import setup_logging
from node.errors import AlreadyRunningError, StoreError
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


@asynccontextmanager
async def open_running_node(home: NodeHome, config: Config | None = None
                            ) -> AsyncIterator[Node]:
    """Run a node's services in a nursery for the duration of the block."""
    from node.content.bitswap import BitswapService
    from node.content.kubo import KuboClient
    from node.content.router import Content
    from node.p2p import serve_p2p
    from node.rpc.server import serve_rpc

    with hold_lock(home):
        node = open_node(home, config)
        try:
            async with trio.open_nursery() as nursery:
                consensus = ConsensusService(node)
                await nursery.start(consensus.serve)
                node.consensus = consensus

                async def on_records(records: list[Record], peer: str) -> None:
                    try:
                        node.ingest.accept(records, source=peer)
                    except StoreError as exc:
                        # refuse rather than corrupt: sync brings them again later
                        log.error("dropped %d records from %s: %s", len(records), peer, exc)

                p2p = await nursery.start(partial(
                    serve_p2p, node.key, node.genesis, node.config, node.store, on_records,
                    metrics=node.metrics))
                node.p2p = p2p
                node.ingest.publish = p2p.publish_nowait
                bitswap = BitswapService(p2p.host.raw, node.blocks)
                await nursery.start(bitswap.serve)
                kubo = KuboClient(node.config.ipfs.api) if node.config.ipfs.api else None
                node.content = Content(node.blocks, bitswap, kubo)
                from node.rpc.adapter import NodeRPC
                url = await nursery.start(partial(
                    serve_rpc, NodeRPC(node), node.config.rpc, home.root, node.metrics.render,
                    on_call=node.metrics.count_rpc))
                log.info("annot node %s up: p2p %s, rpc %s", node.peer_id,
                         " ".join(p2p.listen_addrs()), url)
                yield node
                nursery.cancel_scope.cancel()
        finally:
            node.close()


async def _run(home: NodeHome) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_running_node(home) as node:
            async for sig in signals:
                log.info("received %s, shutting down %s", signal.Signals(sig).name, node.peer_id)
                break


def run_node(home: Path) -> None:
    """``annot run``: run the daemon in the foreground until SIGINT/SIGTERM."""
    h = NodeHome(home)
    h.load_key()  # refuse an unsafe or missing key before anything heavy is imported
    cfg = h.load_config()
    setup_logging(cfg.log.level, cfg.log.format)
    trio.run(_run, h)
    log.info("stopped")
