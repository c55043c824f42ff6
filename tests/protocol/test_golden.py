"""Golden vectors: the wire format, sign-bytes, ids, peer ids and network id, pinned.

``golden/records.json`` is checked in. Any change to canonical encoding, sign-bytes,
the record envelope, CIDs, peer ids or the genesis hash makes these tests fail; if the
change is intended (a new protocol version), regenerate and review the diff::

    ANNOT_REGEN_GOLDEN=1 .venv/bin/pytest tests/protocol/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from protocol import keys
from protocol.cid import cid_bytes, cid_to_str
from protocol.genesis import Genesis, genesis_from_json, genesis_from_map
from protocol.records import (
    PRECOMMIT,
    PREVOTE,
    Annotation,
    Body,
    TallyVote,
    Task,
    Vote,
    VoteEntry,
    decode_record,
    sign_bytes,
    sign_record,
)

GOLDEN = Path(__file__).with_name("golden") / "records.json"
SEEDS = {
    "range": bytes(range(32)),
    "zeros": bytes(32),
    "ff": b"\xff" * 32,
}


def golden_genesis() -> Genesis:
    """A fixed genesis with every parameter spelled out, so changed defaults don't move it."""
    return genesis_from_map({
        "name": "golden-net",
        "genesis_time": 1_700_000_000,
        "validators": [{"peer_id": keys.SigningKey(s).peer_id, "weight": w}
                       for s, w in zip(SEEDS.values(), (1, 2, 3), strict=True)],
        "params": {
            "max_record_bytes": 262_144, "max_batch_records": 512, "max_items_per_task": 4_096,
            "max_vote_entries": 1_024, "quorum_num": 2, "quorum_den": 3,
            "round_timeout_ms": 2_000, "round_timeout_delta_ms": 1_000,
        },
    })


def golden_bodies() -> dict[str, tuple[int, Body]]:
    """name → (seq, body); the names are the JSON keys."""
    task_id = cid_bytes(b"golden task")
    i1, i2 = cid_bytes(b"golden item 1"), cid_bytes(b"golden item 2")
    return {
        "task_minimal": (1, Task(title="Cats or dogs", labels=("cat", "dog"), items=(i1, i2),
                                 redundancy=3, reward_per_item=1_000, validator_share_bps=1_500)),
        "task_full": (2, Task(
            title="Étiquetage — ünïcode", labels=("a", "b", "c"), items=(i1,), redundancy=1,
            reward_per_item=10**15, validator_share_bps=10_000,
            instructions=cid_bytes(b"instructions", 0x70),
            allow=(keys.SigningKey(SEEDS["zeros"]).public_key,), close_time=1_700_086_400,
            rule="dawid-skene", weights_from=(cid_bytes(b"earlier task"),))),
        "annotation": (3, Annotation(task=task_id, item=i1, label="cat")),
        "vote_prevote": (4, Vote(phase=PREVOTE, round=0, entries=(
            VoteEntry(task_id, i1, "cat"), VoteEntry(task_id, i2, None)))),
        "vote_precommit": (5, Vote(phase=PRECOMMIT, round=7, entries=(
            VoteEntry(task_id, i2, "EXPIRED"),))),
        "tally_vote": (6, TallyVote(task=task_id, root=bytes(range(32, 64)))),
    }


def generate_golden() -> dict[str, Any]:
    genesis = golden_genesis()
    net = genesis.network_id
    signer = keys.Signer(keys.SigningKey(SEEDS["range"]))
    records: dict[str, Any] = {}
    for name, (seq, body) in golden_bodies().items():
        rec = sign_record(net, signer, seq, body)
        records[name] = {
            "kind": rec.kind,
            "seq": seq,
            "sign_bytes": sign_bytes(net, rec.kind, rec.author, seq, body).hex(),
            "record": rec.data.hex(),
            "cid": rec.cid_str,
            "signature": rec.signature.hex(),
        }
    return {
        "about": "annot/v1 golden vectors; regenerate: ANNOT_REGEN_GOLDEN=1 (see test_golden.py)",
        "signer_seed": SEEDS["range"].hex(),
        "peer_ids": {name: {"seed": seed.hex(),
                            "public_key": keys.SigningKey(seed).public_key.hex(),
                            "peer_id": keys.SigningKey(seed).peer_id}
                     for name, seed in SEEDS.items()},
        "genesis": {"json": genesis.to_json(), "network_id": net.hex(), "topic": genesis.topic()},
        "records": records,
    }


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    if os.environ.get("ANNOT_REGEN_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(generate_golden(), indent=2, ensure_ascii=False) + "\n")
    data: dict[str, Any] = json.loads(GOLDEN.read_text())
    return data


@pytest.fixture(scope="module")
def current() -> dict[str, Any]:
    return generate_golden()


def test_golden_file_covers_every_kind(golden: dict[str, Any]) -> None:
    kinds = {r["kind"] for r in golden["records"].values()}
    assert kinds == {"task", "annotation", "vote", "tally_vote"}
    assert set(golden["records"]) == set(golden_bodies())


@pytest.mark.parametrize("name", list(golden_bodies()))
@pytest.mark.parametrize("what", ["sign_bytes", "record", "cid", "signature"])
def test_record_vectors(golden: dict[str, Any], current: dict[str, Any], name: str,
                        what: str) -> None:
    assert current["records"][name][what] == golden["records"][name][what], (
        f"wire format changed: {name}.{what}")


@pytest.mark.parametrize("name", list(SEEDS))
def test_peer_id_vectors(golden: dict[str, Any], current: dict[str, Any], name: str) -> None:
    assert current["peer_ids"][name] == golden["peer_ids"][name]
    assert golden["peer_ids"][name]["peer_id"].startswith("12D3KooW")


def test_network_id_vector(golden: dict[str, Any], current: dict[str, Any]) -> None:
    assert current["genesis"]["network_id"] == golden["genesis"]["network_id"]
    assert current["genesis"]["topic"] == golden["genesis"]["topic"]


def test_checked_in_genesis_json_gives_the_network_id(golden: dict[str, Any]) -> None:
    g = genesis_from_json(golden["genesis"]["json"])
    assert g.network_id.hex() == golden["genesis"]["network_id"]
    assert g == golden_genesis()


@pytest.mark.parametrize("name", list(golden_bodies()))
def test_checked_in_records_still_decode(golden: dict[str, Any], name: str) -> None:
    """The stored bytes decode, verify and carry the expected body, independent of signing."""
    net = bytes.fromhex(golden["genesis"]["network_id"])
    vec = golden["records"][name]
    data = bytes.fromhex(vec["record"])
    rec = decode_record(data, net)
    seq, body = golden_bodies()[name]
    assert (rec.kind, rec.seq, rec.body) == (vec["kind"], seq, body)
    assert rec.signature.hex() == vec["signature"]
    assert cid_to_str(cid_bytes(data)) == vec["cid"]
    keys.verify(rec.author, bytes.fromhex(vec["sign_bytes"]), rec.signature)
    assert rec.author == keys.SigningKey(bytes.fromhex(golden["signer_seed"])).public_key


def test_regeneration_is_off_by_default() -> None:
    if os.environ.get("ANNOT_REGEN_GOLDEN") == "1":
        pytest.skip("regenerating")
    assert GOLDEN.exists(), "golden/records.json is missing; generate it once (see docstring)"
