"""The ``[gateway]`` config section: the public, token-less HTTP listener.

    [gateway]
    enabled = true              # serve the web app and the public JSON API
    host = "127.0.0.1"          # interface; a LAN address is safe (nothing admin is served)
    port = 4702                 # TCP port; 0 picks a free one (tests)
    hostnames = []              # extra Host names browsers may use (DNS rebinding guard)
    max_body_bytes = 262144     # POST bodies over this get HTTP 413 (one record)
    rate_per_s = 50.0           # requests per second per client IP (token bucket)
    burst = 200                 # bucket size
    max_clients = 4096          # client IPs the rate limiter remembers (bounded memory)
    cache_ms = 500              # how long a public JSON answer is reused

Requests whose ``Host`` is not loopback, the listen address or one of
``hostnames`` are refused, so a web page on another origin cannot rebind a
DNS name to this gateway and read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

URL_FILE = "gateway.url"  # in the node home, written by a running daemon
MIN_BODY_BYTES = 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


def read_gateway_url(home: Path) -> str | None:
    """The URL a running daemon's gateway listens on (from ``<home>/gateway.url``)."""
    try:
        return (home / URL_FILE).read_text().strip() or None
    except OSError:
        return None


def _int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"gateway.{name}: expected an integer {lo}..{hi}, got {value!r}")


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Where the gateway listens and how much it serves to one client."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4702
    hostnames: tuple[str, ...] = ()
    max_body_bytes: int = 262_144
    rate_per_s: float = 50.0
    burst: int = 200
    max_clients: int = 4096
    cache_ms: int = 500

    @classmethod
    def for_tests(cls) -> GatewayConfig:
        """Test defaults: loopback, a free port picked by the OS."""
        return cls(port=0)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad key and what it must be."""
        if not isinstance(self.enabled, bool):
            raise ValueError(f"gateway.enabled: expected true or false, got {self.enabled!r}")
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError("gateway.host: expected a host name or IP address, got an empty value")
        _int("port", self.port, 0, 65535)
        for h in self.hostnames:
            if not isinstance(h, str) or not h or any(c in h for c in "/:@ "):
                raise ValueError(f"gateway.hostnames: {h!r} is not a bare host name")
        _int("max_body_bytes", self.max_body_bytes, MIN_BODY_BYTES, MAX_BODY_BYTES)
        if not isinstance(self.rate_per_s, (int, float)) or not 0 < self.rate_per_s <= 1e6:
            raise ValueError(f"gateway.rate_per_s: expected a number in (0, 1e6], "
                             f"got {self.rate_per_s!r}")
        _int("burst", self.burst, 1, 1_000_000)
        _int("max_clients", self.max_clients, 1, 1_000_000)
        _int("cache_ms", self.cache_ms, 0, 60_000)
