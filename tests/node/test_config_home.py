"""Config TOML (defaults, validation, unknown keys) and the node home (init, key modes)."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from node.core.config import Config, config_from_toml, load_config
from node.core.config_file import render_config
from node.core.home import NodeHome, init_home, load_key, read_peer_id, resolve_home, write_key
from node.errors import ConfigError, HomeError, KeyPermissionError
from node.store.db import open_store
from protocol.genesis import Genesis, Validator, genesis_from_json
from protocol.keys import SigningKey

# ------------------------------------------------------------------ config


def test_default_toml_parses_to_the_defaults() -> None:
    cfg = config_from_toml(render_config())
    assert cfg == Config()
    cfg.validate()


def test_rendered_ports_and_bootstrap() -> None:
    peer = SigningKey(bytes(32)).peer_id
    boot = (f"/ip4/10.0.0.2/tcp/4001/p2p/{peer}",)
    cfg = config_from_toml(render_config(p2p_port=5001, rpc_port=0, bootstrap=boot))
    assert cfg.p2p.listen == ("/ip4/127.0.0.1/tcp/5001",)
    assert cfg.rpc.port == 0 and cfg.p2p.bootstrap == boot


def test_every_key_is_documented_in_the_default_toml() -> None:
    raw = tomllib.loads(render_config())
    for section in fields(Config):
        assert section.name in raw, f"[{section.name}] missing from DEFAULT_TOML"
        cls = type(getattr(Config(), section.name))
        assert set(raw[section.name]) == {f.name for f in fields(cls)}, section.name


def test_empty_config_is_all_defaults() -> None:
    assert config_from_toml("") == Config()


def test_test_defaults_validate() -> None:
    cfg = Config.for_tests()
    cfg.validate()
    assert cfg.rpc.port == 0 and cfg.p2p.listen == ("/ip4/127.0.0.1/tcp/0",)


def test_partial_section_keeps_other_defaults() -> None:
    cfg = config_from_toml("[sync]\ninterval_s = 2\n")
    assert cfg.sync.interval_s == 2.0 and isinstance(cfg.sync.interval_s, float)
    assert cfg.sync.batch_records == Config().sync.batch_records
    assert cfg.p2p == Config().p2p


@pytest.mark.parametrize(("text", "needle"), [
    ('[p2p]\nlisen = ["/ip4/127.0.0.1/tcp/1"]', "unknown key 'lisen'"),
    ("[gossip]\nheartbeat = 1.0", "unknown key 'heartbeat'"),
    ("[rpc]\ntoken = 'x'", "unknown key 'token'"),
    ("[storage]\npath = 'x'", "unknown config section [storage]"),
    ("verbose = true", "unknown config section [verbose]"),
    ("p2p = 1", "[p2p] must be a table"),
], ids=["p2p-typo", "gossip-typo", "rpc-unknown", "section", "top-level-key", "not-table"])
def test_unknown_keys_and_sections_are_named(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_toml(text)
    assert needle in str(info.value)


def test_unknown_key_error_lists_the_known_keys() -> None:
    with pytest.raises(ConfigError, match="known: bootstrap, listen, mdns"):
        config_from_toml("[p2p]\nlisen = []")


@pytest.mark.parametrize("text", [
    '[p2p]\nlisten = "/ip4/127.0.0.1/tcp/1"',
    "[p2p]\nlisten = []",
    "[p2p]\nlisten = [1]",
    '[p2p]\nlisten = ["127.0.0.1:4001"]',
    '[p2p]\nbootstrap = ["/ip4/1.2.3.4/tcp/1"]',
    "[p2p]\nmdns = 1",
    "[p2p]\nreconnect_min_s = 5\nreconnect_max_s = 1",
    "[p2p]\nreconnect_min_s = 0",
    '[rpc]\nport = "4701"',
    "[rpc]\nport = true",
    "[rpc]\nport = 70000",
    '[rpc]\nhost = "0.0.0.0"',
    "[rpc]\nmax_request_bytes = 10",
    "[gossip]\nbatch_max_records = 1.5",
    "[gossip]\nbatch_max_bytes = 2000000",
    "[gossip]\nheartbeat_s = 0",
    "[gossip]\nheartbeat_s = nan",
    "[sync]\ninterval_s = inf",
    "[sync]\nrequest_timeout_s = -1",
    "[consensus]\ntally_settle_s = nan",
    '[consensus]\nvote_batch_delay_ms = "50"',
    '[log]\nlevel = "trace"',
    '[log]\nformat = "xml"',
    '[ipfs]\napi = "http://127.0.0.1:5001"',
    "this is not toml",
])
def test_invalid_values_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        config_from_toml(text)


def test_remote_rpc_needs_explicit_opt_in() -> None:
    cfg = config_from_toml('[rpc]\nhost = "0.0.0.0"\nallow_remote = true')
    assert cfg.rpc.host == "0.0.0.0"


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


# ------------------------------------------------------------------ home


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_init_home_creates_everything(tmp_path: Path) -> None:
    home = tmp_path / "node"
    peer = init_home(home, p2p_port=0, rpc_port=0)
    h = NodeHome(home)
    assert peer.startswith("12D3KooW") and read_peer_id(home) == peer
    assert _mode(h.key_path) == 0o600 and h.key_path.stat().st_size == 32
    assert _mode(home) == 0o700
    assert h.load_key().peer_id == peer
    cfg = h.load_config()
    assert cfg.rpc.port == 0 and cfg.p2p.listen == ("/ip4/127.0.0.1/tcp/0",)
    assert h.blocks_path.is_dir()
    s = open_store(h.store_path)
    try:
        assert s.count() == 0 and s.integrity_check() == []
    finally:
        s.close()


def test_dev_genesis_has_this_node_as_the_only_validator(tmp_path: Path) -> None:
    peer = init_home(tmp_path / "node")
    g = NodeHome(tmp_path / "node").load_genesis()
    assert g.validators == (Validator(peer, 1),)
    assert g.quorum(1)
    g.validate()


def test_init_with_a_given_key(tmp_path: Path) -> None:
    key = SigningKey(bytes(range(32)))
    assert init_home(tmp_path / "node", key=key) == key.peer_id
    assert (tmp_path / "node" / "node.key").read_bytes() == key.seed


def test_two_dev_homes_are_different_networks(tmp_path: Path) -> None:
    init_home(tmp_path / "a")
    init_home(tmp_path / "b")
    ga, gb = NodeHome(tmp_path / "a").load_genesis(), NodeHome(tmp_path / "b").load_genesis()
    assert ga.network_id != gb.network_id


def test_init_with_a_genesis_file(tmp_path: Path) -> None:
    keys = [SigningKey(bytes([i]) * 32) for i in range(1, 5)]
    g = Genesis(name="shared", validators=tuple(Validator(k.peer_id, 1) for k in keys),
                genesis_time=1_700_000_000)
    src = tmp_path / "genesis.json"
    src.write_text(g.to_json())
    peers = [init_home(tmp_path / f"n{i}", src, key=k) for i, k in enumerate(keys)]
    assert peers == [k.peer_id for k in keys]
    for i in range(4):
        loaded = NodeHome(tmp_path / f"n{i}").load_genesis()
        assert loaded == g and loaded.network_id == g.network_id


def test_init_with_a_genesis_that_excludes_this_node(tmp_path: Path) -> None:
    g = Genesis(name="other", validators=(Validator(SigningKey(bytes(32)).peer_id, 1),))
    src = tmp_path / "genesis.json"
    src.write_text(g.to_json())
    init_home(tmp_path / "node", src, key=SigningKey(b"\x09" * 32))  # an observer node
    assert NodeHome(tmp_path / "node").load_genesis() == g


@pytest.mark.parametrize("content", ["{", "[]", json.dumps({"name": "x", "validators": []})])
def test_init_with_a_bad_genesis_writes_nothing(tmp_path: Path, content: str) -> None:
    src = tmp_path / "genesis.json"
    src.write_text(content)
    with pytest.raises(HomeError, match="genesis"):
        init_home(tmp_path / "node", src)
    assert not (tmp_path / "node").exists()


def test_init_with_a_missing_genesis_file(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match="cannot read genesis"):
        init_home(tmp_path / "node", tmp_path / "missing.json")
    assert not (tmp_path / "node").exists()


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    home = tmp_path / "node"
    peer = init_home(home)
    seed = (home / "node.key").read_bytes()
    with pytest.raises(HomeError, match="refusing to overwrite"):
        init_home(home)
    with pytest.raises(HomeError):
        init_home(home, key=SigningKey(bytes(32)))
    assert (home / "node.key").read_bytes() == seed and read_peer_id(home) == peer


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "notes.txt").write_text("mine")
    with pytest.raises(HomeError):
        init_home(tmp_path / "node")
    assert (tmp_path / "node" / "notes.txt").read_text() == "mine"


def test_init_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "node").write_text("a file")
    with pytest.raises(HomeError):
        init_home(tmp_path / "node")


def test_init_accepts_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "node").mkdir()
    assert init_home(tmp_path / "node").startswith("12D3KooW")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o700 | 0o004])
def test_key_readable_by_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    home = tmp_path / "node"
    init_home(home)
    key = home / "node.key"
    key.chmod(mode)
    with pytest.raises(KeyPermissionError) as info:
        NodeHome(home).load_key()
    assert f"chmod 600 {key}" in str(info.value)
    assert info.value.mode == mode and info.value.path == key
    key.chmod(0o600)
    NodeHome(home).load_key()


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_key_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    write_key(path, SigningKey(bytes(32)))
    path.chmod(mode)
    assert load_key(path).seed == bytes(32)


def test_write_key_creates_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_key(tmp_path / "k", SigningKey(bytes(32)))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "k") == 0o600


def test_write_key_never_overwrites(tmp_path: Path) -> None:
    write_key(tmp_path / "k", SigningKey(bytes(32)))
    with pytest.raises(FileExistsError):
        write_key(tmp_path / "k", SigningKey(b"\x01" * 32))
    assert load_key(tmp_path / "k").seed == bytes(32)


def test_missing_or_short_key(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match="not found"):
        load_key(tmp_path / "none")
    (tmp_path / "short").write_bytes(b"x" * 31)
    (tmp_path / "short").chmod(0o600)
    with pytest.raises(HomeError, match="32-byte"):
        load_key(tmp_path / "short")


def test_missing_config_and_genesis_in_home(tmp_path: Path) -> None:
    h = NodeHome(tmp_path)
    with pytest.raises(HomeError, match="annot init"):
        h.load_config()
    with pytest.raises(HomeError):
        h.load_genesis()
    (tmp_path / "genesis.json").write_text("{}")
    with pytest.raises(HomeError, match=r"genesis\.json"):
        h.load_genesis()


def test_resolve_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANNOT_HOME", str(tmp_path / "h"))
    assert resolve_home(None) == tmp_path / "h"
    assert resolve_home(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("ANNOT_HOME")
    assert resolve_home(None) == Path("~/.annot").expanduser()


def test_genesis_written_by_init_is_canonical_json(tmp_path: Path) -> None:
    init_home(tmp_path / "node")
    text = (tmp_path / "node" / "genesis.json").read_text()
    assert genesis_from_json(text).to_json() == text
