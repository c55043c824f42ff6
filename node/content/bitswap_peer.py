"""What annot owes one bitswap peer, and how it is cut into messages.

A :class:`PeerOutbox` collects everything still to be sent to one peer —
our wantlist changes (wants and cancels), blocks it asked for, and HAVE /
DONT_HAVE presences — keyed so that a later entry replaces an earlier one
(a cancel that arrives before its block was sent removes the block). The
service's per-peer sender task drains it onto the single outbound stream it
keeps to that peer: that stream is where the bitswap spec, Kubo and Helia
expect responses, never the stream the request came in on.

:func:`pack_messages` is the pure part: given the drained entries and the
block bytes, it yields :class:`~node.content.bitswap_msg.BitswapMessage` values no
larger than a byte budget (a single block over the budget travels alone).
"""

from __future__ import annotations

from collections.abc import Iterator

import trio

from node.content.bitswap_msg import BitswapMessage, Block, BlockPresence, WantEntry

__all__ = ["PeerOutbox", "pack_messages"]

_ENTRY_OVERHEAD = 48  # protobuf framing + CID, generous


class PeerOutbox:
    """Pending wants, blocks and presences for one peer, coalesced."""

    __slots__ = ("_kick_recv", "_kick_send", "blocks", "peer", "presences", "wants")

    def __init__(self, peer: object) -> None:
        self.peer = peer
        self.wants: dict[bytes, WantEntry] = {}  # wire CID -> latest entry
        self.blocks: dict[bytes, bytes] = {}  # normalized CID -> wire CID, in order
        self.presences: dict[bytes, BlockPresence] = {}  # wire CID -> presence
        self._kick_send, self._kick_recv = trio.open_memory_channel[None](1)

    def empty(self) -> bool:
        return not (self.wants or self.blocks or self.presences)

    def _kick(self) -> None:
        try:
            self._kick_send.send_nowait(None)
        except trio.WouldBlock:
            pass  # a wake-up is already pending; one is enough

    def add_want(self, entry: WantEntry) -> None:
        self.wants[entry.cid] = entry
        self._kick()

    def add_block(self, cid: bytes, wire_cid: bytes) -> None:
        self.blocks[cid] = wire_cid
        self._kick()

    def add_presence(self, presence: BlockPresence) -> None:
        self.presences[presence.cid] = presence
        self._kick()

    def drop(self, cid: bytes, wire_cid: bytes) -> None:
        """The peer cancelled its want: forget what we had not sent yet."""
        self.blocks.pop(cid, None)
        self.presences.pop(wire_cid, None)

    def clear(self) -> None:
        self.wants.clear()
        self.blocks.clear()
        self.presences.clear()

    async def wait(self, timeout: float) -> bool:
        """Wait for something to send; False if ``timeout`` passed first."""
        with trio.move_on_after(timeout):
            await self._kick_recv.receive()
            return True
        return False

    def take(
        self, max_wants: int, max_blocks: int
    ) -> tuple[list[WantEntry], list[BlockPresence], list[tuple[bytes, bytes]]]:
        """Remove and return up to the given numbers of wants and blocks, all presences."""
        wants = [self.wants.pop(k) for k in list(self.wants)[:max_wants]]
        presences = list(self.presences.values())
        self.presences.clear()
        blocks = [(k, self.blocks.pop(k)) for k in list(self.blocks)[:max_blocks]]
        return wants, presences, blocks


def pack_messages(
    wants: list[WantEntry],
    presences: list[BlockPresence],
    blocks: list[Block],
    budget: int,
) -> Iterator[BitswapMessage]:
    """Cut entries into messages of about ``budget`` bytes; control entries go first."""
    batch: list[Block] = []
    size = _ENTRY_OVERHEAD * (len(wants) + len(presences))
    first = True
    for block in blocks:
        cost = len(block.data) + _ENTRY_OVERHEAD
        if batch and size + cost > budget:
            yield _message(wants, presences, batch, first)
            first, batch, size = False, [], 0
        batch.append(block)
        size += cost
    if batch or (first and (wants or presences)):
        yield _message(wants, presences, batch, first)


def _message(
    wants: list[WantEntry], presences: list[BlockPresence], blocks: list[Block], first: bool
) -> BitswapMessage:
    if not first:
        return BitswapMessage(blocks=tuple(blocks))
    return BitswapMessage(wants=tuple(wants), blocks=tuple(blocks), presences=tuple(presences))
