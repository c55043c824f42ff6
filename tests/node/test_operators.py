"""Operator commands as real processes: ``annot init`` flags, ``annot config
show|get|set``, and ``annot run`` refusing ports that are taken (one line per
listener, a non-zero exit, no traceback, and never a shared p2p port)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tomllib
from pathlib import Path

import pytest
from harness import ANNOT, ROOT, Cluster, free_ports

from node.core.config import load_config
from node.core.config_file import set_value
from node.errors import ConfigError


def annot(*args: str | Path, ok: bool = True, timeout: float = 60
          ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANNOT_HOME", "ANNOT_DEBUG")}
    out = subprocess.run([*ANNOT, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, env=env)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def error_lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    return out.stderr.strip().splitlines()


PEER = "/ip4/10.0.0.7/tcp/4001/p2p/12D3KooWBWSAv3T6omPvv8Ed2xQJzuX9ThaqWaYzrDeHZ55e4PGK"


def test_init_flags_and_config_get_set(tmp_path: Path) -> None:
    home = tmp_path / "n"
    annot("init", "--home", home, "--listen", "/ip4/0.0.0.0/tcp/5001", "--rpc-port", "5002",
          "--gateway-port", "5003", "--bootstrap", PEER)
    cfg = load_config(home / "config.toml")
    assert cfg.p2p.listen == ("/ip4/0.0.0.0/tcp/5001",) and cfg.p2p.bootstrap == (PEER,)
    assert (cfg.rpc.port, cfg.gateway.port) == (5002, 5003)
    assert annot("config", "get", "--home", home, "rpc.port").stdout == "5002\n"
    assert annot("config", "get", "--home", home, "log.format").stdout == "json\n"

    annot("config", "set", "--home", home, "sync.interval_s", "2")
    annot("config", "set", "--home", home, "p2p.bootstrap", PEER, PEER.replace("10.0.0.7", "h"))
    annot("config", "set", "--home", home, "log.format", "text")
    text = (home / "config.toml").read_text()
    assert "# vector-clock sync with each peer" in text  # the comments stay
    raw = tomllib.loads(text)
    assert raw["sync"]["interval_s"] == 2.0 and raw["log"]["format"] == "text"
    assert len(raw["p2p"]["bootstrap"]) == 2
    shown = annot("config", "show", "--home", home).stdout
    assert tomllib.loads(shown)["rpc"]["port"] == 5002

    lines = error_lines(annot("config", "set", "--home", home, "rpc.nope", "1", ok=False))
    assert len(lines) == 1 and "unknown key 'rpc.nope' (known in [rpc]:" in lines[0], lines
    cfg = load_config(home / "config.toml")
    for args, needle in [  # the same checks in-process (each CLI run costs an interpreter)
        (("rpc.port", "many"), "rpc.port: expected int, got 'many'"),
        (("log.format", "xml"), "log.format: json or text"),
        (("p2p.bootstrap", "/ip4/1.2.3.4/tcp/1"), "must end in /p2p/<peer id>"),
        (("rpc.port", "1", "2"), "rpc.port takes one value, got 2"),
        (("nosection.x", "1"), "use SECTION.KEY"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(needle)):
            set_value(cfg, args[0], args[1:])
    assert load_config(home / "config.toml").rpc.port == 5002  # a refused set writes nothing


def test_init_refuses_a_bad_listen_before_writing(tmp_path: Path) -> None:
    home = tmp_path / "bad"
    lines = error_lines(annot("init", "--home", home, "--listen", "tcp/4001", ok=False))
    assert len(lines) == 1 and "is not a multiaddr" in lines[0]
    assert not home.exists()


@pytest.fixture
def running(tmp_path: Path) -> Cluster:
    c = Cluster(tmp_path / "c", n=1)
    try:
        c.start()
    except BaseException:
        c.close()
        raise
    return c


def test_run_refuses_taken_ports_one_line_each(running: Cluster, tmp_path: Path) -> None:
    try:
        first = load_config(running.home(0) / "config.toml")
        p2p_port = int(first.p2p.listen[0].rsplit("/", 1)[1])
        (gateway_port,) = free_ports(1)
        second = tmp_path / "second"
        annot("init", "--home", second, "--listen", f"/ip4/127.0.0.1/tcp/{p2p_port}",
              "--rpc-port", str(first.rpc.port), "--gateway-port", str(gateway_port))
        out = annot("run", "--home", second, ok=False, timeout=60)
        lines = error_lines(out)
        assert out.returncode == 1
        assert lines == [
            f"Error: p2p listen /ip4/127.0.0.1/tcp/{p2p_port}: port {p2p_port} is already in "
            "use; stop the other process or change [p2p] listen in config.toml",
            f"Error: rpc 127.0.0.1:{first.rpc.port}: port {first.rpc.port} is already in use; "
            "stop the other process or change [rpc] port in config.toml",
        ]
        assert running.procs[0].poll() is None  # the first node is untouched
        assert running.status(0)["peer_count"] == 0
    finally:
        running.close()


def test_libp2p_listeners_no_longer_share_ports() -> None:
    """py-libp2p sets SO_REUSEPORT; after no_reuseport() its listeners are plain, so a
    second bind of the same port fails in the kernel."""
    from libp2p.transport.tcp import tcp

    from node.core.ports import no_reuseport

    no_reuseport()
    a = socket.socket()
    b = socket.socket()
    try:
        tcp._set_reuse_flags(a)
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        a.bind(("127.0.0.1", 0))
        a.listen(1)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # what the old code did
        with pytest.raises(OSError, match="Address already in use"):
            b.bind(a.getsockname())
    finally:
        a.close()
        b.close()
