"""Tests for node.kubo against a recorded-response fake of the Kubo RPC API.

Kubo cannot be installed here, so :class:`RecordedKubo` is an
``httpx.MockTransport`` that replays fixed exchanges from
``kubo_responses/*.json``: each maps a request (method, path, exact query)
to the status, headers and body Kubo's documented RPC answers with. It is a
recorded-response fake, not an emulator: a request with no recorded answer
fails the test, and the fake also answers non-POST requests with 405 as Kubo
does. ``healthy.json`` is a well-behaved Kubo 0.29; ``lying.json`` a daemon
(or proxy) that returns wrong keys, wrong bytes and odd errors.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.content.kubo import KuboClient, KuboError, api_url
from protocol.cid import DAG_PB, cid_from_str

RESPONSES = Path(__file__).parent / "kubo_responses"
HELLO = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
DIR_BLOCK = b"\x0a\x02\x08\x01"  # an empty UnixFS directory node
DIR = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
MISSING = "bafkreifj2vu26wdl4qvribyq6mkmik4cl6oqb3kbbhppsyqxkkna4pptv4"


class RecordedKubo(httpx.MockTransport):
    """Replays recorded Kubo RPC exchanges; remembers the requests it saw."""

    def __init__(self, fixture: str) -> None:
        doc = json.loads((RESPONSES / fixture).read_text())
        self.exchanges: list[dict[str, Any]] = doc["exchanges"]
        self.requests: list[httpx.Request] = []
        super().__init__(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if request.method != "POST":
            return httpx.Response(405, text="405 - Method Not Allowed\n")
        query = dict(request.url.params)
        for ex in self.exchanges:
            want = ex["request"]
            if want["path"] == request.url.path and want["query"] == query:
                return _response(ex["response"])
        raise AssertionError(f"no recorded Kubo answer for {request.url.path} {query}")


def _response(spec: dict[str, Any]) -> httpx.Response:
    if "json" in spec:
        content = json.dumps(spec["json"]).encode()
    elif "base64" in spec:
        content = base64.b64decode(spec["base64"])
    else:
        content = spec["text"].encode()
    return httpx.Response(spec["status"], headers=spec["headers"], content=content)


def _client(fixture: str = "healthy.json") -> tuple[KuboClient, RecordedKubo]:
    fake = RecordedKubo(fixture)
    return KuboClient("/ip4/127.0.0.1/tcp/5001", transport=fake), fake


def test_api_url() -> None:
    assert api_url("/ip4/127.0.0.1/tcp/5001") == "http://127.0.0.1:5001"
    assert api_url("/ip6/::1/tcp/5001") == "http://[::1]:5001"
    assert api_url("/dns4/ipfs.local/tcp/5001/https") == "https://ipfs.local:5001"
    assert api_url("http://127.0.0.1:5001/") == "http://127.0.0.1:5001"
    for bad in ("/ip4/127.0.0.1/udp/5001", "/ip4/127.0.0.1", "/unix/tmp/api", "5001"):
        with pytest.raises(KuboError, match="unsupported"):
            api_url(bad)


async def test_version_and_id() -> None:
    kubo, fake = _client()
    async with kubo:
        assert await kubo.version() == "0.29.0"
        ident = await kubo.id()
    assert ident["ID"].startswith("12D3KooW")
    assert ident["AgentVersion"] == "kubo/0.29.0/"
    assert all(r.method == "POST" for r in fake.requests)
    assert str(fake.requests[0].url) == "http://127.0.0.1:5001/api/v0/version"


async def test_put_block_sends_multipart_and_checks_key() -> None:
    kubo, fake = _client()
    async with kubo:
        assert await kubo.put_block(b"hello world") == HELLO
        assert await kubo.put_block(DIR_BLOCK, DAG_PB, pin=False) == DIR
    request = fake.requests[0]
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request.content
    assert b'name="file"' in body and b"\r\n\r\nhello world\r\n" in body


async def test_get_block_verifies() -> None:
    kubo, _ = _client()
    async with kubo:
        assert await kubo.get_block(HELLO) == b"hello world"
        assert await kubo.get_block(cid_from_str(DIR)) == DIR_BLOCK


async def test_has_block_and_size() -> None:
    kubo, fake = _client()
    async with kubo:
        assert await kubo.has_block(HELLO)
        assert await kubo.block_size(HELLO) == 11
        assert not await kubo.has_block(MISSING)
    assert all(r.url.params["offline"] == "true" for r in fake.requests)


async def test_pin() -> None:
    kubo, _ = _client()
    async with kubo:
        await kubo.pin(HELLO)
        with pytest.raises(KuboError, match="could not find") as info:
            await kubo.pin(MISSING)
        with pytest.raises(KuboError, match="context deadline exceeded"):
            await kubo.pin(DIR, recursive=False)
    assert info.value.status == 500 and info.value.code == 0
    assert info.value.message.startswith("pin: block was not found")


async def test_kubo_error_message_is_passed_through() -> None:
    kubo, _ = _client()
    async with kubo:
        with pytest.raises(KuboError) as info:
            await kubo.get_block(MISSING, offline=True)
    assert info.value.message == (
        f"block was not found locally (offline): ipld: could not find {MISSING}"
    )
    assert "/block/get" in str(info.value)


async def test_lying_daemon_is_caught() -> None:
    kubo, _ = _client("lying.json")
    async with kubo:
        with pytest.raises(KuboError, match="expected " + HELLO):
            await kubo.put_block(b"hello world")
        with pytest.raises(KuboError, match="wrong block"):
            await kubo.get_block(HELLO)
        with pytest.raises(KuboError, match="invalid JSON"):
            await kubo.has_block(HELLO)
        with pytest.raises(KuboError, match="404 page not found") as info:
            await kubo.version()
        assert info.value.status == 404
        with pytest.raises(KuboError, match="online mode"):
            await kubo.id()
        with pytest.raises(KuboError, match="did not confirm"):
            await kubo.pin(HELLO)


async def test_connection_failure() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    async with KuboClient(transport=httpx.MockTransport(refuse)) as kubo:
        with pytest.raises(KuboError, match=r"cannot reach Kubo at http://127\.0\.0\.1:5001"):
            await kubo.version()


async def test_timeout() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with KuboClient(transport=httpx.MockTransport(slow)) as kubo:
        with pytest.raises(KuboError, match="timed out"):
            await kubo.get_block(HELLO)


async def test_bad_inputs() -> None:
    kubo, fake = _client()
    async with kubo:
        with pytest.raises(KuboError, match="invalid CID"):
            await kubo.get_block("not-a-cid")
        with pytest.raises(KuboError, match="codec"):
            await kubo.put_block(b"x", 0x9999)
    assert fake.requests == []


async def test_real_socket_refused() -> None:
    """No mock: a closed local port gives a KuboError, not an httpx exception."""
    async with KuboClient("/ip4/127.0.0.1/tcp/1", timeout=5) as kubo:
        with pytest.raises(KuboError, match="cannot reach Kubo"):
            await kubo.version()
