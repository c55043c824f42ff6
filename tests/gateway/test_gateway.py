"""The public gateway over a real store and ingest, on 127.0.0.1: what it serves,
what it admits, and what it refuses (admin methods, signing requests, oversized
bodies, foreign Host and Origin, floods)."""

from __future__ import annotations

import base64
import socket
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.content.files import add_bytes
from node.gateway.client import GatewayClient, GatewayClientError
from node.gateway.config import GatewayConfig
from node.gateway.server import serve_gateway
from protocol.cid import cid_bytes, cid_to_str
from protocol.keys import SigningKey
from protocol.records import TallyVote, sign_record
from tests.gateway.helpers import Fixture, annotation, open_fixture, serving


def _fixture(tmp_path: Path) -> Fixture:
    return open_fixture(tmp_path, n_items=4, redundancy=2)


async def test_serves_the_app_and_public_json(tmp_path: Path) -> None:
    fx = _fixture(tmp_path)
    async with serving(fx) as url, httpx.AsyncClient(base_url=url) as http:
        page = await http.get("/")
        assert page.status_code == 200 and b'src="/js/workbench.js"' in page.content
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        js = await http.get("/js/records.js")
        assert js.headers["content-type"].startswith("text/javascript")
        assert (await http.get("/js/../../adapter.py")).status_code == 404
        net = (await http.get("/api/v1/network")).json()
        assert net["network_id"] == fx.node.genesis.network_id.hex()
        tasks = (await http.get("/api/v1/tasks")).json()["tasks"]
        assert [t["task"] for t in tasks] == [fx.task.cid_str]
        key = SigningKey(bytes(32))
        nxt = (await http.get(f"/api/v1/tasks/{fx.task.cid_str}/next",
                              params={"author": key.peer_id})).json()
        assert nxt["item"] == fx.items[0] and nxt["content_type"] == "image/png"
        img = await http.get(f"/ipfs/{fx.items[0]}")
        assert img.headers["content-type"] == "image/png"
        assert img.headers["x-content-type-options"] == "nosniff"
        assert "content-disposition" not in img.headers
        assert img.content == fx.node.blocks.get(fx.items[0])
        pgm = add_bytes(fx.node.blocks, b"P5\n2 2\n255\n\x00\x40\x80\xff")
        html = add_bytes(fx.node.blocks, b"<html><script>alert(1)</script></html>")
        blob = add_bytes(fx.node.blocks, b"\x00\x01binary\x02")
        preview = await http.get(f"/ipfs/{pgm}", params={"preview": "png"})
        assert preview.headers["content-type"] == "image/png"
        assert preview.content.startswith(b"\x89PNG")
        page_item = await http.get(f"/ipfs/{html}")
        assert page_item.headers["content-type"] == "text/plain; charset=utf-8"
        assert "sandbox" in page_item.headers["content-security-policy"]
        download = await http.get(f"/ipfs/{blob}")
        assert download.headers["content-type"] == "application/octet-stream"
        assert download.headers["content-disposition"].startswith("attachment")
        missing = await http.get(f"/ipfs/{cid_to_str(cid_bytes(b'held by nobody'))}")
        assert missing.status_code == 404 and "not held" in missing.json()["error"]
        bad = await http.get("/api/v1/tasks/notacid")
        assert bad.status_code == 400 and "notacid" in bad.json()["error"]


