"""Task updates (close, extend, cancel): wire form pinned, decoder and lifecycle rules.

``golden/task_update.json`` pins the record bytes, sign-bytes, CID and signature of
one update of each action, signed as ``test_golden`` signs (seed ``range``, the
golden genesis). Regenerate (after review)::

    ANNOT_REGEN_GOLDEN=1 .venv/bin/pytest tests/protocol/test_task_update.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from protocol import keys
from protocol.cid import cid_bytes
from protocol.errors import FieldTypeError, MissingFieldError, UnknownFieldError
from protocol.lifecycle import (
    Lifecycle,
    NotTaskOwnerError,
    TaskClosedError,
    TaskUpdateError,
    check_open,
    check_update,
    lifecycle_of,
)
from protocol.records import (
    Task,
    TaskUpdate,
    body_from_map,
    body_to_map,
    decode_record,
    sign_bytes,
    sign_record,
)
from tests.protocol.test_golden import SEEDS, golden_genesis

GOLDEN = Path(__file__).with_name("golden") / "task_update.json"
TASK_ID = cid_bytes(b"golden task")
REQUESTER = keys.SigningKey(SEEDS["range"]).public_key
OTHER = keys.SigningKey(SEEDS["zeros"]).public_key
T0 = 1_700_000_000


def bodies() -> dict[str, tuple[int, TaskUpdate]]:
    return {
        "close": (8, TaskUpdate(task=TASK_ID, action="close")),
        "extend": (9, TaskUpdate(task=TASK_ID, action="extend", close_time=1_700_172_800)),
        "cancel": (10, TaskUpdate(task=TASK_ID, action="cancel")),
    }


def generate() -> dict[str, Any]:
    net = golden_genesis().network_id
    signer = keys.Signer(keys.SigningKey(SEEDS["range"]))
    out: dict[str, Any] = {"about": "task_update records; regenerate: ANNOT_REGEN_GOLDEN=1"}
    for name, (seq, body) in bodies().items():
        rec = sign_record(net, signer, seq, body)
        out[name] = {"seq": seq, "record": rec.data.hex(), "cid": rec.cid_str,
                     "sign_bytes": sign_bytes(net, rec.kind, rec.author, seq, body).hex(),
                     "signature": rec.signature.hex()}
    return out


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    if os.environ.get("ANNOT_REGEN_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(generate(), indent=2) + "\n")
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


@pytest.mark.parametrize("name", list(bodies()))
@pytest.mark.parametrize("what", ["record", "cid", "sign_bytes", "signature"])
def test_vector(golden: dict[str, Any], name: str, what: str) -> None:
    assert generate()[name][what] == golden[name][what], f"wire format changed: {name}.{what}"


@pytest.mark.parametrize("name", list(bodies()))
def test_checked_in_record_decodes(golden: dict[str, Any], name: str) -> None:
    rec = decode_record(bytes.fromhex(golden[name]["record"]), golden_genesis().network_id)
    assert (rec.kind, rec.seq, rec.body) == ("task_update", *bodies()[name])
    assert rec.author == REQUESTER
    keys.verify(rec.author, bytes.fromhex(golden[name]["sign_bytes"]), rec.signature)


@pytest.mark.parametrize(("change", "error", "why"), [
    ({"action": "pause"}, FieldTypeError, "'pause' is not one of close, extend, cancel"),
    ({"action": "extend"}, FieldTypeError, "an extend names the new close time"),
    ({"close_time": 5}, FieldTypeError, "close and cancel take 0, got 5"),
    ({"close_time": -1}, FieldTypeError, "close_time: expected integer"),
    ({"task": b"\x01\x02"}, FieldTypeError, "task: not a CID"),
    ({"reason": "x"}, UnknownFieldError, "reason"),
])
def test_decoder_refuses(change: dict[str, Any], error: type[Exception], why: str) -> None:
    m = body_to_map(TaskUpdate(task=TASK_ID, action="close"))
    m.update(change)
    with pytest.raises(error, match=why):
        body_from_map("task_update", m)


def test_decoder_refuses_missing_close_time() -> None:
    m = body_to_map(TaskUpdate(task=TASK_ID, action="cancel"))
    del m["close_time"]
    with pytest.raises(MissingFieldError, match="close_time"):
        body_from_map("task_update", m)


def test_signer_refuses_what_a_decoder_would() -> None:
    signer = keys.Signer(keys.SigningKey(SEEDS["range"]))
    with pytest.raises(FieldTypeError, match="an extend names the new close time"):
        sign_record(golden_genesis().network_id, signer, 1, TaskUpdate(TASK_ID, "extend"))


# ---------------------------------------------------------------- lifecycle rules

def _task(close_time: int = T0 + 100) -> Task:
    return Task(title="t", labels=("a", "b"), items=(cid_bytes(b"i"),), redundancy=2,
                reward_per_item=10, validator_share_bps=1000, close_time=close_time)


def test_close_time_closes_by_the_clock() -> None:
    life = lifecycle_of(_task(), REQUESTER, [])
    assert life == Lifecycle(close_time=T0 + 100)
    assert not life.is_closed(T0 + 99) and life.is_closed(T0 + 100)
    assert life.closes_at() == T0 + 100
    assert lifecycle_of(_task(0), REQUESTER, []).closes_at() is None


def test_updates_apply_in_seq_order_and_close_is_final() -> None:
    up = [(REQUESTER, 12, TaskUpdate(TASK_ID, "extend", T0 + 900)),  # after the close: ignored
          (REQUESTER, 11, TaskUpdate(TASK_ID, "close")),
          (REQUESTER, 10, TaskUpdate(TASK_ID, "extend", T0 + 500))]
    life = lifecycle_of(_task(), REQUESTER, up)
    assert life == Lifecycle(close_time=T0 + 500, closed=True)
    assert life.is_closed(T0) and life.closes_at() is None


def test_lifecycle_ignores_updates_by_others_and_earlier_extends() -> None:
    up = [(OTHER, 1, TaskUpdate(TASK_ID, "cancel")),
          (REQUESTER, 3, TaskUpdate(TASK_ID, "extend", T0 + 50))]  # not later: ignored
    assert lifecycle_of(_task(), REQUESTER, up) == Lifecycle(close_time=T0 + 100)


def test_cancel() -> None:
    life = lifecycle_of(_task(0), REQUESTER, [(REQUESTER, 2, TaskUpdate(TASK_ID, "cancel"))])
    assert life.cancelled and life.closed and life.is_closed(0)


def test_check_update_refuses_a_non_owner_by_name() -> None:
    life = lifecycle_of(_task(), REQUESTER, [])
    with pytest.raises(NotTaskOwnerError) as info:
        check_update(TASK_ID, REQUESTER, life, OTHER, TaskUpdate(TASK_ID, "close"), T0)
    msg = str(info.value)
    assert keys.peer_id_from_public_key(REQUESTER) in msg
    assert keys.peer_id_from_public_key(OTHER) in msg
    assert "only the requester of task bafk" in msg


def test_check_update_refuses_after_the_close() -> None:
    life = lifecycle_of(_task(), REQUESTER, [])
    with pytest.raises(TaskClosedError, match=r"closed at 2023-11-14T22:15:00Z \(1700000100\); "
                                              "it cannot be extended any more"):
        check_update(TASK_ID, REQUESTER, life, REQUESTER,
                     TaskUpdate(TASK_ID, "extend", T0 + 900), T0 + 100)
    cancelled = Lifecycle(closed=True, cancelled=True)
    with pytest.raises(TaskClosedError, match="was cancelled by its requester; it cannot be "
                                              "closed any more"):
        check_update(TASK_ID, REQUESTER, cancelled, REQUESTER, TaskUpdate(TASK_ID, "close"), T0)


@pytest.mark.parametrize(("close_time", "new", "why"), [
    (T0 + 100, T0 + 100, "is not later"),
    (0, T0 + 100, "has no close time, so there is nothing to extend"),
    (T0 + 100, T0 - 1, "is not later"),
])
def test_check_update_refuses_a_bad_extend(close_time: int, new: int, why: str) -> None:
    life = lifecycle_of(_task(close_time), REQUESTER, [])
    with pytest.raises(TaskUpdateError, match=why):
        check_update(TASK_ID, REQUESTER, life, REQUESTER, TaskUpdate(TASK_ID, "extend", new), T0)


def test_check_update_returns_the_new_state() -> None:
    life = check_update(TASK_ID, REQUESTER, Lifecycle(close_time=T0 + 100), REQUESTER,
                        TaskUpdate(TASK_ID, "extend", T0 + 200), T0)
    assert life == Lifecycle(close_time=T0 + 200)


def test_check_open_refuses_late_labels() -> None:
    check_open(TASK_ID, Lifecycle(close_time=T0 + 100), T0 + 99)
    check_open(TASK_ID, Lifecycle(), 2**40)  # never closes
    with pytest.raises(TaskClosedError, match="labels after the close are refused"):
        check_open(TASK_ID, Lifecycle(close_time=T0 + 100), T0 + 100)
    with pytest.raises(TaskClosedError, match="was closed by its requester"):
        check_open(TASK_ID, Lifecycle(closed=True), 0)
