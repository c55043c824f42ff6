"""Received records decoded on the loop, their signatures checked on worker threads
(node/core/verifier.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import trio

import node.core.verifier as verifier_mod
from node.core.verifier import MIN_OFFLOAD, Verifier
from protocol.cid import cid_bytes
from protocol.encoding import DEFAULT_LIMITS
from protocol.errors import DecodeError, SignatureError
from protocol.keys import SigningKey
from protocol.records import Annotation, decode_record, sign_record

NET = b"\x11" * 32
TASK = cid_bytes(b"verifier task")


def _annotations(n: int) -> list[bytes]:
    key = SigningKey(b"\x07" * 32)
    return [sign_record(NET, key, s, Annotation(TASK, cid_bytes(b"item %d" % s), "cat")).data
            for s in range(1, n + 1)]


def _forged(data: bytes) -> bytes:
    # the signature is the record's last field: flip its last byte
    return data[:-1] + bytes([data[-1] ^ 1])


def _threads_seen(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    seen: set[int] = set()
    real = verifier_mod.check_signature

    def spy(*args: Any) -> None:
        seen.add(threading.get_ident())
        real(*args)
    monkeypatch.setattr(verifier_mod, "check_signature", spy)
    return seen


async def test_each_record_refused_alone_and_in_order() -> None:
    datas = _annotations(100)
    datas[10] = _forged(datas[10])
    datas[50] = b"\x93not a record"
    v = Verifier(NET, DEFAULT_LIMITS, threads=2)
    out = await v.decode_all(datas)
    assert isinstance(out[10], SignatureError)
    assert isinstance(out[50], DecodeError)
    good = [i for i in range(100) if i not in (10, 50)]
    # the same records, in the same order, as one decode_record each
    assert [out[i] for i in good] == [decode_record(datas[i], NET) for i in good]
    assert v.offloaded == 99  # every decoded record's signature went to the threads


async def test_signatures_are_checked_off_the_loop_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _threads_seen(monkeypatch)
    out = await Verifier(NET, DEFAULT_LIMITS, threads=2).decode_all(_annotations(200))
    assert len(out) == 200 and all(not isinstance(r, Exception) for r in out)
    assert seen and threading.get_ident() not in seen


async def test_a_small_batch_is_checked_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    # a thread hop costs about one check: a vote or two stays on the loop
    seen = _threads_seen(monkeypatch)
    v = Verifier(NET, DEFAULT_LIMITS, threads=2)
    out = await v.decode_all(_annotations(MIN_OFFLOAD - 1))
    assert all(not isinstance(r, Exception) for r in out)
    assert seen == {threading.get_ident()} and v.offloaded == 0


async def test_a_flood_never_waits_for_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # py-libp2p validates each gossip message in a task of its own: if batches waited
    # for a free thread, a flood would pile up decoded batches in memory. At most
    # ``threads`` parts are in the threads at once; the rest are checked inline.
    real = verifier_mod.check_signature
    lock = threading.Lock()
    now, peak = [0], [0]

    def slow(*args: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.002)
            with lock:
                now[0] -= 1
        real(*args)
    monkeypatch.setattr(verifier_mod, "check_signature", slow)
    v = Verifier(NET, DEFAULT_LIMITS, threads=2)
    batches = [_annotations(64) for _ in range(20)]
    results: list[list[Any]] = []

    async def one(datas: list[bytes]) -> None:
        results.append(await v.decode_all(datas))
    async with trio.open_nursery() as nursery:
        for b in batches:
            nursery.start_soon(one, b)
    assert len(results) == 20 and all(not isinstance(r, Exception) for res in results
                                       for r in res)
    assert 1 <= peak[0] <= 2  # never more threads than configured
    assert v.inline > 0 and v.offloaded > 0 and v.inline + v.offloaded == 20 * 64