async def test_admits_annotations_signed_by_their_authors(tmp_path: Path) -> None:
    fx = _fixture(tmp_path)
    key = SigningKey(bytes([9]) * 32)
    rec = annotation(fx, key, 1, fx.items[0], "dark")
    async with serving(fx) as url, httpx.AsyncClient(base_url=url) as http:
        got = await http.post("/api/v1/records", content=rec.data)
        assert got.status_code == 201, got.text
        assert got.json() == {"cid": rec.cid_str, "kind": "annotation", "author": key.peer_id,
                              "seq": 1, "new": True, "annotations": 1, "redundancy": 2}
        again = await http.post("/api/v1/records", content=rec.data)
        assert again.status_code == 200 and again.json()["new"] is False
        second = await http.post("/api/v1/records",
                                 content=annotation(fx, key, 2, fx.items[0], "bright").data)
        assert second.status_code == 422 and "already labelled" in second.json()["error"]
        nxt = (await http.get(f"/api/v1/tasks/{fx.task.cid_str}/next",
                              params={"author": key.peer_id})).json()
        assert nxt["item"] == fx.items[1]  # this key labelled items[0] already
        acct = (await http.get(f"/api/v1/accounts/{key.peer_id}")).json()
        assert acct["labels_given"] == 1 and acct["highest_seq"] == 1
        task = (await http.get(f"/api/v1/tasks/{fx.task.cid_str}?items=1")).json()
        assert task["progress"]["short"] == 4 and task["label_counts"] == {"dark": 1}
        assert task["item_progress"][0]["labels"] == {"dark": 1}
        first = (await http.get(f"/api/v1/tasks/{fx.task.cid_str}/items",
                                params={"limit": 3})).json()
        rest = (await http.get(f"/api/v1/tasks/{fx.task.cid_str}/items",
                               params={"limit": 3, "cursor": first["next_cursor"]})).json()
        assert [i["item"] for i in first["items"] + rest["items"]] == fx.items
        assert rest["next_cursor"] is None and first["items"][0]["annotations"] == 1
    assert fx.node.store.annotation_count(fx.task.cid, rec.body.item) == 1  # type: ignore


async def test_refuses_records_that_could_not_count(tmp_path: Path) -> None:
    fx = _fixture(tmp_path)
    key = SigningKey(bytes([5]) * 32)
    wrong_label = annotation(fx, key, 1, fx.items[0], "purple")
    forged = bytearray(annotation(fx, key, 1, fx.items[0], "dark").data)
    forged[-1] ^= 1  # the signature's last byte
    vote = sign_record(fx.node.genesis.network_id, key, 1,
                       TallyVote(task=fx.task.cid, root=bytes(32)))
    async with serving(fx) as url, httpx.AsyncClient(base_url=url) as http:
        for body, why in ((wrong_label.data, "'purple' is not one of bright, dark"),
                          (bytes(forged), "signature does not verify"),
                          (vote.data, "not tally_vote"),
                          (b"\x93garbage", "trailing bytes"),
                          (b"", "one signed record")):
            got = await http.post("/api/v1/records", content=body)
            assert got.status_code in (400, 422), got.text
            assert why in got.json()["error"], got.json()
    assert fx.node.store.count("annotation") == 0


async def test_refuses_admin_methods_and_signing_requests(tmp_path: Path) -> None:
    fx = _fixture(tmp_path)
    before = fx.node.store.count()
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "annotation.create",
           "params": {"task": fx.task.cid_str, "item": fx.items[0], "label": "dark"}}
    async with serving(fx) as url, httpx.AsyncClient(base_url=url) as http:
        for path in ("/rpc", "/api/v1/annotations", "/api/v1/tasks", "/api/v1/sign"):
            got = await http.post(path, json=rpc)
            assert got.status_code == 405 and "never signs" in got.json()["error"], path
        assert (await http.get("/rpc")).status_code == 404
        assert (await http.get("/metrics")).status_code == 404
        for method in ("PUT", "DELETE", "PATCH"):
            got = await http.request(method, "/api/v1/records", content=b"x")
            assert got.status_code == 405
    assert fx.node.store.count() == before
    assert fx.node.store.next_seq(fx.node.public_key) == 1  # the node signed nothing


async def test_refuses_oversized_bodies(tmp_path: Path) -> None:
    fx = _fixture(tmp_path)
    config = GatewayConfig(port=0, max_body_bytes=4096)
    async with serving(fx, config) as url, httpx.AsyncClient(base_url=url) as http:
        got = await http.post("/api/v1/records", content=b"\x00" * 5000)
        assert got.status_code == 413 and "over the limit of 4096" in got.json()["error"]

        async def chunks():  # no Content-Length: the limit applies while reading
            for _ in range(10):
                yield b"\x00" * 1000

        got = await http.post("/api/v1/records", content=chunks())
        assert got.status_code == 413


