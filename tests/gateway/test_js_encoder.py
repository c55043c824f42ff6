"""The web app's JS encoder and signer, run under Node, against the golden vectors.

The browser builds and signs annotation (and task) records itself, so its
canonical msgpack, sign-bytes, envelope, CIDs and peer ids must equal the
Python ones byte for byte. Inputs come from the same bodies the golden file was
made from; expected values come from the checked-in golden file. Both signing
backends are checked: WebCrypto Ed25519 and the vendored @noble/ed25519.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from protocol.cid import cid_to_str
from protocol.keys import peer_id_from_public_key
from protocol.records import Annotation, Task, body_to_map
from tests.protocol.test_golden import GOLDEN, SEEDS, golden_bodies

SCRIPT = Path(__file__).with_name("golden_check.mjs")
NODE = shutil.which("node") or "/usr/bin/node"


def _hexed(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"$hex": v.hex()}
    if isinstance(v, (list, tuple)):
        return [_hexed(x) for x in v]
    if isinstance(v, dict):
        return {k: _hexed(x) for k, x in v.items()}
    return v


def _inputs(backends: list[str]) -> dict[str, Any]:
    golden = json.loads(GOLDEN.read_text())
    records: dict[str, Any] = {}
    for name, (seq, body) in golden_bodies().items():
        entry: dict[str, Any] = {"kind": body.KIND, "seq": seq}
        if isinstance(body, Annotation):
            entry["fields"] = {"task": cid_to_str(body.task), "item": cid_to_str(body.item),
                               "label": body.label}
        elif isinstance(body, Task):
            entry["fields"] = {
                "title": body.title, "labels": list(body.labels),
                "items": [cid_to_str(i) for i in body.items], "redundancy": body.redundancy,
                "reward_per_item": body.reward_per_item,
                "validator_share_bps": body.validator_share_bps,
                "instructions": cid_to_str(body.instructions) if body.instructions else None,
                "allow": [peer_id_from_public_key(a) for a in body.allow],
                "close_time": body.close_time, "rule": body.rule,
                "weights_from": [cid_to_str(w) for w in body.weights_from],
            }
        else:
            entry["map"] = _hexed(body_to_map(body))
        records[name] = entry
    return {"backends": backends, "seeds": {k: v.hex() for k, v in SEEDS.items()},
            "signer_seed": golden["signer_seed"], "network_id": golden["genesis"]["network_id"],
            "records": records}


def _run_js(backends: list[str]) -> dict[str, Any]:
    proc = subprocess.run([NODE, str(SCRIPT)], input=json.dumps(_inputs(backends)),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


@pytest.mark.parametrize("backend", ["webcrypto", "noble"])
def test_js_records_equal_golden_vectors(backend: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    got = _run_js([backend])[backend]
    assert got["backend"] == backend
    assert set(got["records"]) == set(golden["records"])
    for name, want in golden["records"].items():
        have = got["records"][name]
        for field in ("sign_bytes", "signature", "record", "cid"):
            assert have[field] == want[field], f"{name}.{field} differs ({backend})"
    for name, want in golden["peer_ids"].items():
        assert got["peer_ids"][name]["public_key"] == want["public_key"]
        assert got["peer_ids"][name]["peer_id"] == want["peer_id"]
