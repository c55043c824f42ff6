"""py-libp2p's per-message warnings reach the log once per kind per interval."""

from __future__ import annotations

import logging

import pytest

from node.core import logs


def test_a_repeated_warning_is_kept_once_per_interval(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    saved = logging.getLogger().handlers[:], logging.getLogger().level
    try:
        logs.setup_logging("info", "text")
        logs.setup_logging("info", "text")  # again: still one throttle per logger
        gs = logging.getLogger("libp2p.pubsub.gossipsub")
        assert sum(isinstance(f, logs.Throttle) for f in gs.filters) == 1
        now = [1000.0]
        monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
        for k in range(500):  # what py-libp2p logs per publish to a peer without a stream
            gs.warning("pending message queue for peer %s exceeded limit (%d > %d)", "P", k, 100)
        gs.warning("another kind of warning %s", "x")
        now[0] += 11.0
        gs.warning("pending message queue for peer %s exceeded limit (%d > %d)", "P", 9, 100)
        logging.getLogger("annot.p2p").warning("ours are never throttled %d", 1)
        logging.getLogger("annot.p2p").warning("ours are never throttled %d", 2)
        err = capsys.readouterr().err.splitlines()
        assert [line.split(": ", 1)[1] for line in err] == [
            "pending message queue for peer P exceeded limit (0 > 100)",
            "another kind of warning x",
            "pending message queue for peer P exceeded limit (9 > 100)",
            "ours are never throttled 1", "ours are never throttled 2"]
        assert next(f for f in gs.filters if isinstance(f, logs.Throttle)).suppressed == 499
    finally:
        root = logging.getLogger()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in logs.THROTTLED:
            logging.getLogger(name).filters.clear()
