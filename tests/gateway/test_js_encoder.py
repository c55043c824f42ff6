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
import trio

from protocol.cid import cid_to_str
from protocol.keys import peer_id_from_public_key
from protocol.records import Annotation, Task, body_to_map
from tests.gateway.browser import open_browser
from tests.gateway.helpers import open_fixture, serving
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


# the same steps as golden_check.mjs, run in the page's origin on the served modules
BROWSER_JS = """
const [input, done] = arguments;
(async () => {
  const { fromHex, toHex } = await import("/js/bytes.js");
  const { loadKey } = await import("/js/keys.js");
  const { annotationBody, signRecord, taskBody } = await import("/js/records.js");
  const revive = (v) => Array.isArray(v) ? v.map(revive) : v && typeof v === "object"
    ? ("$hex" in v ? fromHex(v.$hex)
       : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]))) : v;
  const out = {};
  for (const backend of input.backends) {
    const peerIds = {};
    for (const [name, seed] of Object.entries(input.seeds)) {
      const key = await loadKey(fromHex(seed), backend);
      peerIds[name] = { public_key: toHex(key.publicKey), peer_id: key.peerId };
    }
    const signer = await loadKey(fromHex(input.signer_seed), backend);
    const records = {};
    for (const [name, r] of Object.entries(input.records)) {
      const body = r.kind === "annotation"
        ? annotationBody(r.fields.task, r.fields.item, r.fields.label)
        : r.kind === "task" ? taskBody(r.fields) : revive(r.map);
      const rec = await signRecord(fromHex(input.network_id), signer, r.seq, r.kind, body);
      records[name] = { sign_bytes: toHex(rec.signBytes), record: toHex(rec.data),
                        cid: rec.cid, signature: toHex(rec.signature) };
    }
    out[backend] = { peer_ids: peerIds, records, backend: signer.backend };
  }
  return out;
})().then(done, (e) => done({ error: String(e) }));
"""


async def test_browser_records_equal_golden_vectors(tmp_path: Path) -> None:
    """The modules the gateway serves, in headless Chromium, give the golden bytes."""
    fx = open_fixture(tmp_path, n_items=1)
    golden = json.loads(GOLDEN.read_text())
    inputs = _inputs(["webcrypto", "noble"])
    async with serving(fx) as url:

        def run() -> dict[str, Any]:
            with open_browser() as d:
                d.get(url + "/operator")  # any page: the modules load from its origin
                got: dict[str, Any] = d.execute_async_script(BROWSER_JS, inputs)
                return got

        out = await trio.to_thread.run_sync(run)
    assert "error" not in out, out
    for backend in ("webcrypto", "noble"):
        assert out[backend]["backend"] == backend
        for name, want in golden["records"].items():
            for field in ("sign_bytes", "signature", "record", "cid"):
                assert out[backend]["records"][name][field] == want[field], (backend, name)
        for name, want in golden["peer_ids"].items():
            assert out[backend]["peer_ids"][name]["peer_id"] == want["peer_id"]
