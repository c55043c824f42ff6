"""Per-client limits for the gateway: a token bucket per IP in bounded memory, and
a small time-bounded cache of public JSON answers.

The limiter remembers at most ``max_clients`` addresses; past that the least
recently seen one is forgotten (it starts again with a full bucket, which is
the worst a client can gain by flooding the table with new addresses).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from time import monotonic


class RateLimiter:
    """Token buckets of ``burst`` tokens refilled at ``rate`` per second, per key."""

    def __init__(self, rate: float, burst: int, max_clients: int,
                 clock: Callable[[], float] = monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds until one is free."""
        now = self._clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class TTLCache:
    """Answers reused for ``ttl`` seconds; at most ``size`` entries (oldest dropped)."""

    def __init__(self, ttl: float, size: int = 512,
                 clock: Callable[[], float] = monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        hit = self._entries.get(key)
        if hit is None or self._clock() - hit[0] > self.ttl:
            return None
        return hit[1]

    def clear(self) -> None:
        self._entries.clear()

    def put(self, key: str, value: bytes) -> None:
        if self.ttl <= 0:
            return
        self._entries.pop(key, None)
        self._entries[key] = (self._clock(), value)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
