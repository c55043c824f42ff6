"""The genesis: network name, validator set and protocol parameters.

The network id is the sha2-256 of the genesis's canonical msgpack encoding, so
two nodes share a network exactly when they hold byte-identical genesis data.
People read and write the genesis as JSON; the id never depends on JSON layout.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from protocol import keys
from protocol.encoding import Limits, encode_canonical
from protocol.errors import GenesisError, ProtocolError
from protocol.records import MAX_DIR_ITEMS


@dataclass(frozen=True, slots=True)
class Params:
    """Protocol parameters every node of a network must share."""

    max_record_bytes: int = 262_144
    max_batch_records: int = 512  # records per gossip message / sync frame
    max_items_per_task: int = 4_096
    max_vote_entries: int = 256  # entries per vote record: bounds certificate size
    quorum_num: int = 2  # finality needs MORE than quorum_num/quorum_den of weight
    quorum_den: int = 3
    round_timeout_ms: int = 2_000  # a round's timeout; grows by delta each round
    round_timeout_delta_ms: int = 1_000
    # files of a task given as a UnixFS directory (its item_count); at most
    # records.MAX_DIR_ITEMS. Left out of the genesis map at its default, so networks
    # made before it existed keep their id.
    max_dir_items: int = 1_000_000

    def validate(self) -> None:
        for f in fields(self):  # types first: the arithmetic below assumes ints
            v = getattr(self, f.name)
            if type(v) is not int or v <= 0:
                raise GenesisError(f"params.{f.name}: expected a positive integer, got {v!r}")
        if not 0 < self.quorum_num < self.quorum_den:
            raise GenesisError("quorum must be a fraction strictly between 0 and 1")
        if 3 * self.quorum_num < 2 * self.quorum_den:
            raise GenesisError("quorum below 2/3 is not Byzantine fault tolerant")
        if self.max_record_bytes < 1024:
            raise GenesisError("params.max_record_bytes: at least 1024")
        if self.max_dir_items > MAX_DIR_ITEMS:
            raise GenesisError(f"params.max_dir_items: at most {MAX_DIR_ITEMS:,}")

    def limits(self) -> Limits:
        n = max(self.max_items_per_task, self.max_vote_entries, self.max_batch_records)
        return Limits(max_bytes=self.max_record_bytes, max_array=n,
                      max_str=self.max_record_bytes, max_bin=self.max_record_bytes,
                      max_vote_entries=self.max_vote_entries)


@dataclass(frozen=True, slots=True)
class Validator:
    peer_id: str
    weight: int

    @property
    def public_key(self) -> bytes:
        return keys.public_key_from_peer_id(self.peer_id)


@dataclass(frozen=True, slots=True)
class Genesis:
    name: str
    validators: tuple[Validator, ...]
    params: Params = field(default_factory=Params)
    genesis_time: int = 0  # unix seconds; informational, part of the id

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name or len(self.name) > 128:
            raise GenesisError("name: a string of 1..128 characters")
        if not self.validators:
            raise GenesisError("validators: at least one validator")
        seen = set()
        for v in self.validators:
            try:
                _ = v.public_key
            except ProtocolError as exc:
                raise GenesisError(f"validator {v.peer_id!r}: {exc}") from None
            if type(v.weight) is not int or not 0 < v.weight <= 10**12:
                raise GenesisError(f"validator {v.peer_id}: weight must be 1..10^12")
            if v.peer_id in seen:
                raise GenesisError(f"validator {v.peer_id} listed twice")
            seen.add(v.peer_id)
        self.params.validate()

    def to_map(self) -> dict[str, Any]:
        return {
            "genesis_time": self.genesis_time,
            "name": self.name,
            "params": _params_map(self.params),
            "validators": [{"peer_id": v.peer_id, "weight": v.weight} for v in self.validators],
        }

    @property
    def network_id(self) -> bytes:
        return hashlib.sha256(b"annot/v1/genesis\x00" + encode_canonical(self.to_map())).digest()

    @property
    def total_weight(self) -> int:
        return sum(v.weight for v in self.validators)

    def weights(self) -> dict[bytes, int]:
        """Validator public key → weight."""
        return {v.public_key: v.weight for v in self.validators}

    def quorum(self, weight: int) -> bool:
        """True when ``weight`` is more than the quorum fraction of the total."""
        return weight * self.params.quorum_den > self.total_weight * self.params.quorum_num

    def topic(self) -> str:
        return f"/annot/{self.network_id.hex()}/records/1"

    def to_json(self) -> str:
        return json.dumps(self.to_map(), indent=2, sort_keys=True) + "\n"


_OPTIONAL_PARAMS = ("max_dir_items",)  # added later: absent from the map at their default
_DEFAULT_PARAMS = Params()


def _params_map(p: Params) -> dict[str, Any]:
    m = asdict(p)
    for name in _OPTIONAL_PARAMS:
        if m[name] == getattr(_DEFAULT_PARAMS, name):
            del m[name]
    return m


def genesis_from_map(m: object) -> Genesis:
    if not isinstance(m, dict):
        raise GenesisError("genesis must be a JSON object")
    known = {"genesis_time", "name", "params", "validators"}
    extra = set(m) - known
    if extra:
        raise GenesisError(f"unknown genesis fields: {', '.join(sorted(extra))}")
    p = m.get("params", {})
    if not isinstance(p, dict):
        raise GenesisError("params must be an object")
    names = {f.name for f in fields(Params)}
    bad = set(p) - names
    if bad:
        raise GenesisError(f"unknown params: {', '.join(sorted(bad))}")
    vals = m.get("validators")
    if not isinstance(vals, list):
        raise GenesisError("validators must be a list of {peer_id, weight}")
    if any(isinstance(v, dict) and set(v) - {"peer_id", "weight"} for v in vals):
        raise GenesisError("unknown validator fields: each validator is {peer_id, weight}")
    try:
        validators = tuple(Validator(str(v["peer_id"]), v.get("weight", 1)) for v in vals)
    except (KeyError, TypeError, AttributeError):
        raise GenesisError(
            "each validator is {\"peer_id\": \"12D3KooW…\", \"weight\": N}") from None
    g = Genesis(
        name=m.get("name", ""),
        validators=validators,
        params=Params(**p),
        genesis_time=m.get("genesis_time", 0),
    )
    if type(g.genesis_time) is not int:
        raise GenesisError("genesis_time must be an integer")
    g.validate()
    return g


def genesis_from_json(text: str) -> Genesis:
    try:
        m = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenesisError(f"genesis is not valid JSON: {exc}") from None
    return genesis_from_map(m)
