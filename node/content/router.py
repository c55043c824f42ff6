"""Content: where blocks come from and where they go.

A block is looked up in the local block store first, then fetched from peers
over bitswap, then (when ``[ipfs] api`` is set) from a Kubo daemon; whatever
arrives is verified against its CID and kept locally. Blocks put here are also
pushed to and pinned on Kubo, so they reach the public IPFS network. Kubo is a
best-effort mirror: its failures are logged, never lose a local write.
"""

from __future__ import annotations

import logging

import trio

from node.content.bitswap import BitswapService
from node.content.block_group import BlockGroup
from node.content.blockstore import BlockStore
from node.content.kubo import KuboClient
from node.errors import NodeError
from protocol import cid as cidlib

log = logging.getLogger("annot.content")

FETCH_TIMEOUT_S = 10.0


class Content:
    def __init__(self, blocks: BlockStore, bitswap: BitswapService | None = None,
                 kubo: KuboClient | None = None) -> None:
        self.blocks = blocks
        self.bitswap = bitswap
        self.kubo = kubo
        self.group = BlockGroup(blocks)  # concurrent puts (an RPC batch): one durable write

    async def put(self, data: bytes, codec: int = cidlib.RAW) -> bytes:
        """Store a block locally (verified, atomic, durable with the puts that came with
        it), then mirror it to Kubo."""
        cid = await self.group.put(data, codec)
        if self.bitswap is not None:
            self.bitswap.announce(cid)  # peers that already want it get it now
        if self.kubo is not None:
            try:
                await self.kubo.put_block(data, codec, pin=True)
            except NodeError as exc:
                log.warning("kubo: could not push %s: %s", cidlib.cid_to_str(cid), exc)
        return cid

    async def get(self, cid: bytes, timeout: float = FETCH_TIMEOUT_S) -> bytes | None:
        """The block's bytes from here, a peer, or Kubo; None if nobody has it."""
        data = await trio.to_thread.run_sync(self.blocks.get, cid)
        if data is not None:
            return data
        if self.bitswap is not None:
            try:
                got = await self.bitswap.get_blocks([cid], timeout=timeout)
                if cid in got:
                    return got[cid]
            except NodeError as exc:
                log.info("bitswap: %s not fetched: %s", cidlib.cid_to_str(cid), exc)
        if self.kubo is not None:
            try:
                with trio.fail_after(timeout):
                    data = await self.kubo.get_block(cid)  # verified against the CID
            except (NodeError, trio.TooSlowError) as exc:
                log.info("kubo: %s not fetched: %s", cidlib.cid_to_str(cid), exc)
                return None
            await trio.to_thread.run_sync(self.blocks.put_block, cid, data)
            return data
        return None
