"""A task whose items are a UnixFS directory: its wire form pinned, its rules checked.

``golden/task_items_dir.json`` pins the record bytes, sign-bytes, CID and signature of
a task carrying ``items_dir`` and ``item_count`` (signed as ``test_golden`` signs, on
the golden genesis). Tasks without a directory keep their old encoding: the optional
keys are absent, so ``golden/records.json`` is unchanged. Regenerate (after review)::

    ANNOT_REGEN_GOLDEN=1 .venv/bin/pytest tests/protocol/test_task_items_dir.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from protocol import keys
from protocol.cid import DAG_PB, cid_bytes
from protocol.encoding import decode_canonical
from protocol.errors import FieldTypeError
from protocol.records import (
    Task,
    body_from_map,
    body_to_map,
    decode_record,
    sign_bytes,
    sign_record,
)
from tests.protocol.test_golden import SEEDS, golden_genesis

GOLDEN = Path(__file__).with_name("golden") / "task_items_dir.json"
DIR = cid_bytes(b"golden items folder", DAG_PB)


def dir_task(**over: Any) -> Task:
    fields: dict[str, Any] = {
        "title": "Folder of 100,000 photos", "labels": ("cat", "dog"), "items": (),
        "redundancy": 3, "reward_per_item": 1_000, "validator_share_bps": 1_500,
        "items_dir": DIR, "item_count": 100_000}
    fields.update(over)
    return Task(**fields)


def generate() -> dict[str, Any]:
    net = golden_genesis().network_id
    rec = sign_record(net, keys.Signer(keys.SigningKey(SEEDS["range"])), 7, dir_task())
    return {"about": "a task with items_dir; regenerate: ANNOT_REGEN_GOLDEN=1",
            "seq": 7, "record": rec.data.hex(), "cid": rec.cid_str,
            "sign_bytes": sign_bytes(net, rec.kind, rec.author, 7, rec.body).hex(),
            "signature": rec.signature.hex()}


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    if os.environ.get("ANNOT_REGEN_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(generate(), indent=2) + "\n")
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


@pytest.mark.parametrize("what", ["record", "cid", "sign_bytes", "signature"])
def test_vector(golden: dict[str, Any], what: str) -> None:
    assert generate()[what] == golden[what], f"wire format changed: {what}"


def test_checked_in_record_decodes(golden: dict[str, Any]) -> None:
    rec = decode_record(bytes.fromhex(golden["record"]), golden_genesis().network_id)
    assert rec.body == dir_task()
    body = decode_canonical(bytes.fromhex(golden["record"]))["b"]
    assert body["items"] == [] and body["item_count"] == 100_000 and body["items_dir"] == DIR


def test_plain_task_has_no_dir_keys() -> None:
    m = body_to_map(dir_task(items=(cid_bytes(b"i"),), items_dir=None, item_count=0))
    assert "items_dir" not in m and "item_count" not in m


@pytest.mark.parametrize(("change", "why"), [
    ({"items": [cid_bytes(b"i")]}, "or none and an items_dir"),
    ({"items_dir": cid_bytes(b"raw")}, "dag-pb"),
    ({"items_dir": b"\x01\x02"}, "not a CID"),
    ({"item_count": 0}, "item_count"),
    ({"item_count": 10_000_001}, "item_count"),
    ({"item_count": "5"}, "item_count"),
    ({"item_count": None}, "go together"),
])
def test_decoder_refuses(change: dict[str, Any], why: str) -> None:
    m = body_to_map(dir_task())
    m.update(change)
    if change.get("item_count", 1) is None:
        del m["item_count"]
    with pytest.raises(FieldTypeError, match=why):
        body_from_map("task", m)