async def test_refuses_foreign_host_and_origin(tmp_path: Path) -> None:
    fx = _fixture(tmp_path)
    config = GatewayConfig(port=0, hostnames=("annot.lan",))
    async with serving(fx, config) as url, httpx.AsyncClient(base_url=url) as http:
        port = url.rsplit(":", 1)[1]
        for host, status in (("evil.example", 421), (f"rebind.attacker.test:{port}", 421),
                             (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200),
                             ("annot.lan", 200), ("192.168.1.20:80", 200), ("", 421)):
            got = await http.get("/api/v1/network", headers={"host": host})
            assert got.status_code == status, host
        rec = annotation(fx, SigningKey(bytes([3]) * 32), 1, fx.items[0], "dark")
        got = await http.post("/api/v1/records", content=rec.data,
                              headers={"origin": "http://evil.example"})
        assert got.status_code == 403
        got = await http.post("/api/v1/records", content=rec.data,
                              headers={"origin": url})
        assert got.status_code == 201


async def test_keeps_serving_under_a_bounded_flood(tmp_path: Path) -> None:
    fx = _fixture(tmp_path)
    config = GatewayConfig(port=0, rate_per_s=2.0, burst=20, max_clients=64)
    statuses: list[int] = []
    async with serving(fx, config) as url, httpx.AsyncClient(
            base_url=url, limits=httpx.Limits(max_connections=20)) as flood:
        other = httpx.AsyncClient(base_url=url, transport=httpx.AsyncHTTPTransport(
            local_address="127.0.0.2"))

        async def hammer() -> None:
            for _ in range(10):  # 16 x 10 = 160 requests, bounded
                statuses.append((await flood.get("/api/v1/health")).status_code)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(16):
                    nursery.start_soon(hammer)
                await trio.sleep(0.05)
                # another client is served while the flood runs
                assert (await other.get("/api/v1/health")).status_code == 200
        await other.aclose()
        assert len(statuses) == 160
        assert statuses.count(429) > 0 and statuses.count(200) >= 20
        assert set(statuses) <= {200, 429}
        await trio.sleep(1 / 2 + 0.05)  # one token back
        assert (await flood.get("/api/v1/health")).status_code == 200


async def test_cli_client_reads_and_submits_through_the_gateway(tmp_path: Path) -> None:
    """What ``annot --api URL`` calls, in the shapes of the RPC methods it replaces."""
    fx = _fixture(tmp_path)
    key = SigningKey(bytes([11]) * 32)
    rec = annotation(fx, key, 1, fx.items[2], "bright")
    async with serving(fx) as url:

        def calls() -> dict[str, Any]:
            gw = GatewayClient(url)
            try:
                out = {m: gw.call(m, **p) for m, p in (
                    ("node.status", {}), ("task.list", {"cursor": None, "limit": 10}),
                    ("task.get", {"task": fx.task.cid_str}),
                    ("record.submit", {"record": base64.b64encode(rec.data).decode()}),
                    ("item.get", {"task": fx.task.cid_str, "item": fx.items[2]}),
                    ("account.get", {"author": key.peer_id}), ("ledger.get", {}))}
                for method in ("annotation.create", "task.create", "block.put"):
                    with pytest.raises(GatewayClientError, match="needs the node's admin RPC"):
                        gw.call(method, task=fx.task.cid_str)
                with pytest.raises(GatewayClientError, match="HTTP 404"):
                    gw.call("task.get", task=cid_to_str(cid_bytes(b"no such task")))
                return out
            finally:
                gw.close()

        got = await trio.to_thread.run_sync(calls)
    assert got["node.status"]["network_id"] == fx.node.genesis.network_id.hex()
    assert got["node.status"]["gateway_url"] == url
    assert got["task.list"]["tasks"][0]["task"] == fx.task.cid_str
    assert got["task.get"]["items_final"] == 0 and got["task.get"]["complete"] is False
    assert got["record.submit"]["cid"] == rec.cid_str
    assert [a["label"] for a in got["item.get"]["annotations"]] == ["bright"]
    assert got["account.get"]["next_seq"] == 2
    assert got["ledger.get"]["accounts"] == []


async def test_a_busy_port_turns_the_gateway_off_not_the_node(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fx = _fixture(tmp_path)
    (tmp_path / "gateway.url").write_text("http://127.0.0.1:1")  # stale, from a killed run
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        async with trio.open_nursery() as nursery:
            url = await nursery.start(partial(serve_gateway, fx.gateway,
                                              GatewayConfig(port=port), tmp_path))
    assert url is None
    assert not (tmp_path / "gateway.url").exists()
    assert f"gateway cannot listen on 127.0.0.1:{port}" in caplog.text
    assert "gateway (web app) is OFF" in caplog.text
