"""The node home: key, config, genesis, store and blocks in one directory.

    <home>/node.key      32-byte Ed25519 seed, mode 0600 (refused if group/other can read)
    <home>/config.toml   documented settings (see node.core.config)
    <home>/genesis.json  the network this node belongs to
    <home>/store.db      SQLite store (WAL)
    <home>/blocks/       IPFS block store
    <home>/rpc.token, rpc.url   written by a running daemon, removed on clean exit
    <home>/daemon.lock   held while a daemon runs
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from node.core.config import Config, init_config, load_config
from node.core.config_file import save_config
from node.errors import HomeError, KeyPermissionError
from node.store.db import open_store
from protocol.errors import ProtocolError
from protocol.genesis import Genesis, Validator, genesis_from_json
from protocol.keys import SigningKey

DEFAULT_HOME = Path("~/.annot")


def resolve_home(home: str | Path | None) -> Path:
    if home is None:
        home = os.environ.get("ANNOT_HOME") or DEFAULT_HOME
    return Path(home).expanduser()


@dataclass(frozen=True, slots=True)
class NodeHome:
    root: Path

    @property
    def key_path(self) -> Path:
        return self.root / "node.key"

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def genesis_path(self) -> Path:
        return self.root / "genesis.json"

    @property
    def store_path(self) -> Path:
        return self.root / "store.db"

    @property
    def blocks_path(self) -> Path:
        return self.root / "blocks"

    @property
    def lock_path(self) -> Path:
        return self.root / "daemon.lock"

    def load_key(self) -> SigningKey:
        return load_key(self.key_path)

    def load_config(self) -> Config:
        if not self.config_path.exists():
            raise HomeError(f"{self.config_path} not found — run `annot init --home {self.root}`")
        return load_config(self.config_path)

    def load_genesis(self) -> Genesis:
        try:
            return genesis_from_json(self.genesis_path.read_text())
        except OSError as exc:
            raise HomeError(f"cannot read {self.genesis_path}: {exc}") from None
        except ProtocolError as exc:
            raise HomeError(f"{self.genesis_path}: {exc}") from None


def write_key(path: Path, key: SigningKey) -> None:
    """Write a seed with mode 0600 from the first byte on (no window of wider mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.seed)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key(path: Path) -> SigningKey:
    try:
        st = path.stat()
    except OSError:
        raise HomeError(f"key file {path} not found — run `annot init` or `annot keygen`") from None
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise KeyPermissionError(path, mode)
    seed = path.read_bytes()
    if len(seed) != 32:
        raise HomeError(f"key file {path} must hold a 32-byte Ed25519 seed, has {len(seed)} bytes")
    return SigningKey(seed)


def new_key() -> SigningKey:
    return SigningKey(secrets.token_bytes(32))


def init_home(home: Path, genesis_path: Path | None = None, *, p2p_port: int = 4001,
              rpc_port: int = 4701, bootstrap: tuple[str, ...] = (),
              key: SigningKey | None = None, listen: tuple[str, ...] = (),
              gateway_port: int | None = None) -> str:
    """Create a node home; return the node's peer id.

    Without a genesis, the node gets a one-validator development network of
    its own (like ``cometbft init``), so a single node runs out of the box.
    ``listen`` (p2p multiaddrs) replaces the loopback listener on ``p2p_port``;
    the config is checked before anything is written."""
    config = init_config(p2p_port, rpc_port, bootstrap, gateway_port=gateway_port,
                         listen=listen)
    if home.exists() and (not home.is_dir() or any(home.iterdir())):
        raise HomeError(f"{home} already exists and is not empty; refusing to overwrite it")
    genesis: Genesis | None = None
    if genesis_path is not None:
        try:
            genesis = genesis_from_json(genesis_path.read_text())
        except OSError as exc:
            raise HomeError(f"cannot read genesis {genesis_path}: {exc}") from None
        except ProtocolError as exc:
            raise HomeError(f"genesis {genesis_path}: {exc}") from None
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    h = NodeHome(home)
    key = key or new_key()
    write_key(h.key_path, key)
    if genesis is None:
        genesis = Genesis(name=f"dev-{key.peer_id[-8:]}", validators=(Validator(key.peer_id, 1),))
        genesis.validate()
    h.genesis_path.write_text(genesis.to_json())
    save_config(h.config_path, config)
    h.blocks_path.mkdir(exist_ok=True)
    open_store(h.store_path).close()
    return key.peer_id


def read_peer_id(home: Path) -> str:
    return NodeHome(home).load_key().peer_id
