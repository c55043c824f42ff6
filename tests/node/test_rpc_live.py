"""Every JSON-RPC method, and the HTTP edges around them, against ONE real ``annot run``.

The node is started once for the module (harness :class:`Cluster`, n=1) and
stopped in the fixture's ``finally``; tests that stop a node start their own.
Calls go over real HTTP with httpx, so these check the wire shapes the CLI and
other clients rely on, not a fake ``NodeAPI``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import ANNOT, ROOT, Cluster

import node
from node.rpc.routes import MAX_BLOCK_BYTES
from protocol.certificate import decode_certificate, verify_certificate
from protocol.cid import cid_from_str, cid_str, cid_to_str
from protocol.encoding import Limits
from protocol.keys import SigningKey
from protocol.records import Annotation, sign_record
from tests.rpc_shapes import check_result

ANNOTATOR = SigningKey(hashlib.sha256(b"rpc live annotator").digest())
FORKER = SigningKey(hashlib.sha256(b"rpc live forker").digest())


class RPCFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error['code']}: {error['message']}")
        self.code: int = error["code"]
        self.message: str = error["message"]
        self.data: Any = error.get("data")


@dataclass
class Live:
    cluster: Cluster
    url: str
    token: str
    http: httpx.Client

    @property
    def home(self) -> Path:
        return self.cluster.home(0)

    def post(self, body: Any, token: str | None = "", **kw: Any) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token or self.token}"}
        if isinstance(body, bytes):
            return self.http.post(f"{self.url}/rpc", content=body, headers=headers, **kw)
        return self.http.post(f"{self.url}/rpc", json=body, headers=headers, **kw)

    def call(self, method: str, params: Any = None) -> Any:
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            request["params"] = params
        reply = self.post(request)
        assert reply.status_code == 200, reply.text
        payload = reply.json()
        assert payload["jsonrpc"] == "2.0" and payload["id"] == 1
        if "error" in payload:
            raise RPCFailed(payload["error"])
        check_result(method, payload["result"])  # the shape node.rpc.results documents
        return payload["result"]

    def fails(self, method: str, params: Any = None) -> RPCFailed:
        with pytest.raises(RPCFailed) as info:
            self.call(method, params)
        return info.value

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("node.status")
        return result

    def metrics(self) -> str:
        return self.http.get(f"{self.url}/metrics").text

    def wait(self, cond: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
        self.cluster.wait(cond, timeout, what, interval=0.05)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    cluster = Cluster(tmp_path_factory.mktemp("rpc_live"), n=1)
    try:
        cluster.start()
        home = cluster.home(0)
        url = (home / "rpc.url").read_text().strip()
        token = (home / "rpc.token").read_text().strip()
        with httpx.Client(timeout=15.0) as http:
            yield Live(cluster, url, token, http)
    finally:
        cluster.close()


def items(tag: str, n: int) -> list[str]:
    return [cid_str(f"{tag} item {i}".encode()) for i in range(n)]


def create_task(live: Live, tag: str, n: int = 2, **kw: Any) -> tuple[str, list[str]]:
    its = items(tag, n)
    params = {"title": tag, "labels": ["cat", "dog"], "items": its, "redundancy": 1,
              "reward_per_item": 1000, "validator_share_bps": 1000, **kw}
    return live.call("task.create", params)["task"], its


def sign_annotation(live: Live, key: SigningKey, seq: int, task: str, item: str,
                    label: str, network_id: bytes | None = None) -> bytes:
    nid = network_id or bytes.fromhex(live.status()["network_id"])
    body = Annotation(cid_from_str(task), cid_from_str(item), label)
    return sign_record(nid, key, seq, body).data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def final_item(live: Live, task: str, item: str) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def done() -> bool:
        got.update(live.call("item.get", {"task": task, "item": item}))
        return got["final"] is not None

    live.wait(done, f"item {item} final")
    return got


# ---------------------------------------------------------------- node.*


def test_node_status(live: Live) -> None:
    s = live.status()
    pid = live.cluster.peer_id(0)
    assert s["peer_id"] == pid
    assert s["network_id"] == live.cluster.genesis.network_id.hex()
    assert s["version"] == node.__version__
    assert s["validator"] is True
    assert s["peer_count"] == 0
    assert isinstance(s["record_count"], int) and s["record_count"] >= 0
    assert s["listen_addrs"] and all(a.endswith(f"/p2p/{pid}") for a in s["listen_addrs"])
    assert any(a.startswith(f"/ip4/127.0.0.1/tcp/{live.cluster.p2p_ports[0]}/")
               for a in s["listen_addrs"])
    assert s["topics"] and all(s["network_id"] in t for t in s["topics"])
    # positional params: node.status takes none
    assert live.fails("node.status", [1]).code == -32602
    err = live.fails("node.status", {"verbose": True})
    assert err.code == -32602 and err.message.startswith("param 'verbose': unknown param")


def test_node_peers(live: Live) -> None:
    assert live.call("node.peers") == {"peers": [], "sync": []}  # one node: nobody to talk to
    assert "unknown param" in live.fails("node.peers", {"all": True}).message


# ---------------------------------------------------------------- records


def test_record_submit(live: Live) -> None:
    task, its = create_task(live, "submit")
    seq = live.call("account.get", {"author": ANNOTATOR.peer_id})["next_seq"]
    rec = sign_annotation(live, ANNOTATOR, seq, task, its[0], "cat")
    first = live.call("record.submit", {"record": b64(rec)})
    assert first["new"] is True and first["kind"] == "annotation"
    assert first["author"] == ANNOTATOR.peer_id and first["seq"] == seq
    assert first["cid"] == cid_str(rec)
    again = live.call("record.submit", [b64(rec)])  # positional, and a replay
    assert again["new"] is False and again["cid"] == first["cid"]
    listed = live.call("annotation.list", {"author": ANNOTATOR.peer_id})["annotations"]
    assert [a["cid"] for a in listed].count(first["cid"]) == 1

    tampered = bytearray(sign_annotation(live, ANNOTATOR, seq + 1, task, its[1], "dog"))
    tampered[-1] ^= 0x01  # the signature is the last field of the envelope
    err = live.fails("record.submit", {"record": b64(bytes(tampered))})
    assert err.code == -32002 and "signature" in err.message
    assert err.data["reason"] in err.message

    other = sign_annotation(live, ANNOTATOR, seq + 1, task, its[1], "dog",
                            network_id=hashlib.sha256(b"another network").digest())
    err = live.fails("record.submit", {"record": b64(other)})
    assert err.code == -32002 and "network" in err.message

    garbage = live.fails("record.submit", {"record": b64(b"\x81\xa1k\xa3cat")})
    assert garbage.code == -32002
    for bad, why in [("not base64!", "invalid base64"), (12, "expected base64 string")]:
        err = live.fails("record.submit", {"record": bad})
        assert err.code == -32602 and err.message.startswith("param 'record':")
        assert why in err.message
    assert "missing (required)" in live.fails("record.submit", {}).message
    reasons = re.findall(r'^annot_records_rejected_total\{reason="([^"]+)"\} [1-9]',
                         live.metrics(), re.M)
    assert any("signature" in r.lower() for r in reasons), reasons
    assert any("network" in r.lower() for r in reasons), reasons


# ---------------------------------------------------------------- tasks


def test_task_create_and_get(live: Live) -> None:
    task, its = create_task(live, "get", close_time=4_000_000_000, rule="dawid-skene",
                            allow=[ANNOTATOR.peer_id], instructions=cid_str(b"read me"))
    got = live.call("task.get", {"task": task})
    assert got["task"] == task and got["requester"] == live.cluster.peer_id(0)
    assert got["items"] == its and got["labels"] == ["cat", "dog"]
    assert got["close_time"] == 4_000_000_000 and got["rule"] == "dawid-skene"
    assert got["allow"] == [ANNOTATOR.peer_id] and got["instructions"] == cid_str(b"read me")
    assert got["items_final"] == 0 and got["complete"] is False
    assert live.call("task.get", [task])["task"] == task

    missing = cid_str(b"no such task")
    err = live.fails("task.get", {"task": missing})
    assert err.code == -32001 and missing in err.message


@pytest.mark.parametrize(("change", "param", "why"), [
    ({"title": None}, "title", "missing (required)"),
    ({"title": ""}, "title", "expected string of 1..1024 characters"),
    ({"labels": []}, "labels", "expected array of 1..1024 entries, got 0"),
    ({"labels": ["a", "a"]}, "labels", "duplicate entry 'a'"),
    ({"items": ["QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"]}, "items[0]",
     "CIDv0 'Qm...' is not accepted"),
    ({"redundancy": 0}, "redundancy", "expected integer 1..1000, got 0"),
    ({"redundancy": True}, "redundancy", "expected integer"),
    ({"reward_per_item": -1}, "reward_per_item", "expected integer 0..9223372036854775807"),
    ({"validator_share_bps": 10_001}, "validator_share_bps", "expected integer 0..10000"),
    ({"rule": "mode"}, "rule", "expected 'majority' or 'dawid-skene', got 'mode'"),
    ({"allow": ["alice"]}, "allow[0]", "expected an Ed25519 peer id"),
    ({"colour": "red"}, "colour", "unknown param; task.create takes:"),
])
def test_task_create_bad_params(live: Live, change: dict[str, Any], param: str,
                                why: str) -> None:
    params: dict[str, Any] = {"title": "t", "labels": ["a"], "items": items("bad", 1),
                              "redundancy": 1, "reward_per_item": 0, "validator_share_bps": 0}
    params.update(change)
    params = {k: v for k, v in params.items() if v is not None}
    err = live.fails("task.create", params)
    assert err.code == -32602
    assert err.message.startswith(f"param {param!r}: ") and why in err.message
    assert err.data == {"param": param}


def test_task_list_pages(live: Live) -> None:
    made = {create_task(live, f"page {i}")[0] for i in range(3)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = live.call("task.list", {"cursor": cursor, "limit": 2})
        assert len(page["tasks"]) <= 2
        seen += [t["task"] for t in page["tasks"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages >= 2 and len(seen) == len(set(seen)) and made <= set(seen)
    everything = live.call("task.list")
    assert [t["task"] for t in everything["tasks"]] == seen
    row = everything["tasks"][0]
    assert set(row) >= {"task", "title", "requester", "item_count", "items_final"}
    assert "'limit': expected integer 1..1000, got 0" in live.fails("task.list",
                                                                     {"limit": 0}).message
    err = live.fails("task.list", {"cursor": "bogus"})
    assert err.code == -32602 and err.message.startswith("param 'cursor':")


# ---------------------------------------------------------------- annotations


def test_annotation_create(live: Live) -> None:
    task, its = create_task(live, "annotate")
    made = live.call("annotation.create", {"task": task, "item": its[0], "label": "dog"})
    assert made["author"] == live.cluster.peer_id(0) and made["seq"] >= 1
    listed = live.call("annotation.list", {"task": task})["annotations"]
    assert [(a["cid"], a["label"], a["item"]) for a in listed] == [(made["cid"], "dog", its[0])]

    err = live.fails("annotation.create", {"task": task, "item": its[0], "label": "cow"})
    assert err.code == -32602 and err.message.startswith("param 'label':")
    assert "'cow' is not one of cat, dog" in err.message
    other = cid_str(b"not in the task")
    err = live.fails("annotation.create", {"task": task, "item": other, "label": "cat"})
    assert err.code == -32602 and err.message.startswith("param 'item':") and other in err.message
    err = live.fails("annotation.create", {"task": cid_str(b"nope"), "item": its[0],
                                           "label": "cat"})
    assert err.code == -32001 and "task not found" in err.message
    err = live.fails("annotation.create", {"task": task, "item": its[0]})
    assert err.message == "param 'label': missing (required)"


def test_annotation_list_filters_and_pages(live: Live) -> None:
    task, its = create_task(live, "listing", n=5, redundancy=2)
    key = SigningKey(hashlib.sha256(b"lister").digest())
    for seq, item in enumerate(its, start=1):
        live.call("record.submit", {"record": b64(sign_annotation(live, key, seq, task, item,
                                                                  "cat"))})
    live.call("annotation.create", {"task": task, "item": its[0], "label": "dog"})

    by_task = live.call("annotation.list", {"task": task, "limit": 1000})["annotations"]
    assert len(by_task) == 6 and {a["task"] for a in by_task} == {task}
    by_item = live.call("annotation.list", {"item": its[0]})["annotations"]
    assert sorted(a["label"] for a in by_item) == ["cat", "dog"]
    by_author = live.call("annotation.list", {"author": key.peer_id})["annotations"]
    assert sorted(a["seq"] for a in by_author) == [1, 2, 3, 4, 5]  # ordered by (task, item)
    both = live.call("annotation.list", {"task": task, "author": key.peer_id, "item": its[3]})
    assert [a["item"] for a in both["annotations"]] == [its[3]]

    seen: list[str] = []
    cursor = None
    while True:
        page = live.call("annotation.list", {"author": key.peer_id, "limit": 2,
                                             "cursor": cursor})
        assert len(page["annotations"]) <= 2
        seen += [a["cid"] for a in page["annotations"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [a["cid"] for a in by_author]

    err = live.fails("annotation.list", {})
    assert err.code == -32602 and "at least one of 'task', 'item', 'author'" in err.message
    err = live.fails("annotation.list", {"author": "12D3KooWnope"})
    assert err.message.startswith("param 'author': expected an Ed25519 peer id")
    err = live.fails("annotation.list", {"task": "bafy!"})
    assert err.message.startswith("param 'task': expected a CIDv1")


# ---------------------------------------------------------------- consensus


def test_item_certificate_tally_ledger(live: Live) -> None:
    task, its = create_task(live, "finality")
    before = live.call("item.get", {"task": task, "item": its[0]})
    assert before["task"] == task and before["item"] == its[0]
    assert before["annotations"] == [] and before["final"] is None
    assert before["certificate"] is None and "round" in before
    err = live.fails("certificate.get", {"task": task, "item": its[0]})
    assert err.code == -32001 and "certificate not found" in err.message
    assert live.call("tally.get", {"task": task})["final"] is False

    key = SigningKey(hashlib.sha256(b"finality annotator").digest())
    for seq, (item, lab) in enumerate(zip(its, ["cat", "dog"], strict=True), start=1):
        live.call("record.submit", {"record": b64(sign_annotation(live, key, seq, task, item,
                                                                  lab))})
    got = final_item(live, task, its[0])
    assert got["final"] == "cat" and isinstance(got["round"], int)
    assert [a["author"] for a in got["annotations"]] == [key.peer_id]
    final_item(live, task, its[1])

    cert = live.call("certificate.get", {"task": task, "item": its[0]})
    data = base64.b64decode(cert["certificate"])
    assert cid_str(data) == got["certificate"] == cert["cid"]
    assert cert["value"] == "cat" and cert["signers"] == [live.cluster.peer_id(0)]
    decoded = decode_certificate(data, Limits(max_bytes=16 << 20))
    verify_certificate(decoded, live.cluster.genesis)  # offline, from the genesis alone
    assert cid_to_str(decoded.item) == its[0]

    tally: dict[str, Any] = {}
    live.wait(lambda: tally.update(live.call("tally.get", {"task": task})) or tally["final"],
              "final tally")
    assert tally["root"] and tally["total"] == 2000
    amounts = {e["account"]: e["amount"] for e in tally["entries"]}
    assert amounts[key.peer_id] == 1800 and amounts[live.cluster.peer_id(0)] == 200

    ledger = live.call("ledger.get")
    assert ledger["root"] == live.status()["ledger_root"] and ledger["tallies"] >= 1
    acct = {a["author"]: a for a in ledger["accounts"]}[key.peer_id]
    assert acct["balance"] >= 1800 and acct["agreed"] == 2
    assert live.call("account.get", {"author": key.peer_id})["balance"] == acct["balance"]

    for method in ("item.get", "certificate.get"):
        err = live.fails(method, {"task": task, "item": "nope"})
        assert err.code == -32602 and err.message.startswith("param 'item':")
    err = live.fails("item.get", {"task": task, "item": cid_str(b"stranger")})
    assert err.code == -32001 and "item not found" in err.message
    err = live.fails("tally.get", {"task": cid_str(b"no task")})
    assert err.code == -32001
    assert "unknown param" in live.fails("ledger.get", {"x": 1}).message


def test_a_client_reusing_a_seq_is_refused_not_evidenced(live: Live) -> None:
    # issue 13, finding 5: a second record with a seq the node holds, from a client,
    # is a client's mistake (two labels at once, a lagging node), not a fork to hold
    # against an honest annotator: refused, naming the next free seq. Fork evidence
    # from peers: tests/faults/test_faults_adversary.py, tests/node/consensus/test_forks.py
    task, its = create_task(live, "fork")
    one = sign_annotation(live, FORKER, 1, task, its[0], "cat")
    two = sign_annotation(live, FORKER, 1, task, its[1], "dog")  # same seq
    assert live.call("record.submit", {"record": b64(one)})["new"] is True
    err = live.fails("record.submit", {"record": b64(two)})
    assert err.code == -32002 and "the next free seq is 2" in err.message, err.message
    evidence = live.call("evidence.list")["evidence"]
    assert [e for e in evidence if e["author"] == FORKER.peer_id] == []
    assert "'limit': expected integer 1..1000" in live.fails("evidence.list",
                                                              {"limit": 5000}).message


def test_account_get(live: Live) -> None:
    acct = live.call("account.get", {"author": live.cluster.peer_id(0)})
    assert acct["author"] == live.cluster.peer_id(0)
    assert acct["next_seq"] >= 1 and {"reputation", "balance", "clock"} <= set(acct)
    fresh = SigningKey(hashlib.sha256(b"never seen").digest()).peer_id
    assert live.call("account.get", [fresh])["next_seq"] == 1
    err = live.fails("account.get", {"author": "bob"})
    assert err.code == -32602 and err.message.startswith("param 'author': expected an Ed25519")


# ---------------------------------------------------------------- blocks


def test_blocks(live: Live) -> None:
    data = os.urandom(5000)
    put = live.call("block.put", {"data": b64(data)})
    assert put == {"cid": cid_str(data), "size": 5000}
    got = live.call("block.get", {"cid": put["cid"]})
    assert base64.b64decode(got["data"]) == data and got["size"] == 5000
    assert live.call("block.put", [b64(data), "raw"])["cid"] == put["cid"]  # idempotent
    biggest = os.urandom(MAX_BLOCK_BYTES)  # the bitswap ceiling fits in one request
    assert live.call("block.put", {"data": b64(biggest)})["size"] == MAX_BLOCK_BYTES
    err = live.fails("block.put", {"data": b64(biggest + b"x")})
    assert err.code == -32602 and err.message.startswith("param 'data':")
    assert f"over the limit of {MAX_BLOCK_BYTES} bytes" in err.message

    missing = cid_str(b"a block nobody has")
    err = live.fails("block.get", {"cid": missing})
    assert err.code == -32001 and missing in err.message
    node_pb = bytes.fromhex("0a0408021800")  # an empty UnixFS file node
    assert live.call("block.put", {"data": b64(node_pb), "codec": "dag-pb"})["cid"].startswith(
        "bafy")
    err = live.fails("block.put", {"data": b64(data), "codec": "cbor"})
    assert err.message == "param 'codec': expected 'raw' or 'dag-pb', got 'cbor'"
    assert live.fails("block.put", {"data": "@@@"}).message.startswith(
        "param 'data': invalid base64")
    assert live.fails("block.get", {"cid": 42}).message.startswith("param 'cid': expected")


# ---------------------------------------------------------------- envelope and HTTP


def test_envelope_errors_and_batch(live: Live) -> None:
    bad = live.post(b"{not json")
    assert bad.status_code == 200 and bad.json()["error"]["code"] == -32700
    assert live.fails("no.such").code == -32601
    wrong = live.post({"jsonrpc": "1.0", "id": 3, "method": "node.status"}).json()
    assert wrong["error"]["code"] == -32600 and wrong["id"] == 3

    task, its = create_task(live, "batch")
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "node.status"},
        {"jsonrpc": "2.0", "id": "b", "method": "item.get",
         "params": {"task": task, "item": its[0]}},
        {"jsonrpc": "2.0", "id": "c", "method": "task.get", "params": {"task": "x"}},
        {"jsonrpc": "2.0", "method": "node.peers"},  # a notification: no reply
        {"jsonrpc": "2.0", "id": "d", "method": "nope"},
    ]
    reply = live.post(batch)
    assert reply.status_code == 200
    by_id = {r["id"]: r for r in reply.json()}
    assert set(by_id) == {"a", "b", "c", "d"}
    assert by_id["a"]["result"]["peer_id"] == live.cluster.peer_id(0)
    assert by_id["b"]["result"]["item"] == its[0]
    assert by_id["c"]["error"]["code"] == -32602 and by_id["d"]["error"]["code"] == -32601
    assert live.post([]).json()["error"]["code"] == -32600
    only_notes = live.post([{"jsonrpc": "2.0", "method": "node.status"}])
    assert only_notes.status_code == 204


def test_auth(live: Live) -> None:
    status = {"jsonrpc": "2.0", "id": 1, "method": "node.status"}
    none = live.post(status, token=None)
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert none.json()["error"]["code"] == -32005 and "rpc.token" in none.json()["error"]["message"]
    assert live.post(status, token="not-the-token").status_code == 401
    basic = live.http.post(f"{live.url}/rpc", json=status,
                           headers={"Authorization": f"Basic {live.token}"})
    assert basic.status_code == 401

    # a write with the wrong token does nothing
    key = SigningKey(hashlib.sha256(b"unauthorized writer").digest())
    task, its = create_task(live, "auth")
    rec = sign_annotation(live, key, 1, task, its[0], "cat")
    submit = {"jsonrpc": "2.0", "id": 2, "method": "record.submit", "params": {"record": b64(rec)}}
    assert live.post(submit, token=live.token[:-1] + "x").status_code == 401
    assert live.post(submit, token=None).status_code == 401
    assert live.call("account.get", {"author": key.peer_id})["clock"] == 0
    assert live.call("annotation.list", {"author": key.peer_id})["annotations"] == []
    assert live.call("record.submit", {"record": b64(rec)})["new"] is True  # proves rec was good


def test_oversized_request(live: Live) -> None:
    huge = {"jsonrpc": "2.0", "id": 1, "method": "block.put",
            "params": {"data": "A" * (3 * 1024 * 1024)}}
    reply = live.post(huge)
    assert reply.status_code == 413
    error = reply.json()["error"]
    assert error["code"] == -32600 and "over the limit of 2097152 bytes" in error["message"]
    assert live.status()["peer_id"]  # still serving


def test_healthz_metrics_and_paths(live: Live) -> None:
    health = live.http.get(f"{live.url}/healthz")
    assert health.status_code == 200 and health.json() == {"ok": True}
    live.call("node.status")
    metrics = live.http.get(f"{live.url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    for name in ("annot_records_total", "annot_records_rejected_total", "annot_peers",
                 "annot_votes_total", "annot_items_final_total", "annot_rpc_requests_total",
                 "annot_gossip_messages_total", "annot_sync_records_total"):
        assert f"# TYPE {name.removesuffix('_total')} " in text or f"# TYPE {name} " in text, name
    assert 'annot_records_total{kind="task"}' in text
    assert 'annot_rpc_requests_total{method="node.status"}' in text
    assert live.http.get(f"{live.url}/rpc").status_code == 405
    assert live.http.get(f"{live.url}/nope").status_code == 404


def test_token_files_private(live: Live) -> None:
    for name in ("rpc.token", "rpc.url"):
        mode = stat.S_IMODE((live.home / name).stat().st_mode)
        assert mode == 0o600, f"{name} has mode {mode:o}"
    assert (live.home / "rpc.url").read_text().strip() == live.url


def test_second_daemon_refused(live: Live) -> None:
    second = subprocess.run([*ANNOT, "run", "--home", str(live.home)], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert "already running" in second.stderr and "Traceback" not in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert (live.home / "rpc.url").read_text().strip() == live.url  # the first keeps its files
    assert live.status()["peer_id"] == live.cluster.peer_id(0)


def test_load_bench_runs(live: Live) -> None:
    """``tests/bench/rpc_load.py`` (reused by the benchmark suite) works on a real node."""
    task, its = create_task(live, "bench")
    out = subprocess.run(
        [sys.executable, "-m", "tests.bench.rpc_load", "--home", str(live.home),
         "--requests", "300", "--concurrency", "8", "--task", task, "--item", its[0],
         "--max-seconds", "120"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr + out.stdout
    result = json.loads(out.stdout)
    print(f"\nrpc_load: {out.stdout.strip()}")
    # every one of the 300 requests is answered (--max-seconds only guards a hang)
    assert result["errors"] == 0 and result["requests"] == 300 and not result["truncated"]
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert result["node_rss_bytes"] is None or result["node_rss_bytes"] > 10 << 20


# ---------------------------------------------------------------- shutdown (own node)


def test_sigterm_is_quick_and_clean(cluster_factory: Callable[..., Cluster]) -> None:
    c = cluster_factory(1)
    c.start()
    home, proc = c.home(0), c.procs[0]
    assert (home / "rpc.token").exists() and (home / "rpc.url").exists()
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(30)  # a hang guard; how quick the exit is is printed, not asserted
    took = time.monotonic() - started
    print(f"\nSIGTERM to exit: {took * 1000:.0f} ms")
    assert proc.returncode == 0, c.log_tail(0)
    assert not (home / "rpc.token").exists() and not (home / "rpc.url").exists()


def test_the_daemon_freezes_its_start_up_heap(live: Live) -> None:
    # everything start-up loaded lives as long as the node: out of the collector's passes
    found = re.search(r"^annot_gc_frozen_objects (\S+)$", live.metrics(), re.M)
    assert found is not None and float(found.group(1)) > 10_000, found
