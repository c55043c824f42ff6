"""The gateway's small parts: its config checks, the bounded rate limiter and cache,
content sniffing and the PGM preview."""

from __future__ import annotations

import zlib

import pytest

from node.gateway.app import host_allowed
from node.gateway.config import GatewayConfig
from node.gateway.limits import RateLimiter, TTLCache
from node.gateway.media import NETPBM, OCTET, TEXT, netpbm_to_png, sniff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("change", "why"), [
    ({"port": 70000}, "gateway.port"), ({"host": " "}, "gateway.host"),
    ({"max_body_bytes": 10}, "gateway.max_body_bytes"), ({"rate_per_s": 0.0}, "rate_per_s"),
    ({"burst": 0}, "gateway.burst"), ({"max_clients": 0}, "gateway.max_clients"),
    ({"hostnames": ("evil.example:80",)}, "gateway.hostnames"),
    ({"enabled": "yes"}, "gateway.enabled"),
])
def test_config_names_the_bad_key(change: dict[str, object], why: str) -> None:
    GatewayConfig().validate()
    GatewayConfig.for_tests().validate()
    with pytest.raises(ValueError, match=why):
        GatewayConfig(**change).validate()  # type: ignore[arg-type]


def test_rate_limiter_refills_and_forgets_in_bounded_memory() -> None:
    clock = Clock()
    rl = RateLimiter(rate=10.0, burst=3, max_clients=100, clock=clock)
    assert [rl.allow("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.allow("a") == pytest.approx(0.1)
    assert rl.allow("b") == 0.0  # another client has its own bucket
    clock.now += 0.11
    assert rl.allow("a") == 0.0
    for i in range(1000):
        rl.allow(f"10.0.{i // 256}.{i % 256}")
    assert len(rl) == 100


def test_cache_expires_and_is_bounded() -> None:
    clock = Clock()
    cache = TTLCache(ttl=0.5, size=2, clock=clock)
    cache.put("a", b"1")
    assert cache.get("a") == b"1"
    clock.now += 0.6
    assert cache.get("a") is None
    for k in "xyz":
        cache.put(k, k.encode())
    assert cache.get("x") is None and cache.get("z") == b"z"


def test_host_guard() -> None:
    extra = frozenset({"annot.lan"})
    for ok in ("localhost", "localhost:4702", "127.0.0.1:1", "[::1]:4702", "10.1.2.3",
               "annot.lan", "ANNOT.LAN:80"):
        assert host_allowed(ok, extra), ok
    for bad in ("", "evil.example", "127.0.0.1.nip.io", "localhost.evil.example:80",
                "[::1", "annot.lan.evil"):
        assert not host_allowed(bad, extra), bad


def test_sniff_serves_only_inert_types() -> None:
    assert sniff(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "audio/wav"
    assert sniff(b"\x00\x00\x00\x18ftypmp42") == "video/mp4"
    assert sniff(b"P5\n8 8\n255\n") == NETPBM
    assert sniff("héllo wörld".encode()) == TEXT
    assert sniff(b"<html><script>alert(1)</script>") == TEXT  # never text/html
    assert sniff(b"\x00\x01\x02binary") == OCTET


def test_pgm_preview_is_a_png_of_the_same_pixels() -> None:
    pixels = bytes(range(12))
    png = netpbm_to_png(b"P5\n# comment\n4 3\n255\n" + pixels)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    idat = png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8]
    rows = zlib.decompress(idat)
    assert rows == b"".join(b"\x00" + pixels[4 * y:4 * y + 4] for y in range(3))
    with pytest.raises(ValueError, match="shorter"):
        netpbm_to_png(b"P5\n4 3\n255\n" + pixels[:5])
    with pytest.raises(ValueError, match="header"):
        netpbm_to_png(b"P5\nxx\n")
