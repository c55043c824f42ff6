"""What the sync server sends a peer, and what it does not send again.

:class:`ServeLedger` remembers, for each peer that is no validator, how far the
store had grown when the peer's last whole session began. Within
``RESEND_AFTER_S`` of it, a new session of that peer reads only the records
stored since (``Store.stored_after``): one that keeps no records (a leech, or
an attacker making us read and send the whole store on every sync) pulled
1,200-2,300 records a second from every node in issue 13's mixed attack. An
honest peer stores what it gets, so its clock moves on and it asks for new
records only; one that lost some gets them again after the window. Validators
are always served in full.

:func:`pages` yields what a session sends, a page at a time. Synchronous and
trio-free; the server in ``sync.py`` writes the frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import msgpack

RESEND_AFTER_S = 60.0
MAX_SERVED_PEERS = 1024  # peers remembered for RESEND_AFTER_S (least recent forgotten)


class ServedStore(Protocol):
    """What :func:`pages` reads (``node.store.db.Store`` fits)."""

    def records_after(self, author: bytes, seq: int, limit: int) -> list[bytes]: ...
    def stored_after(self, mark: int, limit: int) -> list[tuple[int, bytes, int, bytes]]: ...


class ServeLedger:
    """Per peer that is no validator: the store's high-water mark and the time of its
    last whole session (at most ``MAX_SERVED_PEERS``, least recent forgotten)."""

    def __init__(self) -> None:
        self._served: dict[str, tuple[int, float]] = {}  # most recent last

    def floor(self, peer: str, now: float) -> int:
        """The mark past which ``peer``'s session reads (0: everything it lacks)."""
        last = self._served.get(peer)
        return last[0] if last is not None and now - last[1] < RESEND_AFTER_S else 0

    def served(self, peer: str, mark: int, now: float) -> None:
        """``peer`` got, in a whole session that began at ``now``, all up to ``mark``."""
        self._served.pop(peer, None)
        self._served[peer] = (mark, now)
        while len(self._served) > MAX_SERVED_PEERS:
            del self._served[next(iter(self._served))]


def seq_of(data: bytes) -> int:
    """A stored record's seq (our own store's bytes, verified when saved)."""
    return int(msgpack.unpackb(data, raw=False)["s"])


def pages(store: ServedStore, mine: dict[bytes, int], theirs: dict[bytes, int],
          have: dict[bytes, set[int]], floor: int, batch: int) -> Iterator[list[bytes]]:
    """The records to send, a page at a time: every author's records above their
    clock (``Store.records_after``, fork evidence included), except those they hold
    past a gap; with a ``floor`` (:meth:`ServeLedger.floor`) only records stored since,
    read in storage order, so a session costs what is new, not a walk through every
    author's records."""
    if floor:
        while new := store.stored_after(floor, batch):
            yield [data for _, author, seq, data in new
                   if seq > theirs.get(author, 0) and seq not in have.get(author, ())]
            if len(new) < batch:
                return
            floor = new[-1][0]
        return
    for author in mine:
        after = theirs.get(author, 0)
        held = have.get(author, set())
        while True:
            rows = store.records_after(author, after, batch)
            # they hold those past a gap already: never resent
            yield [d for d in rows if not held or seq_of(d) not in held]
            if len(rows) < batch:
                break
            after = seq_of(rows[-1])
