"""RPCClient against the real server, and its error mapping on a mock transport."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest
import trio
from fake_rpc_api import ITEM, METRICS, PEER, TASK, FakeNodeAPI

from node.rpc.client import (
    NodeNotRunningError,
    NodeUnreachableError,
    RPCClient,
    RPCClientError,
    UnauthorizedClientError,
)
from node.rpc.config import RPCConfig
from node.rpc.server import serve_rpc


@pytest.fixture
async def home(tmp_path: Path, nursery: trio.Nursery) -> Path:
    await nursery.start(serve_rpc, FakeNodeAPI(), RPCConfig.for_tests(), tmp_path,
                        lambda: METRICS)
    return tmp_path


async def test_call_and_errors(home: Path) -> None:
    async with RPCClient.from_home(home) as client:
        assert (await client.call("node.status"))["peer_id"] == PEER
        assert (await client.call("task.get", task=TASK))["task"] == TASK
        with pytest.raises(RPCClientError) as caught:
            await client.call("task.get", task=ITEM)
        assert caught.value.code == -32001
        assert caught.value.data == {"what": "task", "key": ITEM}
        with pytest.raises(RPCClientError, match="param 'limit'") as bad:
            await client.call("task.list", limit="abc")
        assert bad.value.code == -32602


async def test_batch(home: Path) -> None:
    async with RPCClient.from_home(home) as client:
        replies = await client.batch([
            ("node.status", {}), ("task.get", {"task": ITEM}), ("account.get", {"author": PEER}),
        ])
    assert replies[0].unwrap()["peer_id"] == PEER
    assert replies[1].error is not None and replies[1].error.code == -32001
    with pytest.raises(RPCClientError):
        replies[1].unwrap()
    assert replies[2].result["next_seq"] == 5


async def test_wrong_token(home: Path) -> None:
    url = (home / "rpc.url").read_text()
    async with RPCClient(url, "wrong") as client:
        with pytest.raises(UnauthorizedClientError, match=r"rpc\.token"):
            await client.call("node.status")


async def test_oversized_request_is_an_rpc_error(home: Path) -> None:
    async with RPCClient.from_home(home) as client:
        with pytest.raises(RPCClientError, match="over the limit") as caught:
            await client.call("record.submit", record="A" * 2_200_000)
    assert caught.value.code == -32600


def test_from_home_when_not_running(tmp_path: Path) -> None:
    with pytest.raises(NodeNotRunningError) as caught:
        RPCClient.from_home(tmp_path)
    assert str(caught.value) == (
        f"node not running: {tmp_path}/rpc.url not found — start it with "
        f"`annot run --home {tmp_path}`"
    )


async def test_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    async with RPCClient(f"http://127.0.0.1:{port}", "t") as client:
        with pytest.raises(NodeUnreachableError, match="is `annot run` running"):
            await client.call("node.status")


async def test_mock_transport_seam() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer tok"
        seen.append(json.loads(request.content))
        if seen[-1]["method"] == "html":
            return httpx.Response(502, text="<html>bad gateway</html>")
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": seen[-1]["id"], "result": 7})

    async with RPCClient("http://node", "tok", transport=httpx.MockTransport(handler)) as client:
        assert await client.call("x.y", a=1) == 7
        with pytest.raises(NodeUnreachableError, match="HTTP 502 without JSON"):
            await client.call("html")
    assert seen[0] == {"jsonrpc": "2.0", "id": 1, "method": "x.y", "params": {"a": 1}}
