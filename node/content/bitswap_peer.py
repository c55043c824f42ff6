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

_ENTRY_OVERHEAD = 16  # protobuf framing of one entry beside its CID, generous


class PeerOutbox:
    """Pending wants, blocks and presences for one peer, coalesced."""

    __slots__ = ("_kick_recv", "_kick_send", "blocks", "closed", "max_presences", "peer",
                 "presences", "wants")

    def __init__(self, peer: object, max_presences: int = 8192) -> None:
        self.peer = peer
        self.wants: dict[bytes, WantEntry] = {}  # wire CID -> latest entry
        self.blocks: dict[bytes, bytes] = {}  # normalized CID -> wire CID, in order
        self.presences: dict[bytes, BlockPresence] = {}  # wire CID -> presence
        self.max_presences = max_presences
        self.closed = False  # the peer is gone or banned: the sender stops
        self._kick_send, self._kick_recv = trio.open_memory_channel[None](1)

    def empty(self) -> bool:
        return not (self.wants or self.blocks or self.presences)

    def close(self) -> None:
        """Forget everything owed and wake the sender so it ends now."""
        self.clear()
        self.closed = True
        self._kick()

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

    def add_presence(self, presence: BlockPresence) -> bool:
        """Queue a presence; False (dropped) past ``max_presences`` queued — they are
        advisory, and a peer asking faster than it reads must not grow our memory."""
        if presence.cid not in self.presences and len(self.presences) >= self.max_presences:
            return False
        self.presences[presence.cid] = presence
        self._kick()
        return True

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
        self, max_wants: int, max_blocks: int, max_presences: int | None = None
    ) -> tuple[list[WantEntry], list[BlockPresence], list[tuple[bytes, bytes]]]:
        """Remove and return up to the given numbers of wants, presences and blocks."""
        wants = [self.wants.pop(k) for k in list(self.wants)[:max_wants]]
        keys = list(self.presences)[:max_presences]
        presences = [self.presences.pop(k) for k in keys]
        blocks = [(k, self.blocks.pop(k)) for k in list(self.blocks)[:max_blocks]]
        return wants, presences, blocks


def pack_messages(
    wants: list[WantEntry],
    presences: list[BlockPresence],
    blocks: list[Block],
    budget: int,
) -> Iterator[BitswapMessage]:
    """Cut entries into messages of about ``budget`` bytes; control entries go first.

    Wants and presences are cut by their real size too (a CID is echoed back as
    the peer sent it), so no number of them makes a message past the frame limit."""
    while _control_size(wants, presences) > budget:
        nw: list[WantEntry] = []
        np_: list[BlockPresence] = []
        size = 0
        for w in wants:
            if nw and size + _cost(w.cid) > budget:
                break
            nw.append(w)
            size += _cost(w.cid)
        for p in presences if size < budget else ():
            if (nw or np_) and size + _cost(p.cid) > budget:
                break
            np_.append(p)
            size += _cost(p.cid)
        wants, presences = wants[len(nw):], presences[len(np_):]
        yield BitswapMessage(wants=tuple(nw), presences=tuple(np_))
    batch: list[Block] = []
    size = _control_size(wants, presences)
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


def _cost(cid: bytes) -> int:
    return len(cid) + _ENTRY_OVERHEAD


def _control_size(wants: list[WantEntry], presences: list[BlockPresence]) -> int:
    return sum(_cost(w.cid) for w in wants) + sum(_cost(p.cid) for p in presences)


def _message(
    wants: list[WantEntry], presences: list[BlockPresence], blocks: list[Block], first: bool
) -> BitswapMessage:
    if not first:
        return BitswapMessage(blocks=tuple(blocks))
    return BitswapMessage(wants=tuple(wants), blocks=tuple(blocks), presences=tuple(presences))
