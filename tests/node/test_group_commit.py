"""Group commit: client submissions that arrive together are saved in one durable
transaction, each still answered (and refused) on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.core.admission import AdmissionError, Verdict
from node.core.ingest import Ingest, OwnKeyError, SeqReuseError
from node.core.metrics import Metrics
from node.errors import StoreError
from node.store.db import Saved, open_store
from protocol import cid as cidlib
from protocol.errors import ProtocolError
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.records import Annotation, Task, sign_record

REQ = SigningKey(b"\x51" * 32)
G = Genesis(name="group", validators=(Validator(SigningKey(b"\x52" * 32).peer_id, 1),))
ITEMS = tuple(cidlib.cid_bytes(f"item {k}".encode()) for k in range(40))


def _setup(tmp_path: Path) -> tuple[Ingest, bytes, list[bytes]]:
    store = open_store(tmp_path / "s.db")
    published: list[bytes] = []
    ing = Ingest(store, G, Metrics(), publish=published.append)
    task = sign_record(G.network_id, REQ, 1, Task("t", ("cat", "dog"), ITEMS, 3, 10, 0))
    ing.submit(task.data)
    published.clear()
    return ing, task.cid, published


def _label(key: SigningKey, seq: int, task: bytes, item: int, label: str) -> bytes:
    return sign_record(G.network_id, key, seq, Annotation(task, ITEMS[item], label)).data


async def _submit_all(ing: Ingest, records: list[bytes]) -> list[object]:
    out: list[object] = [None] * len(records)

    async def one(i: int) -> None:
        try:
            out[i] = (await ing.submit_async(records[i]))[1]
        except ProtocolError as exc:
            out[i] = exc

    async with trio.open_nursery() as nursery:
        for i in range(len(records)):
            nursery.start_soon(one, i)
    return out


def test_concurrent_submissions_share_one_transaction(tmp_path: Path) -> None:
    ing, task, published = _setup(tmp_path)
    keys = [SigningKey(bytes([0x60 + k]) * 32) for k in range(8)]
    records = [_label(k, s, task, 5 * n + s - 1, "cat") for n, k in enumerate(keys)
               for s in range(1, 6)]
    out = trio.run(_submit_all, ing, records)
    assert out == [Saved.NEW] * 40
    assert ing.grouped.groups == 1  # forty acknowledgements, one fsynced commit
    assert sorted(published) == sorted(records)
    assert all(ing.store.next_seq(k.public_key) == 6 for k in keys)


def test_a_bad_or_reused_record_is_refused_alone(tmp_path: Path) -> None:
    ing, task, published = _setup(tmp_path)
    a, b = SigningKey(b"\x70" * 32), SigningKey(b"\x71" * 32)
    off_schema = _label(b, 1, task, 1, "horse")
    first, second = _label(a, 1, task, 2, "cat"), _label(a, 1, task, 3, "dog")
    forged = bytearray(_label(b, 2, task, 4, "cat"))
    forged[-1] ^= 1
    out = trio.run(_submit_all, ing, [first, off_schema, second, bytes(forged),
                                      _label(b, 3, task, 5, "dog")])
    # the two records with one seq: whichever joined the group first is saved
    won, lost = (0, 2) if out[0] is Saved.NEW else (2, 0)
    assert out[won] is Saved.NEW and out[4] is Saved.NEW
    assert isinstance(out[lost], SeqReuseError)
    assert "the next free seq is 2" in str(out[lost])  # named after the winner was saved
    assert isinstance(out[1], AdmissionError) and out[1].verdict is Verdict.INVALID
    assert "horse" in str(out[1]) or "schema" in str(out[1])
    assert isinstance(out[3], ProtocolError) and not isinstance(out[3], AdmissionError)
    winner = (first, second)[won // 2]
    assert sorted(published) == sorted([winner, _label(b, 3, task, 5, "dog")])
    labels = [x.label for i in (2, 3) for x in ing.store.annotations(task, ITEMS[i])]
    assert labels == [("cat", "dog")[won // 2]]


def test_a_store_failure_is_every_members_answer(tmp_path: Path) -> None:
    ing, task, published = _setup(tmp_path)
    key = SigningKey(b"\x72" * 32)

    def broken(*args: object, **kwargs: object) -> list[Saved]:
        raise OSError("disk full")

    ing.store.save_records = broken  # type: ignore[method-assign]
    errors = trio.run(_failures, ing, [_label(key, s, task, s, "cat") for s in (1, 2, 3)])
    assert [str(e) for e in errors] == ["disk full"] * 3
    assert ing.grouped.groups == 1 and published == []


async def _failures(ing: Ingest, records: list[bytes],
                    kind: type[Exception] = OSError) -> list[Exception]:
    """Submit ``records`` at once; the ``kind`` errors they raised."""
    errors: list[Exception] = []

    async def one(data: bytes) -> None:
        try:
            await ing.submit_async(data)
        except kind as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for data in records:
            nursery.start_soon(one, data)
    return errors


def test_a_record_signed_with_the_nodes_own_key_is_refused(tmp_path: Path) -> None:
    """The node allocates its own key's seqs (votes, node-signed tasks); a client that
    signs with that key too would be a second allocator, and one seq could be signed
    twice: a self-fork. It is refused with what to do instead."""
    ing, task, published = _setup(tmp_path)
    node_key = SigningKey(b"\x73" * 32)
    ing.own = node_key.public_key
    with pytest.raises(OwnKeyError, match="without --key"):
        ing.submit(_label(node_key, 1, task, 1, "cat"))
    out = trio.run(_submit_all, ing, [_label(node_key, 1, task, 1, "cat")])
    assert isinstance(out[0], OwnKeyError)
    assert ing.store.next_seq(node_key.public_key) == 1 and published == []


def test_a_failed_fsync_acknowledges_nothing(tmp_path: Path) -> None:
    # the group is committed without its fsync, then the WAL is fsynced off the loop: if
    # the disk refuses that, no member hears "saved" and nothing is gossiped
    ing, task, published = _setup(tmp_path)
    key = SigningKey(b"\x73" * 32)

    def refused() -> None:
        raise OSError("EIO")

    ing.store.sync_wal = refused  # type: ignore[method-assign]
    errors = trio.run(_failures, ing, [_label(key, s, task, s, "cat") for s in (1, 2, 3)],
                      StoreError)
    assert len(errors) == 3 and all(isinstance(e, StoreError) for e in errors)
    assert all("EIO" in str(e) and "send it again" in str(e) for e in errors)
    assert ing.grouped.groups == 1 and published == []
