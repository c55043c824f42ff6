"""The systemd unit's first-start initialisation, run as written (paths moved to a temp
folder): ExecStartPre initialises an empty state directory once, joins the network in
/etc/annot/genesis.json when there is one, and leaves an initialised home alone.
``make lint`` checks the whole unit with ``systemd-analyze verify``."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from harness import ROOT

from node.core.config import load_config
from protocol.genesis import Genesis, Validator, genesis_from_json
from protocol.keys import SigningKey

UNIT = ROOT / "deploy" / "systemd" / "annot.service"


def exec_start_pre(state: Path, etc: Path) -> list[str]:
    lines = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStartPre=")]
    assert len(lines) == 1
    cmd = (lines[0].removeprefix("ExecStartPre=")
           .replace("/usr/local/bin/annot", str(ROOT / ".venv" / "bin" / "annot"))
           .replace("/var/lib/annot", str(state)).replace("/etc/annot", str(etc)))
    return shlex.split(cmd)


def run_pre(state: Path, etc: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(exec_start_pre(state, etc), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out


def test_first_start_initialises_once(tmp_path: Path) -> None:
    state, etc = tmp_path / "state", tmp_path / "etc"
    state.mkdir(mode=0o700)  # systemd's StateDirectory, empty on the first start
    first = run_pre(state, etc)
    assert "initialized" in first.stdout
    key = (state / "node.key").read_bytes()
    cfg = load_config(state / "config.toml")
    assert cfg.p2p.listen == ("/ip4/0.0.0.0/tcp/4001",) and cfg.rpc.host == "127.0.0.1"
    again = run_pre(state, etc)
    assert again.stdout == "" and (state / "node.key").read_bytes() == key


def test_first_start_joins_the_network_in_etc(tmp_path: Path) -> None:
    state, etc = tmp_path / "state", tmp_path / "etc"
    state.mkdir()
    etc.mkdir()
    genesis = Genesis(name="prod", validators=(Validator(SigningKey(b"\x71" * 32).peer_id, 1),))
    (etc / "genesis.json").write_text(genesis.to_json())
    run_pre(state, etc)
    assert genesis_from_json((state / "genesis.json").read_text()) == genesis
