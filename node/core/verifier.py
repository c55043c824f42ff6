"""Received records checked with every core: decoded on the event loop, their
signatures checked in worker threads.

A record's decode (msgpack, the canonical-form walk, its CID) takes ~18 us and
holds the GIL; its Ed25519 check takes ~55 us in PyNaCl, which releases the GIL.
So a batch (a gossip message, a sync frame) is decoded here, on the caller's
thread, and its signatures are checked in up to ``threads`` worker threads at once,
shared by every caller (one per core by default): the loop goes on with other
work, such as saving the previous batch, while the other cores verify this one.
When every thread is busy, a batch is checked inline instead of waiting: callers
never pile up (see ``_check_in_threads``).
Decoding in the threads too, as sync did, only moved GIL-holding work off the loop
to contend for the GIL with it.

A batch of fewer than ``MIN_OFFLOAD`` records is checked inline: a hop to a worker
thread and back costs about as much as one check.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import trio

from protocol.encoding import Limits
from protocol.errors import ProtocolError
from protocol.records import Record, check_signature, decode_signed

MIN_OFFLOAD = 8
MIN_CHUNK = 32  # records per worker thread, at least

Checked = list[Record | ProtocolError]
_Todo = list[tuple[int, Record, bytes]]


class Verifier:
    """Decodes and verifies batches of records for one network; see the module doc."""

    def __init__(self, network_id: bytes, limits: Limits, threads: int = 0) -> None:
        self.network_id = network_id
        self.limits = limits
        self.threads = threads or max(1, os.cpu_count() or 1)
        self._busy = 0  # parts being checked in worker threads now (at most ``threads``)
        self.offloaded = 0  # records whose signature a worker thread checked
        self.inline = 0  # records of large batches checked inline: every thread was busy

    async def decode_all(self, datas: Sequence[bytes]) -> Checked:
        """Each record decoded and verified, in order, or the ``ProtocolError`` that
        refuses it (one bad record never refuses the others)."""
        out: Checked = []
        todo: _Todo = []
        for data in datas:
            try:
                record, signed = decode_signed(data, self.network_id, self.limits)
            except ProtocolError as exc:
                out.append(exc)
                continue
            todo.append((len(out), record, signed))
            out.append(record)
        if len(todo) < MIN_OFFLOAD:
            failed = self._check(todo)
        else:
            failed = await self._check_in_threads(todo)
        for i, error in failed:
            out[i] = error
        return out

    async def _check_in_threads(self, todo: _Todo) -> list[tuple[int, ProtocolError]]:
        parts = max(1, min(self.threads, len(todo) // MIN_CHUNK))
        step = -(-len(todo) // parts)
        failed: list[tuple[int, ProtocolError]] = []

        async def one(part: _Todo) -> None:
            try:
                failed.extend(await trio.to_thread.run_sync(self._check, part))
            finally:
                self._busy -= 1
        async with trio.open_nursery() as nursery:
            for k in range(0, len(todo), step):
                part = todo[k:k + step]
                if self._busy < self.threads:
                    self._busy += 1
                    self.offloaded += len(part)
                    nursery.start_soon(one, part)
                else:
                    # every thread busy: checked here and now. This is the bound: py-libp2p
                    # runs each gossip message's validator as a task of its own, so waiting
                    # for a thread would let a flood pile up decoded batches in memory;
                    # checking inline paces the reader as the loop always did.
                    self.inline += len(part)
                    failed.extend(self._check(part))
        return failed

    def _check(self, todo: _Todo) -> list[tuple[int, ProtocolError]]:
        # in a worker thread (or inline): signatures only, no store, no trio
        failed = []
        for i, record, signed in todo:
            try:
                check_signature(record, signed, self.network_id)
            except ProtocolError as exc:
                failed.append((i, exc))
        return failed
