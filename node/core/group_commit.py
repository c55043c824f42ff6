"""Group commit: client submissions that arrive together share one fsync.

Every record a client has been told is saved must survive power loss, so each
acknowledged record is fsynced before its answer goes out (docs/protocol.md,
Durability). One fsync per record caps a node at a few hundred acknowledged
records per second; here the first submission of a group waits one scheduler
turn, so every submission that arrived meanwhile (a JSON-RPC batch, other
clients, the gateway) joins it, then saves them all in one transaction: one fsync,
then every one of them is answered. Each submission is decoded and verified on
its own first, so a bad record is refused alone and never holds the others back.

The fsync itself runs in a worker thread: the group is committed without one
(``synchronous=NORMAL``, a few hundred microseconds on the loop), then
``Store.sync_wal`` fsyncs the WAL off the loop, and only then is any member
answered, or its record gossiped. A 256-record batch's fsync took ~10 ms, all of
it on the event loop that every peer, vote and RPC waits on; now the loop goes on
decoding, verifying and voting meanwhile. A failed fsync is every member's
answer, as a failed commit is.

Two different records of one author with the same seq in one group: the first
is saved, the second refused with the next free seq, as if they came one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio

from node.core.admission import Verdict
from node.errors import StoreError
from node.store.db import Saved
from protocol.errors import ProtocolError
from protocol.records import Record


class Ingest(Protocol):
    """What the group commit needs of :class:`node.core.ingest.Ingest`, its owner."""

    def prepare(self, data: bytes) -> Record: ...
    def accept_reasons(self, records: Sequence[Record], source: str, sync: bool = True
                       ) -> list[tuple[Saved | Verdict, str]]: ...
    def sync_wal(self) -> None: ...
    def seq_reuse(self, record: Record) -> ProtocolError: ...
    def settle(self, record: Record, outcome: tuple[Saved | Verdict, str]
               ) -> Saved | Verdict: ...


@dataclass(slots=True)
class _Slot:
    record: Record
    done: trio.Event = field(default_factory=trio.Event)
    outcome: tuple[Saved | Verdict, str] | None = None
    error: Exception | None = None
    taken: bool = False  # its group is being saved (answered once durable)


class GroupCommit:
    """Saves concurrent client submissions in one durable transaction per group."""

    def __init__(self, ingest: Ingest, max_group: int = 1024) -> None:
        self.ingest = ingest
        self.max_group = max_group
        self._pending: list[_Slot] = []
        self.groups = 0  # transactions so far (for tests and the bench)

    async def submit(self, data: bytes) -> tuple[Record, Saved | Verdict]:
        """Decode, verify, save durably with whatever arrived at the same time, publish.
        Raises ``ProtocolError`` (this record's own) or ``StoreError`` (the group's)."""
        slot = _Slot(self.ingest.prepare(data))
        self._pending.append(slot)
        if len(self._pending) >= self.max_group:
            await self._commit()
        elif len(self._pending) == 1:  # the leader: let the others join, then save
            try:
                await trio.sleep(0)
            finally:  # even when cancelled: the followers are waiting on this group
                if not slot.taken:
                    await self._commit()
        await slot.done.wait()
        if slot.error is not None:
            raise slot.error
        assert slot.outcome is not None
        return slot.record, self.ingest.settle(slot.record, slot.outcome)

    async def _commit(self) -> None:
        """Save the pending group, fsync it off the loop, then answer every member."""
        with trio.CancelScope(shield=True):  # members wait for their answers
            group = self._flush()
            try:
                if any(s.outcome is not None for s in group):
                    await trio.to_thread.run_sync(self.ingest.sync_wal)
            except OSError as exc:  # not durable: nobody hears "saved"
                err = StoreError(f"the disk refused to sync the store's log: {exc}; "
                                 "nothing in this batch is acknowledged, send it again")
                for s in group:
                    s.error = s.error or err
            finally:
                for s in group:
                    s.done.set()

    def _flush(self) -> list[_Slot]:
        """Take the pending group and save it (no fsync yet); return it, each member
        with its outcome or error."""
        group, self._pending = self._pending, []
        first: dict[tuple[bytes, int], bytes] = {}
        batch: list[_Slot] = []
        reused: list[_Slot] = []
        for s in group:
            s.taken = True
            key = (s.record.author, s.record.seq)
            if first.setdefault(key, s.record.data) != s.record.data:
                reused.append(s)
            else:
                batch.append(s)
        try:
            if batch:
                self.groups += 1
                outcomes = self.ingest.accept_reasons([s.record for s in batch],
                                                      source="rpc", sync=False)
                for s, o in zip(batch, outcomes, strict=True):
                    s.outcome = o
            for s in reused:  # after the save, so the error names the truly next free seq
                s.error = self.ingest.seq_reuse(s.record)
        except Exception as exc:  # a store error is every member's answer
            for s in batch + reused:
                s.error = exc
                s.outcome = None
        return group
