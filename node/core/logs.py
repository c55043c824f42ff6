"""Structured logs: one JSON object per line (or plain text), on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class Throttle(logging.Filter):
    """Lets each message template of a logger through once per ``every_s``.

    py-libp2p's pubsub logs some warnings once per message: "pending message
    queue for peer ... exceeded limit" for every publish while a peer's stream
    has not opened, thousands a minute from one such peer (issue 13's mixed
    attack), each formatted and written out. The first of each kind is kept."""

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s = every_s
        self.suppressed = 0
        self._last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self.suppressed += 1
            return False
        if len(self._last) >= 1024:
            self._last.clear()
        self._last[key] = now
        return True


THROTTLED = ("libp2p.pubsub.gossipsub", "libp2p.pubsub.pubsub")


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # py-libp2p detaches its logger on import; keep its warnings, in our format
    lp = logging.getLogger("libp2p")
    lp.propagate = True
    lp.setLevel(logging.WARNING if level != "debug" else logging.INFO)
    if level != "debug":
        for name in THROTTLED:
            logger = logging.getLogger(name)
            logger.filters[:] = [f for f in logger.filters if not isinstance(f, Throttle)]
            logger.addFilter(Throttle())
