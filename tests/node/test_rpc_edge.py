"""Issue 13, finding 13: the HTTP edge of the admin RPC, against one real ``annot run``.

- JSON nested 2,000 deep gets a JSON-RPC parse error (-32700) saying so,
  never an HTTP 500 with an empty body;
- a bad cursor ("²", 400 digits) is invalid params (-32602) naming ``cursor``;
- ``list_of(unique=True)`` finds a duplicate in one pass (counted comparisons,
  not time: a 20,000-entry list would take ~2*10^8 comparisons the old way);
- ``/metrics`` (and everything else) refuses a ``Host`` that is a DNS name
  other than localhost, so DNS rebinding cannot read it from a browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Cluster

from node.rpc.api import InvalidParamsError
from node.rpc.params import list_of
from node.rpc.server import host_allowed
from protocol.keys import SigningKey


class Live:
    def __init__(self, home: Path) -> None:
        self.url = (home / "rpc.url").read_text().strip()
        token = (home / "rpc.token").read_text().strip()
        self.http = httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"})

    def post_raw(self, body: bytes) -> httpx.Response:
        return self.http.post(self.url + "/rpc", content=body,
                              headers={"content-type": "application/json"})

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        r = self.http.post(self.url + "/rpc", json={"jsonrpc": "2.0", "id": 1,
                                                     "method": method, "params": params})
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    c = Cluster(tmp_path_factory.mktemp("rpc-edge"), n=1)
    try:
        c.start()
        lv = Live(c.home(0))
        yield lv
        lv.http.close()
    finally:
        c.close()


@pytest.mark.parametrize("body", [b"[" * 2000 + b"]" * 2000,
                                  b'{"jsonrpc":"2.0","id":1,"method":"node.status","params":'
                                  + b'{"a":' * 2000 + b"1" + b"}" * 2001])
def test_deeply_nested_json_is_a_parse_error(live: Live, body: bytes) -> None:
    r = live.post_raw(body)
    assert r.status_code == 200, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == -32700
    assert "nested 2000 levels deep" in err["message"] or "nested 2001" in err["message"]


@pytest.mark.parametrize("method", ["task.list", "evidence.list", "annotation.list"])
@pytest.mark.parametrize("cursor", ["²", "1" * 400, "١٢"])
def test_bad_cursor_is_invalid_params(live: Live, method: str, cursor: str) -> None:
    extra = {"author": SigningKey(b"\x01" * 32).peer_id} if method == "annotation.list" else {}
    err = live.call(method, cursor=cursor, **extra)["error"]
    assert err["code"] == -32602, err
    assert err["data"]["param"] == "cursor"
    assert "cursor" in err["message"]


def test_good_cursor_still_pages(live: Live) -> None:
    out = live.call("task.list", cursor="0", limit=5)
    assert "result" in out and out["result"]["tasks"] == []


@pytest.mark.parametrize("host", ["evil.example", "rebind.attacker.test:80", "localhost.evil"])
@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
def test_foreign_host_header_is_refused(live: Live, host: str, path: str) -> None:
    r = httpx.get(live.url + path, headers={"Host": host}, timeout=10)
    assert r.status_code == 403, r.text
    assert "DNS rebinding" in r.json()["error"]
    assert "annot_" not in r.text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST:1", "[::1]:4701"])
def test_own_names_are_served(live: Live, host: str) -> None:
    r = httpx.get(live.url + "/metrics", headers={"Host": host}, timeout=10)
    assert r.status_code == 200
    assert "annot_peers" in r.text


def test_host_allowed_rules() -> None:
    names = frozenset({"localhost", "node.lan"})
    assert host_allowed(b"10.1.2.3:80", names)
    assert host_allowed(b"node.lan", names)
    assert host_allowed(b"node.lan.:4701", names)
    assert not host_allowed(b"node.lan.evil", names)
    assert not host_allowed(b"", names)
    assert not host_allowed(b"\xff", names)


class _Counted:
    """A hashable value that counts how often it is compared for equality."""

    calls = 0

    def __init__(self, v: int) -> None:
        self.v = v

    def __hash__(self) -> int:
        return hash(self.v)

    def __eq__(self, other: object) -> bool:
        _Counted.calls += 1
        return isinstance(other, _Counted) and other.v == self.v


def test_unique_list_check_is_linear() -> None:
    n = 20_000
    check = list_of(lambda name, v: _Counted(v), n + 1, unique=True)
    _Counted.calls = 0
    with pytest.raises(InvalidParamsError) as err:
        check("items", [*range(n), 0])  # the duplicate is the very last entry
    assert err.value.param == "items"
    assert f"at [{n}]" in err.value.why
    assert _Counted.calls <= 2 * n  # the old check made ~n^2/2 comparisons here
