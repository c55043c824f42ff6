"""Node configuration: nested dataclasses read once from ``<home>/config.toml``.

Every section has defaults (a usable single node), ``for_tests()`` defaults
(ephemeral ports, short timers) and ``validate()``. Unknown keys are errors, so
a typo never silently falls back to a default. ``DEFAULT_TOML`` documents every key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from node.errors import ConfigError
from node.gateway.config import GatewayConfig
from node.rpc.config import RPCConfig


@dataclass(frozen=True, slots=True)
class P2PConfig:
    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/4001",)
    bootstrap: tuple[str, ...] = ()  # full multiaddrs ending in /p2p/<peer id>
    mdns: bool = False
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def validate(self) -> None:
        if not self.listen:
            raise ConfigError("p2p.listen: at least one multiaddr")
        for a in (*self.listen, *self.bootstrap):
            if not a.startswith("/"):
                raise ConfigError(f"p2p: {a!r} is not a multiaddr")
        for a in self.bootstrap:
            if "/p2p/" not in a:
                raise ConfigError(f"p2p.bootstrap: {a!r} must end in /p2p/<peer id>")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ConfigError("p2p: need 0 < reconnect_min_s <= reconnect_max_s")


@dataclass(frozen=True, slots=True)
class GossipConfig:
    heartbeat_s: float = 1.0
    batch_max_records: int = 256
    batch_max_bytes: int = 512 * 1024
    batch_delay_ms: int = 20
    invalid_threshold: int = 20  # invalid messages from one peer before it is disconnected

    def validate(self) -> None:
        if self.heartbeat_s <= 0 or self.batch_max_records <= 0 or self.batch_delay_ms < 0:
            raise ConfigError("gossip: heartbeat_s and batch_max_records must be positive")
        if not 1024 <= self.batch_max_bytes <= 1_000_000:
            raise ConfigError(
                "gossip.batch_max_bytes: 1024..1000000 (py-libp2p caps RPCs at 1 MiB)")


@dataclass(frozen=True, slots=True)
class SyncConfig:
    interval_s: float = 5.0
    batch_records: int = 512
    request_timeout_s: float = 20.0
    verify_threads: int = 0  # threads checking received signatures (sync, gossip); 0 = per core

    def validate(self) -> None:
        if self.interval_s <= 0 or self.batch_records <= 0 or self.request_timeout_s <= 0:
            raise ConfigError("sync: interval_s, batch_records, request_timeout_s must be > 0")
        if self.verify_threads < 0:
            raise ConfigError("sync.verify_threads: 0 (one per core) or more")


@dataclass(frozen=True, slots=True)
class IPFSConfig:
    api: str = ""  # Kubo RPC multiaddr, e.g. /ip4/127.0.0.1/tcp/5001; empty = no Kubo

    def validate(self) -> None:
        if self.api and not self.api.startswith("/"):
            raise ConfigError(f"ipfs.api: {self.api!r} is not a multiaddr")


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    vote_batch_delay_ms: int = 50
    tally_settle_s: float = 1.0

    def validate(self) -> None:
        if self.vote_batch_delay_ms < 0 or self.tally_settle_s < 0:
            raise ConfigError("consensus: delays must be >= 0")


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """Limits of admission control (all per node; see node/core/admission.py)."""

    pending_max: int = 10_000  # records waiting for their task
    pending_max_age_s: float = 600.0
    author_rate: float = 1_000.0  # records per second per author (token bucket)
    author_burst: int = 10_000
    peer_rate: float = 5_000.0  # records per second per sending peer
    peer_burst: int = 50_000
    seq_window: int = 100_000  # how far past an author's contiguous seq a record may be
    close_grace_s: int = 300  # annotations accepted this long after a task's close time
    max_vote_round: int = 1_000_000  # rounds take seconds: an honest vote never gets here
    tracked: int = 100_000  # token buckets kept (oldest dropped past this)

    def validate(self) -> None:
        if self.pending_max < 0 or self.pending_max_age_s < 0:
            raise ConfigError("admission: pending_max and pending_max_age_s must be >= 0")
        if self.author_rate <= 0 or self.peer_rate <= 0:
            raise ConfigError("admission: author_rate and peer_rate must be > 0")
        if self.author_burst < 1 or self.peer_burst < 1:
            raise ConfigError("admission: author_burst and peer_burst must be >= 1")
        if self.seq_window < 1 or self.max_vote_round < 1 or self.tracked < 1:
            raise ConfigError("admission: seq_window, max_vote_round, tracked must be >= 1")
        if self.close_grace_s < 0:
            raise ConfigError("admission: close_grace_s must be >= 0")


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    format: str = "json"  # json | text

    def validate(self) -> None:
        if self.level not in ("debug", "info", "warning", "error"):
            raise ConfigError("log.level: debug, info, warning or error")
        if self.format not in ("json", "text"):
            raise ConfigError("log.format: json or text")


@dataclass(frozen=True, slots=True)
class Config:
    p2p: P2PConfig = field(default_factory=P2PConfig)
    gossip: GossipConfig = field(default_factory=GossipConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    rpc: RPCConfig = field(default_factory=RPCConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    ipfs: IPFSConfig = field(default_factory=IPFSConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def validate(self) -> None:
        for f in fields(self):
            section = getattr(self, f.name)
            try:
                section.validate()
            except ValueError as exc:
                raise ConfigError(f"{f.name}: {exc}") from None

    @staticmethod
    def for_tests() -> Config:
        return Config(
            p2p=P2PConfig(listen=("/ip4/127.0.0.1/tcp/0",), reconnect_min_s=0.2,
                          reconnect_max_s=2.0),
            sync=SyncConfig(interval_s=1.0),
            rpc=replace(RPCConfig(), port=0),
            gateway=GatewayConfig.for_tests(),
            consensus=ConsensusConfig(vote_batch_delay_ms=20, tally_settle_s=0.5),
            log=LogConfig(level="info", format="text"),
        )


def _section(cls: type[Any], name: str, raw: object) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for k, v in raw.items():
        if k not in known:
            raise ConfigError(f"[{name}] unknown key {k!r} (known: {', '.join(sorted(known))})")
        default = getattr(cls(), k)
        if isinstance(default, tuple):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ConfigError(f"[{name}] {k}: expected a list of strings")
            v = tuple(v)
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f"[{name}] {k}: expected true or false")
        elif isinstance(default, float):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ConfigError(f"[{name}] {k}: expected a finite number")
            v = float(v)
        elif type(v) is not type(default):
            raise ConfigError(f"[{name}] {k}: expected {type(default).__name__}, got {v!r}")
        kwargs[k] = v
    return cls(**kwargs)


def config_from_toml(text: str) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config.toml is not valid TOML: {exc}") from None
    sections = {f.name: f.type for f in fields(Config)}
    kwargs = {}
    for name, value in raw.items():
        if name not in sections:
            raise ConfigError(f"unknown config section [{name}]")
        cls = type(getattr(Config(), name))
        kwargs[name] = _section(cls, name, value)
    cfg = Config(**kwargs)
    cfg.validate()
    return cfg


def load_config(path: Path) -> Config:
    try:
        return config_from_toml(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def init_config(p2p_port: int = 4001, rpc_port: int = 4701, bootstrap: tuple[str, ...] = (),
                host: str = "127.0.0.1", gateway_port: int | None = None,
                listen: tuple[str, ...] = ()) -> Config:
    """The config ``annot init`` writes: the defaults with these listeners and peers
    (``listen`` replaces the one built from ``host`` and ``p2p_port``)."""
    if gateway_port is None:
        gateway_port = rpc_port + 1 if rpc_port else 0
    base = Config()
    cfg = replace(
        base,
        p2p=replace(base.p2p, listen=listen or (f"/ip4/{host}/tcp/{p2p_port}",),
                    bootstrap=tuple(bootstrap)),
        rpc=replace(base.rpc, port=rpc_port),
        gateway=replace(base.gateway, port=gateway_port))
    cfg.validate()
    return cfg


DEFAULT_TOML = """\
# annot node configuration. Every key is optional; shown values are the defaults.

