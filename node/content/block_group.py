"""Group commit for block puts: blocks that arrive together share one durable write.

A folder added with ``annot add -r`` or ``annot task create --items-dir`` reaches the
node as JSON-RPC batches of ``block.put`` calls, which the RPC runs concurrently.
Each put used to write and fsync its own file and its shard directory: two fsyncs per
block, 305 s for a 10,000-file folder. Here the first put of a group yields one
scheduler turn so the rest of the batch joins it, then the whole group is written by
:meth:`BlockStore.put_blocks` (two syncs for all of it) in a worker thread, and only
then is any of them answered: every acknowledged block is durable, so the task record
a client signs next never names a block a crash could lose.

A block refused on its own (too large) fails alone; an error of the write (a full
disk) fails every put of its group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from node.content.blockstore import MAX_BLOCK_SIZE, BlockStore, BlockTooLargeError
from protocol.cid import RAW, cid_bytes


@dataclass(slots=True)
class _Slot:
    cid: bytes
    data: bytes
    done: trio.Event = field(default_factory=trio.Event)
    error: Exception | None = None


class BlockGroup:
    """Writes concurrent block puts to ``blocks`` in durable groups."""

    def __init__(self, blocks: BlockStore, max_group: int = 512) -> None:
        self.blocks = blocks
        self.max_group = max_group
        self._pending: list[_Slot] = []
        self.groups = 0  # batches written so far (for tests and the bench)

    async def put(self, data: bytes, codec: int = RAW) -> bytes:
        """Store one block with whatever arrives at the same time; its binary CID once
        it is durable. Raises ``BlockTooLargeError`` or the group's ``BlockWriteError``."""
        if len(data) > MAX_BLOCK_SIZE:
            raise BlockTooLargeError(len(data))
        slot = _Slot(cid_bytes(data, codec), data)
        self._pending.append(slot)
        if len(self._pending) == 1:  # the leader: let the others join, then write
            with trio.CancelScope(shield=True):  # the followers wait on this group
                await trio.sleep(0)
                while self._pending:  # past max_group: the rest too, group by group
                    await self._flush()
        await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.cid

    async def _flush(self) -> None:
        group = self._pending[:self.max_group]
        del self._pending[:self.max_group]
        self.groups += 1
        try:
            await trio.to_thread.run_sync(self.blocks.put_blocks,
                                          [(s.cid, s.data) for s in group])
        except Exception as exc:  # handed to every waiter of the group
            for s in group:
                s.error = exc
        for s in group:
            s.done.set()
