"""The JSON-RPC server on a real socket: auth, limits, envelope, every route."""

from __future__ import annotations

import base64
import logging
import socket
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from fake_rpc_api import ITEM, METRICS, PEER, PEER2, TASK, FakeNodeAPI

from node.rpc.api import AnnotationQuery, TaskSpec
from node.rpc.config import RPCConfig
from node.rpc.routes import ROUTES
from node.rpc.server import serve_rpc


@dataclass
class Served:
    api: FakeNodeAPI
    url: str
    token: str
    http: httpx.AsyncClient
    home: Path

    async def post(self, body: Any, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return await self.http.post(f"{self.url}/rpc", json=body, headers=headers)

    async def call(self, method: str, params: Any = None) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
        if params is not None:
            body["params"] = params
        response = await self.post(body)
        assert response.status_code == 200, response.text
        reply: dict[str, Any] = response.json()
        return reply


@pytest.fixture
async def served(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Served]:
    api = FakeNodeAPI()
    url = await nursery.start(serve_rpc, api, RPCConfig.for_tests(), tmp_path, lambda: METRICS)
    async with httpx.AsyncClient() as http:
        yield Served(api, url, (tmp_path / "rpc.token").read_text(), http, tmp_path)


# --- every method, good params ---------------------------------------------

B64 = base64.b64encode(b"hello").decode()
TASK_PARAMS = {
    "title": "cats", "labels": ["cat", "dog"], "items": [ITEM], "redundancy": 3,
    "reward_per_item": 100, "validator_share_bps": 1000,
}
GOOD: list[tuple[str, Any, str, tuple[Any, ...], dict[str, Any]]] = [
    ("node.status", None, "node_status", (), {"peer_id": PEER}),
    ("node.peers", {}, "node_peers", (), {}),
    ("record.submit", {"record": B64}, "record_submit", (b"hello",), {"new": True}),
    ("task.create", TASK_PARAMS, "task_create",
     (TaskSpec("cats", ("cat", "dog"), (ITEM,), 3, 100, 1000),), {"seq": 1}),
    ("task.create", {**TASK_PARAMS, "close_time": 1_700_000_000, "allow": [PEER],
                     "rule": "dawid-skene", "instructions": ITEM}, "task_create",
     (TaskSpec("cats", ("cat", "dog"), (ITEM,), 3, 100, 1000, 1_700_000_000, (PEER,),
               "dawid-skene", ITEM),), {}),
    ("task.create", {**TASK_PARAMS, "items": [], "items_dir": TASK, "item_count": 7},
     "task_create", (TaskSpec("cats", ("cat", "dog"), (), 3, 100, 1000, items_dir=TASK,
                              item_count=7),), {}),
    ("task.items", {"task": TASK, "cursor": "photos/a.png", "limit": 2}, "task_items",
     (TASK, "photos/a.png", 2), {"resolved": True}),
    ("task.certificates", {"task": TASK, "limit": 50}, "task_certificates",
     (TASK, None, 50), {"next_cursor": None}),
    ("task.get", {"task": TASK}, "task_get", (TASK,), {"task": TASK}),
    ("task.get", [TASK], "task_get", (TASK,), {"task": TASK}),  # positional
    ("task.list", {}, "task_list", (None, 100), {"next_cursor": "c2"}),
    ("task.list", {"cursor": "c2", "limit": 5}, "task_list", ("c2", 5), {"next_cursor": None}),
    ("annotation.create", {"task": TASK, "item": ITEM, "label": "cat"}, "annotation_create",
     (TASK, ITEM, "cat"), {"author": PEER}),
    ("annotation.list", {"author": PEER2, "limit": 10}, "annotation_list",
     (AnnotationQuery(author=PEER2, limit=10),), {"next_cursor": None}),
    ("item.get", {"task": TASK, "item": ITEM}, "item_get", (TASK, ITEM), {"final": "cat"}),
    ("certificate.get", {"task": TASK, "item": ITEM}, "certificate_get", (TASK, ITEM),
     {"certificate": base64.b64encode(b"\x93cert").decode(), "value": "cat"}),
    ("tally.get", {"task": TASK}, "tally_get", (TASK,), {"final": True}),
    ("ledger.get", None, "ledger_get", (), {}),
    ("evidence.list", {"limit": 1000}, "evidence_list", (None, 1000), {"next_cursor": None}),
    ("account.get", {"author": PEER}, "account_get", (PEER,), {"next_seq": 5}),
    ("block.put", {"data": B64}, "block_put", (b"hello", "raw"), {"size": 5}),
    ("payout.epoch", {}, "payout_epoch", (None, None), {"epoch": 1, "quorum": True}),
    ("payout.epoch", {"epoch": 3}, "payout_epoch", (3, None), {"epoch": 3}),
]


def test_every_route_is_covered() -> None:
    assert {m for m, *_ in GOOD} | {"block.get"} == set(ROUTES)


@pytest.mark.parametrize(("method", "params", "api_method", "args", "expect"), GOOD)
async def test_good_params(
    served: Served, method: str, params: Any, api_method: str, args: tuple[Any, ...],
    expect: dict[str, Any],
) -> None:
    reply = await served.call(method, params)
    assert reply["id"] == 1 and "error" not in reply, reply
    assert served.api.calls == [(api_method, args)]
    for key, value in expect.items():
        assert reply["result"][key] == value


async def test_block_round_trip(served: Served) -> None:
    cid = (await served.call("block.put", {"data": B64, "codec": "raw"}))["result"]["cid"]
    got = (await served.call("block.get", {"cid": cid}))["result"]
    assert got == {"cid": cid, "data": B64, "size": 5}
    missing = await served.call("block.get", {"cid": TASK})
    assert missing["error"]["code"] == -32001
    assert missing["error"]["message"] == f"block not found: {TASK}"


# --- bad params: precise messages, nothing run ------------------------------

BAD: list[tuple[str, Any, str]] = [
    ("task.list", {"limit": "abc"}, "param 'limit': expected integer 1..1000, got 'abc'"),
    ("task.list", {"limit": 0}, "param 'limit': expected integer 1..1000, got 0"),
    ("task.list", {"limit": True}, "param 'limit': expected integer 1..1000, got True"),
    ("task.get", {}, "param 'task': missing (required)"),
    ("task.get", {"task": "Qmabc"}, "param 'task': expected a CIDv1 in base32"),
    ("task.get", {"task": TASK, "x": 1}, "param 'x': unknown param; task.get takes: task"),
    ("task.get", [TASK, 2], "param 'params': task.get takes at most 1 positional params"),
    ("task.get", "oops", "param 'params': expected object or array, got str"),
    ("account.get", {"author": "12D3KooWshort"}, "param 'author': expected an Ed25519 peer id"),
    ("record.submit", {"record": "***"}, "param 'record': invalid base64"),
    ("record.submit", {"record": 5}, "param 'record': expected base64 string, got int"),
    ("task.create", {**TASK_PARAMS, "labels": "cat"},
     "param 'labels': expected array, got str"),
    ("task.create", {**TASK_PARAMS, "labels": []},
     "param 'labels': expected array of 1..1024 entries, got 0"),
    ("task.create", {**TASK_PARAMS, "labels": ["cat", "cat"]},
     "param 'labels': duplicate entry 'cat'"),
    ("task.create", {**TASK_PARAMS, "items": [ITEM, "nope"]},
     "param 'items[1]': expected a CIDv1 in base32"),
    ("task.create", {**TASK_PARAMS, "validator_share_bps": 10_001},
     "param 'validator_share_bps': expected integer 0..10000, got 10001"),
    ("task.create", {**TASK_PARAMS, "rule": "vote"},
     "param 'rule': expected 'majority' or 'dawid-skene', got 'vote'"),
    ("task.create", {**TASK_PARAMS, "title": ""},
     "param 'title': expected string of 1..1024 characters, got 0"),
    ("task.create", {**TASK_PARAMS, "items_dir": TASK},
     "param 'items': give 'items' (a list of CIDs) or 'items_dir' (a UnixFS directory CID), "
     "not both"),
    ("task.create", {**TASK_PARAMS, "items": []},
     "param 'items': give 'items' (a list of CIDs) or 'items_dir' (a UnixFS directory CID), "
     "not both"),
    ("task.create", {**TASK_PARAMS, "item_count": 3},
     "param 'item_count': 'item_count' goes with 'items_dir'"),
    ("annotation.list", {"limit": 5},
     "param 'task': at least one of 'task', 'item', 'author' is required"),
    ("block.put", {"data": B64, "codec": "dag-cbor"},
     "param 'codec': expected 'raw' or 'dag-pb', got 'dag-cbor'"),
]


@pytest.mark.parametrize(("method", "params", "message"), BAD)
async def test_bad_params(served: Served, method: str, params: Any, message: str) -> None:
    reply = await served.call(method, params)
    assert reply["error"]["code"] == -32602
    assert reply["error"]["message"].startswith(message), reply["error"]["message"]
    assert served.api.calls == []


async def test_app_errors_keep_their_codes(served: Served) -> None:
    rejected = await served.call("record.submit", {"record": base64.b64encode(b"bad").decode()})
    assert rejected["error"] == {
        "code": -32002, "message": "record rejected: signature does not verify",
        "data": {"reason": "signature does not verify"},
    }
    missing = await served.call("task.get", {"task": ITEM})
    assert missing["error"]["code"] == -32001


async def test_unexpected_exception_is_internal_error(
    served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom() -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(served.api, "ledger_get", boom)
    with caplog.at_level(logging.ERROR, logger="annot.rpc"):
        reply = await served.call("ledger.get")
    assert reply["error"]["code"] == -32603
    assert "RuntimeError" in reply["error"]["message"]
    assert "rpc method ledger.get failed" in caplog.text


# --- auth, limits, paths -------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic abc"}])
async def test_token_required(served: Served, headers: dict[str, str]) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "node.status"}
    response = await served.http.post(f"{served.url}/rpc", json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == -32005
    assert "rpc.token" in response.json()["error"]["message"]
    assert served.api.calls == []


async def test_oversized_body_gets_413(served: Served) -> None:
    big = {"record": "A" * 2_200_000}
    response = await served.post({"jsonrpc": "2.0", "id": 1, "method": "record.submit",
                                  "params": big})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == -32600
    assert "over the limit of 2097152 bytes" in response.json()["error"]["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted while read
        for _ in range(40):
            yield b" " * 65536

    response = await served.http.post(f"{served.url}/rpc", content=chunks(),
                                      headers={"Authorization": f"Bearer {served.token}"})
    assert response.status_code == 413
    assert served.api.calls == []


async def test_healthz_and_metrics_need_no_token(served: Served) -> None:
    health = await served.http.get(f"{served.url}/healthz")
    assert (health.status_code, health.json()) == (200, {"ok": True})
    metrics = await served.http.get(f"{served.url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metrics.content == METRICS


async def test_wrong_path_and_verb(served: Served) -> None:
    assert (await served.http.get(f"{served.url}/rpc")).status_code == 405
    assert (await served.http.post(f"{served.url}/healthz")).status_code == 405
    assert (await served.http.get(f"{served.url}/nope")).status_code == 404


# --- the envelope ---------------------------------------------------------------


async def test_parse_error(served: Served) -> None:
    response = await served.http.post(f"{served.url}/rpc", content=b"{not json",
                                      headers={"Authorization": f"Bearer {served.token}"})
    assert response.json()["error"]["code"] == -32700
    assert response.json()["id"] is None


@pytest.mark.parametrize("body", [
    {"id": 1, "method": "node.status"},
    {"jsonrpc": "1.0", "id": 1, "method": "node.status"},
    {"jsonrpc": "2.0", "id": 1, "method": 5},
    {"jsonrpc": "2.0", "id": [1], "method": "node.status"},
    [],
    5,
])
async def test_invalid_request(served: Served, body: Any) -> None:
    reply = (await served.post(body)).json()
    assert reply["error"]["code"] == -32600
    assert served.api.calls == []


async def test_unknown_method(served: Served) -> None:
    reply = await served.call("node.nope")
    assert reply["error"] == {"code": -32601, "message": "method not found: 'node.nope'",
                              "data": {"method": "node.nope"}}


async def test_batch_with_notification(served: Served) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "node.status"},
        {"jsonrpc": "2.0", "method": "task.get", "params": {"task": TASK}},  # notification
        {"jsonrpc": "2.0", "id": 2, "method": "task.get", "params": {"task": 1}},
        {"jsonrpc": "2.0", "id": 3, "method": "nope"},
        "junk",
    ]
    replies = (await served.post(batch)).json()
    assert [r["id"] for r in replies] == ["a", 2, 3, None]
    assert "result" in replies[0]
    assert [r["error"]["code"] for r in replies[1:]] == [-32602, -32601, -32600]
    assert [c[0] for c in served.api.calls] == ["node_status", "task_get"]


async def test_only_notifications_get_204(served: Served) -> None:
    response = await served.post([{"jsonrpc": "2.0", "method": "ledger.get"}])
    assert (response.status_code, response.content) == (204, b"")
    response = await served.post({"jsonrpc": "2.0", "method": "ledger.get"})
    assert response.status_code == 204
    assert [c[0] for c in served.api.calls] == ["ledger_get", "ledger_get"]


# --- lifecycle ------------------------------------------------------------------


async def test_token_and_url_files(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_rpc, FakeNodeAPI(), RPCConfig.for_tests(), tmp_path,
                                  lambda: METRICS)
        assert (tmp_path / "rpc.url").read_text() == url
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        for name in ("rpc.url", "rpc.token"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        assert len((tmp_path / "rpc.token").read_text()) >= 43
        nursery.cancel_scope.cancel()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


async def test_fresh_token_each_start(tmp_path: Path) -> None:
    tokens = []
    for _ in range(2):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_rpc, FakeNodeAPI(), RPCConfig.for_tests(), tmp_path,
                                lambda: METRICS)
            tokens.append((tmp_path / "rpc.token").read_text())
            nursery.cancel_scope.cancel()
    assert tokens[0] != tokens[1]


async def test_remote_host_needs_allow_remote(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allow_remote"):
        await serve_rpc(FakeNodeAPI(), RPCConfig(host="0.0.0.0", port=0), tmp_path,
                        lambda: METRICS)
    assert not (tmp_path / "rpc.token").exists()


async def test_remote_host_allowed_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = RPCConfig(host="0.0.0.0", port=0, allow_remote=True)
    with caplog.at_level(logging.WARNING, logger="annot.rpc"):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_rpc, FakeNodeAPI(), config, tmp_path,
                                      lambda: METRICS)
            assert url.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{url}/healthz")).status_code == 200
            nursery.cancel_scope.cancel()
    assert "non-loopback" in caplog.text


async def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve_rpc(FakeNodeAPI(), RPCConfig(port=port), tmp_path, lambda: METRICS)
    assert not (tmp_path / "rpc.url").exists()


@pytest.mark.parametrize(("config", "message"), [
    (RPCConfig(port=70000), "rpc.port: expected an integer 0..65535, got 70000"),
    (RPCConfig(host=""), "rpc.host"),
    (RPCConfig(max_request_bytes=10), "rpc.max_request_bytes"),
    (RPCConfig(host="example.com"), "not a loopback address"),
])
def test_config_validate(config: RPCConfig, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_config_defaults_validate() -> None:
    RPCConfig().validate()
    RPCConfig.for_tests().validate()
    RPCConfig(host="::1").validate()
    RPCConfig(host="localhost").validate()


async def test_metrics_count_calls(tmp_path: Path) -> None:
    from node.core.metrics import Metrics

    metrics = Metrics()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_rpc, FakeNodeAPI(), RPCConfig.for_tests(),
                                          tmp_path, metrics.render, on_call=metrics.count_rpc))
        token = (tmp_path / "rpc.token").read_text()
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
            for method in ("node.status", "node.status", "no.such"):
                body = {"jsonrpc": "2.0", "id": 1, "method": method}
                await http.post(f"{url}/rpc", json=body)
            text = (await http.get(f"{url}/metrics")).text
        nursery.cancel_scope.cancel()
    assert 'annot_rpc_requests_total{method="node.status"} 2.0' in text
    assert 'annot_rpc_requests_total{method="<unknown>"} 1.0' in text
    assert "annot_peers 0.0" in text
