"""Golden vectors for issue 16's record kinds and fields, pinned like test_golden.py's.

``golden/gold_payout.json`` holds a task with gold commitments, a gold reveal, a
payout binding (with its EIP-191 signature: secp256k1 ECDSA is deterministic,
RFC 6979) and a payout vote, signed on the golden network. Kept apart from
``records.json`` so the older vectors (and the web app's JS check of them) stay
exactly as they were. Regenerate, if a change is intended::

    ANNOT_REGEN_GOLDEN=1 .venv/bin/pytest tests/protocol/test_golden_payout.py
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from protocol import keys
from protocol.cid import cid_bytes
from protocol.gold import commit_gold
from protocol.payout import binding_message, sign_binding
from protocol.records import (
    KINDS,
    Body,
    GoldReveal,
    PayoutVote,
    Task,
    decode_record,
    sign_bytes,
    sign_record,
)
from tests.protocol.test_golden import GOLDEN, SEEDS, golden_genesis

GOLDEN_PAYOUT = GOLDEN.with_name("gold_payout.json")
EVM_KEY = bytes(range(1, 33))  # a fixed secp256k1 key: 0x6370eF2f4Db3611D657b90667De398a2Cc2a370C


def payout_bodies() -> dict[str, tuple[int, Body]]:
    net = golden_genesis().network_id
    signer = keys.SigningKey(SEEDS["range"])
    task_id = cid_bytes(b"golden task")
    i1, i2, i3 = (cid_bytes(b"golden item %d" % n) for n in (1, 2, 3))
    commitments, entries = commit_gold({i1: "cat", i3: "dog"},
                                       {i1: bytes(range(32)), i3: b"\x07" * 32})
    return {
        "task_gold": (11, Task(title="Cats or dogs, with gold", labels=("cat", "dog"),
                               items=(i1, i2, i3), redundancy=3, reward_per_item=1_000,
                               validator_share_bps=1_500, close_time=1_700_086_400,
                               gold=commitments, min_gold_bps=7_000, reveal_window=3_600)),
        "gold_reveal": (12, GoldReveal(task=task_id, entries=entries)),
        "payout_binding": (13, sign_binding(EVM_KEY, signer.peer_id, net)),
        "payout_vote": (14, PayoutVote(epoch=3, tasks=tuple(sorted((task_id, cid_bytes(b"t2")))),
                                       root=bytes(range(64, 96)))),
    }


def generate() -> dict[str, Any]:
    net = golden_genesis().network_id
    signer = keys.Signer(keys.SigningKey(SEEDS["range"]))
    out: dict[str, Any] = {}
    for name, (seq, body) in payout_bodies().items():
        rec = sign_record(net, signer, seq, body)
        out[name] = {"kind": rec.kind, "seq": seq,
                     "sign_bytes": sign_bytes(net, rec.kind, rec.author, seq, body).hex(),
                     "record": rec.data.hex(), "cid": rec.cid_str,
                     "signature": rec.signature.hex()}
    binding = payout_bodies()["payout_binding"][1]
    assert hasattr(binding, "address")
    return {"about": "issue 16 golden vectors; regenerate: ANNOT_REGEN_GOLDEN=1 (see docstring)",
            "network_id": net.hex(),
            "binding_message": binding_message(keys.SigningKey(SEEDS["range"]).peer_id, net,
                                               binding.address),
            "records": out}


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    if os.environ.get("ANNOT_REGEN_GOLDEN") == "1":
        GOLDEN_PAYOUT.write_text(json.dumps(generate(), indent=2, ensure_ascii=False) + "\n")
    data: dict[str, Any] = json.loads(GOLDEN_PAYOUT.read_text())
    return data


def test_every_issue_16_kind_has_vectors(golden: dict[str, Any]) -> None:
    kinds = {r["kind"] for r in golden["records"].values()}
    assert kinds == {"task", "gold_reveal", "payout_binding", "payout_vote"} and kinds <= set(KINDS)


@pytest.mark.parametrize("name", list(payout_bodies()))
@pytest.mark.parametrize("what", ["sign_bytes", "record", "cid", "signature"])
def test_record_vectors(golden: dict[str, Any], name: str, what: str) -> None:
    assert generate()["records"][name][what] == golden["records"][name][what], (
        f"wire format changed: {name}.{what}")


def test_binding_message_vector(golden: dict[str, Any]) -> None:
    assert generate()["binding_message"] == golden["binding_message"]
    assert golden["binding_message"].startswith("annot payout address\nnetwork: ")


@pytest.mark.parametrize("name", list(payout_bodies()))
def test_checked_in_records_decode_and_verify(golden: dict[str, Any], name: str) -> None:
    net = bytes.fromhex(golden["network_id"])
    vec = golden["records"][name]
    rec = decode_record(bytes.fromhex(vec["record"]), net)  # checks the EIP-191 binding too
    seq, body = payout_bodies()[name]
    assert (rec.kind, rec.seq, rec.body) == (vec["kind"], seq, body)
    keys.verify(rec.author, bytes.fromhex(vec["sign_bytes"]), rec.signature)