[p2p]
# libp2p listen multiaddrs (TCP; Noise + Yamux only)
listen = ["/ip4/{host}/tcp/{p2p_port}"]
# peers dialed at start and redialed with backoff: /ip4/…/tcp/…/p2p/12D3KooW…
bootstrap = [{bootstrap}]
# find peers on the LAN with mDNS (binds every interface)
mdns = false
reconnect_min_s = 0.5
reconnect_max_s = 30.0

[gossip]
heartbeat_s = 1.0
# records per gossip message, bytes per message, and how long a batch may wait
batch_max_records = 256
batch_max_bytes = 524288
batch_delay_ms = 20
# invalid gossip messages from one peer before it is disconnected
invalid_threshold = 20

[sync]
# vector-clock sync with each peer: on connect and every interval_s
interval_s = 5.0
batch_records = 512
request_timeout_s = 20.0
# threads that check the signatures of received sync frames and gossip messages
# (PyNaCl runs them in parallel); 0 = one per core
verify_threads = 0

[rpc]
# JSON-RPC 2.0 on http://host:port/rpc with the bearer token in <home>/rpc.token
host = "127.0.0.1"
port = {rpc_port}
# listening beyond loopback sends the token in clear: opt in explicitly
allow_remote = false
# larger request bodies get HTTP 413; the default fits a 1 MiB block in base64
max_request_bytes = 2097152

[gateway]
# the public web app and read-only JSON on http://host:port/ (no token; nothing admin)
enabled = true
host = "127.0.0.1"
port = {gateway_port}
# extra Host names browsers may use; loopback and IP addresses always work (DNS rebinding guard)
hostnames = []
# POST bodies over this get HTTP 413 (one signed record)
max_body_bytes = 262144
# requests per second per client IP, the burst allowed, and how many IPs are remembered
rate_per_s = 50.0
burst = 200
max_clients = 4096
# how long a public JSON answer is reused
cache_ms = 500

[ipfs]
# Kubo RPC API multiaddr to push, pin and fetch blocks, e.g. "/ip4/127.0.0.1/tcp/5001"
api = ""

[consensus]
# how long votes wait to be batched into one signed record
vote_batch_delay_ms = 50
# wait after the last item of a task is final before voting its tally
tally_settle_s = 1.0

[admission]
# records that name a task not seen yet wait for it in a pool: at most this many,
# for at most this long (then dropped; nobody is charged)
pending_max = 10000
pending_max_age_s = 600.0
# token buckets: records per second (and burst) per author and per sending peer;
# past them a record is dropped for now ("later"), not charged
author_rate = 1000.0
author_burst = 10000
peer_rate = 5000.0
peer_burst = 50000
# how far past an author's contiguous seq a record may be (sync brings them in order)
seq_window = 100000
# annotations accepted this long after their task's close time
close_grace_s = 300
# votes at a higher round are never valid (rounds take seconds)
max_vote_round = 1000000
# authors and peers whose buckets are remembered (least recently seen dropped)
tracked = 100000

[log]
level = "info"      # debug | info | warning | error
format = "json"     # json | text
"""
