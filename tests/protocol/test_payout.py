"""Payout-address bindings (EIP-191 with eth-account), amounts owed, and the claim file,
checked by the reference @openzeppelin/merkle-tree under Node."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from protocol import keys
from protocol.cid import cid_bytes
from protocol.errors import DecodeError
from protocol.merkle import build_tree, load_tree, parse_address, verify
from protocol.payout import (
    BindingError,
    PayoutError,
    compute_claims,
    encode_payout_file,
    exported_amounts,
    owed,
    payout_root,
    sign_binding,
    verify_binding,
)
from protocol.records import PayoutBinding, decode_record, sign_record
from protocol.tally import Tally, TallyEntry

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "tests" / "js"
NODE = shutil.which("node") or "/usr/bin/node"
NET = hashlib.sha256(b"payout network").digest()
ANNOTATOR = keys.SigningKey(b"\x01" * 32)
OTHER = keys.SigningKey(b"\x02" * 32)
EVM = bytes(range(1, 33))


def test_a_binding_round_trips_and_every_decode_checks_it() -> None:
    body = sign_binding(EVM, ANNOTATOR.peer_id, NET)
    rec = sign_record(NET, ANNOTATOR, 1, body)
    assert decode_record(rec.data, NET).body == body
    verify_binding(body, ANNOTATOR.public_key, NET)


def test_mismatched_bindings_are_refused_with_a_precise_error() -> None:
    body = sign_binding(EVM, ANNOTATOR.peer_id, NET)
    # replayed by another annotator: the message names the first one's peer id
    with pytest.raises(BindingError, match=f"for peer {OTHER.peer_id}"):
        decode_record(sign_record(NET, OTHER, 1, body).data, NET)
    # signed for another network
    other_net = hashlib.sha256(b"elsewhere").digest()
    with pytest.raises(BindingError, match="recovers 0x"):
        verify_binding(sign_binding(EVM, ANNOTATOR.peer_id, other_net), ANNOTATOR.public_key,
                       NET)
    # the signature is by a key that does not hold the bound address
    wrong = replace(body, address=b"\x42" * 20)
    with pytest.raises(BindingError, match="not the bound address"):
        decode_record(sign_record(NET, ANNOTATOR, 1, wrong).data, NET)
    bad_v = replace(body, signature=body.signature[:64] + b"\x05")
    with pytest.raises(BindingError, match="malformed"):
        verify_binding(bad_v, ANNOTATOR.public_key, NET)
    with pytest.raises(DecodeError, match="expected 65 bytes"):
        sign_record(NET, ANNOTATOR, 1, PayoutBinding(b"\x42" * 20, b"\x00" * 64))


def _tally(task: bytes, requester: bytes, entries: dict[bytes, int]) -> Tally:
    rows = tuple(TallyEntry(a, v, 1, 0) for a, v in sorted(entries.items()))
    return Tally(task, requester, sum(entries.values()), rows)


A, B, C, R = (bytes([n]) * 32 for n in (0xA, 0xB, 0xC, 0xEE))
ADDR_A, ADDR_B = b"\xaa" * 20, b"\xbb" * 20


def test_amounts_owed_net_out_requesters_and_skip_what_was_exported() -> None:
    t1 = _tally(b"t1", R, {A: 600, B: 300, R: 100})
    t2 = _tally(b"t2", A, {B: 200, C: 50, A: 10})  # A requests t2: pays 260, refunded 10
    assert owed([t1, t2]) == {A: 350, B: 500, C: 50}
    claims = compute_claims([t1], {A: ADDR_A, B: ADDR_B}, {})
    assert [(c.address, c.amount) for c in claims] == [(ADDR_A, 600), (ADDR_B, 300)]
    # the next epoch exports only what is new; C is unbound, so it waits for a binding
    later = compute_claims([t1, t2], {A: ADDR_A, B: ADDR_B}, {A: 600, B: 300})
    assert [(c.address, c.amount) for c in later] == [(ADDR_B, 200)]
    # two accounts bound to one address share one leaf
    shared = compute_claims([t1], {A: ADDR_A, B: ADDR_A}, {})
    assert [(c.address, c.amount, c.parts) for c in shared] == [
        (ADDR_A, 900, ((A, 600), (B, 300)))]
    with pytest.raises(PayoutError, match="counted twice"):
        owed([t1, t1])
    with pytest.raises(PayoutError, match="nothing owed"):
        payout_root(compute_claims([t1], {}, {}))


def _big_file(n: int) -> tuple[bytes, list[bytes]]:
    accounts = [hashlib.sha256(b"acct %d" % i).digest() for i in range(n)]
    entries = {a: 1000 + 37 * i for i, a in enumerate(accounts)}
    tally = _tally(cid_bytes(b"big task"), R, entries)
    bindings = {a: hashlib.sha256(a).digest()[:20] for a in accounts}
    claims = compute_claims([tally], bindings, {})
    return encode_payout_file(NET, 1, [tally.task], claims), accounts


def test_the_claim_file_is_deterministic_and_self_consistent() -> None:
    data, accounts = _big_file(50)
    assert _big_file(50)[0] == data
    doc = json.loads(data)
    tree = load_tree(doc)
    assert "0x" + tree.root.hex() == doc["root"]
    assert doc["annot"]["epoch"] == 1 and len(doc["claims"]) == 50
    for i, c in enumerate(doc["claims"]):
        assert [p for p in c["proof"]] == ["0x" + p.hex() for p in tree.proof(i)]
        assert verify(tree.root, parse_address(c["address"]), int(c["amount"]),
                      [bytes.fromhex(p[2:]) for p in c["proof"]])
    assert sum(exported_amounts(data).values()) == sum(1000 + 37 * i for i in range(50))
    assert set(exported_amounts(data)) == set(accounts)
    assert build_tree([(parse_address(c["address"]), int(c["amount"]))
                       for c in doc["claims"]]).root == tree.root


def test_openzeppelin_merkle_tree_verifies_every_proof(tmp_path: Path) -> None:
    """The reference implementation (npm, pinned in tests/js) loads the file, rebuilds the
    same tree from its values, and verifies every claim's proof against the root."""
    data, _ = _big_file(100)
    path = tmp_path / "payouts.json"
    path.write_bytes(data)
    proc = subprocess.run([NODE, str(JS / "payout_check.mjs"), str(path)], cwd=JS,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    doc = json.loads(data)
    assert out == {"root": doc["root"], "file_root": doc["root"], "same_dump": True,
                   "claims": 100, "verified": 100, "failed": [], "proofs_match": True}
    # and a file with one wrong amount fails there too
    doc["claims"][7]["amount"] = str(int(doc["claims"][7]["amount"]) + 1)
    path.write_text(json.dumps(doc))
    proc = subprocess.run([NODE, str(JS / "payout_check.mjs"), str(path)], cwd=JS,
                          capture_output=True, text=True, timeout=60, check=False)
    assert json.loads(proc.stdout)["failed"] == [doc["claims"][7]["address"]]
