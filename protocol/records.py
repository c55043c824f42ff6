"""Signed records: the kinds, their wire form, sign-bytes and ids.

Wire form (canonical msgpack map, keys sorted)::

    {"a": author public key (32 B), "b": body map, "k": kind, "n": network tag (8 B),
     "s": seq (1, 2, 3 …), "x": Ed25519 signature (64 B)}

The signature covers ``sign_bytes``: a version/kind domain tag, the full 32-byte
network id, and the canonical encoding of ``[kind, author, seq, body]``. The
network tag (first 8 bytes of the id) is carried only so a decoder can say
"wrong network" rather than "bad signature". A record's id is the CIDv1 (raw,
sha2-256) of its exact bytes, so every record is also an IPFS block.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import msgpack

from protocol import cid as cidlib
from protocol import keys
from protocol.encoding import (
    DEFAULT_LIMITS,
    Limits,
    check_canonical,
    decode_canonical,
    encode_canonical,
    unpack_limited,
)
from protocol.errors import (
    DecodeError,
    FieldTypeError,
    MissingFieldError,
    UnknownFieldError,
    UnknownKindError,
    VoteTooLargeError,
    WrongNetworkError,
)

VERSION_TAG = b"annot/v1/"
NET_TAG_LEN = 8
EXPIRED = "EXPIRED"  # the vote value for an item that closed short of annotations
PREVOTE = 1
PRECOMMIT = 2
RULES = ("majority", "dawid-skene")
MAX_LABEL_LEN = 128


@dataclass(frozen=True, slots=True)
class Task:
    """A labeling task published by a requester."""

    title: str
    labels: tuple[str, ...]
    items: tuple[bytes, ...]
    redundancy: int
    reward_per_item: int
    validator_share_bps: int  # validators' share of each item's reward, in 1/10,000
    instructions: bytes | None = None
    allow: tuple[bytes, ...] = ()  # annotator public keys; empty = anyone
    close_time: int = 0  # unix seconds; 0 = never closes
    rule: str = "majority"
    weights_from: tuple[bytes, ...] = ()  # task ids whose final tallies weight annotators
    # items as a UnixFS directory (protocol.unixfs_dir): its root CID and its number of
    # distinct files, absent from the encoding when unset; ``items`` is then empty
    items_dir: bytes | None = None
    item_count: int = 0
    # hidden gold (protocol.gold): sorted salted commitments, absent from the encoding
    # when empty; min_gold_bps gates rewards; reveal_window (s after close, 0 = default)
    gold: tuple[bytes, ...] = ()
    min_gold_bps: int = 0
    reveal_window: int = 0

    KIND = "task"


@dataclass(frozen=True, slots=True)
class Annotation:
    """One annotator's label for one item of a task."""

    task: bytes
    item: bytes
    label: str

    KIND = "annotation"


TASK_ACTIONS = ("close", "extend", "cancel")


@dataclass(frozen=True, slots=True)
class TaskUpdate:
    """A requester's change to a task it published (only the task's author may):
    ``close`` it now, ``extend`` it to a new ``close_time`` (unix seconds), or
    ``cancel`` it (unfinished items expire and are refunded). ``close_time`` is 0
    except for ``extend``; see :mod:`protocol.lifecycle` for how updates apply."""

    task: bytes
    action: str
    close_time: int = 0

    KIND = "task_update"


@dataclass(frozen=True, slots=True)
class VoteEntry:
    task: bytes
    item: bytes
    value: str | None  # None is a nil vote


@dataclass(frozen=True, slots=True)
class Vote:
    """A validator's batch of votes for one phase and round."""

    phase: int
    round: int
    entries: tuple[VoteEntry, ...]

    KIND = "vote"


@dataclass(frozen=True, slots=True)
class TallyVote:
    """A validator's vote for a task's tally root."""

    task: bytes
    root: bytes

    KIND = "tally_vote"


@dataclass(frozen=True, slots=True)
class GoldEntry:
    """One opened gold commitment: the salt, the item and its gold label."""

    salt: bytes
    item: bytes
    label: str


@dataclass(frozen=True, slots=True)
class GoldReveal:
    """The requester's opening of every gold commitment of a task (after it closes)."""

    task: bytes
    entries: tuple[GoldEntry, ...]  # sorted by item

    KIND = "gold_reveal"


@dataclass(frozen=True, slots=True)
class PayoutBinding:
    """An annotator's EVM payout address, with the address key's EIP-191 signature
    over :func:`protocol.payout.binding_message` (peer id and network id)."""

    address: bytes  # 20 bytes
    signature: bytes  # 65 bytes r || s || v

    KIND = "payout_binding"


@dataclass(frozen=True, slots=True)
class PayoutVote:
    """A validator's vote for payout epoch ``epoch``: the Merkle ``root`` of the
    amounts owed over exactly ``tasks`` (sorted final-tally task ids)."""

    epoch: int
    tasks: tuple[bytes, ...]
    root: bytes

    KIND = "payout_vote"


Body = (Task | Annotation | Vote | TallyVote | GoldReveal | PayoutBinding | PayoutVote
        | TaskUpdate)
KINDS: dict[str, type[Body]] = {
    "task": Task, "annotation": Annotation, "vote": Vote, "tally_vote": TallyVote,
    "gold_reveal": GoldReveal, "payout_binding": PayoutBinding, "payout_vote": PayoutVote,
    "task_update": TaskUpdate,
}
GOLD_SALT_LEN = 32
EVM_ADDRESS_LEN = 20
EIP191_SIG_LEN = 65


@dataclass(frozen=True, slots=True)
class Record:
    """A decoded, signed record with its exact bytes and id."""

    kind: str
    author: bytes
    seq: int
    body: Body
    signature: bytes
    data: bytes = field(repr=False)
    cid: bytes = field(repr=False)

    @property
    def author_id(self) -> str:
        return keys.peer_id_from_public_key(self.author)

    @property
    def cid_str(self) -> str:
        return cidlib.cid_to_str(self.cid)


# ---------------------------------------------------------------- body maps

def _cid_list(v: tuple[bytes, ...]) -> list[bytes]:
    return list(v)


def body_to_map(body: Body) -> dict[str, Any]:
    if isinstance(body, Task):
        m = {
            "allow": list(body.allow), "close_time": body.close_time,
            "instructions": body.instructions, "items": _cid_list(body.items),
            "labels": list(body.labels), "redundancy": body.redundancy,
            "reward_per_item": body.reward_per_item, "rule": body.rule,
            "title": body.title, "validator_share_bps": body.validator_share_bps,
            "weights_from": list(body.weights_from), **_items_dir_map(body),
        }
        _gold_to_map(body, m)
        return m
    if isinstance(body, Annotation):
        return {"item": body.item, "label": body.label, "task": body.task}
    if isinstance(body, TaskUpdate):
        return {"action": body.action, "close_time": body.close_time, "task": body.task}
    if isinstance(body, Vote):
        return {
            "entries": [[e.task, e.item, e.value] for e in body.entries],
            "phase": body.phase, "round": body.round,
        }
    if isinstance(body, GoldReveal):
        return {"entries": [[e.salt, e.item, e.label] for e in body.entries],
                "task": body.task}
    if isinstance(body, PayoutBinding):
        return {"address": body.address, "signature": body.signature}
    if isinstance(body, PayoutVote):
        return {"epoch": body.epoch, "root": body.root, "tasks": list(body.tasks)}
    return {"root": body.root, "task": body.task}


_GOLD_FIELDS = ("gold", "min_gold_bps", "reveal_window")  # optional: absent when unset


def _gold_to_map(task: Task, m: dict[str, Any]) -> None:
    if task.gold:
        m["gold"] = list(task.gold)
    if task.min_gold_bps:
        m["min_gold_bps"] = task.min_gold_bps
    if task.reveal_window:
        m["reveal_window"] = task.reveal_window


def _gold_from_map(where: str, m: dict[str, Any], n_items: int,
                   close_time: int) -> dict[str, Any]:
    """The optional gold fields of a task map, checked; pops them from ``m``."""
    out: dict[str, Any] = {}
    if "gold" in m:
        g = m.pop("gold")
        if not isinstance(g, list) or not 1 <= len(g) <= n_items:
            raise FieldTypeError(f"{where}.gold: expected a list of 1..{n_items} commitments "
                                 f"(one per gold item at most), got {g!r:.80}")
        gold = tuple(_bytes(f"{where}.gold[]", x, 32) for x in g)
        if any(a >= b for a, b in itertools.pairwise(gold)):
            raise FieldTypeError(f"{where}.gold: commitments must be sorted and distinct")
        if close_time == 0:
            raise FieldTypeError(f"{where}.gold: a task with gold needs a close_time "
                                 "(the reveal comes after it)")
        out["gold"] = gold
    for name, lo, hi in (("min_gold_bps", 1, 10_000), ("reveal_window", 1, 2**31)):
        if name in m:
            v = m.pop(name)
            if type(v) is not int or not lo <= v <= hi:
                raise FieldTypeError(f"{where}.{name}: expected integer {lo}..{hi}, got {v!r}")
            if "gold" not in out:
                raise FieldTypeError(f"{where}.{name}: only a task with gold commitments "
                                     "may set it")
            out[name] = v
    return out


MAX_DIR_ITEMS = 10_000_000


def _items_dir_map(task: Task) -> dict[str, Any]:
    if task.items_dir is None:
        return {}
    return {"item_count": task.item_count, "items_dir": task.items_dir}


def _items_dir_from_map(where: str, m: object) -> tuple[object, dict[str, Any]]:
    """Pop the optional items_dir and item_count of a task map (a copy); check them."""
    if not isinstance(m, dict) or ("items_dir" not in m and "item_count" not in m):
        return m, {}
    m = dict(m)
    d, n = m.pop("items_dir", None), m.pop("item_count", None)
    if d is None or n is None:
        raise FieldTypeError(f"{where}: items_dir and item_count go together")
    items_dir = _cid(f"{where}.items_dir", d)
    if cidlib.decode_cid(items_dir)[0] != cidlib.DAG_PB:
        raise FieldTypeError(f"{where}.items_dir: a UnixFS directory is a dag-pb CID")
    if type(n) is not int or not 1 <= n <= MAX_DIR_ITEMS:
        raise FieldTypeError(f"{where}.item_count: expected integer 1..{MAX_DIR_ITEMS}, "
                             f"got {n!r}")
    return m, {"items_dir": items_dir, "item_count": n}


class _Fields:
    """Reads typed fields out of a decoded map, naming what is wrong."""

    def __init__(self, where: str, m: object, names: tuple[str, ...]) -> None:
        if not isinstance(m, dict):
            raise FieldTypeError(f"{where}: expected a map, got {type(m).__name__}")
        for k in m:
            if k not in names:
                raise UnknownFieldError(where, k)
        for n in names:
            if n not in m:
                raise MissingFieldError(where, n)
        self.where, self.m = where, m

    def get_int(self, name: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
        v = self.m[name]
        if type(v) is not int or not lo <= v <= hi:
            raise FieldTypeError(f"{self.where}.{name}: expected integer {lo}..{hi}, got {v!r}")
        return v

    def get_str(self, name: str, max_len: int = 4096, empty: bool = False) -> str:
        return _str(f"{self.where}.{name}", self.m[name], max_len, empty)

    def get_bytes(self, name: str, size: int | None = None) -> bytes:
        return _bytes(f"{self.where}.{name}", self.m[name], size)

    def get_cid(self, name: str) -> bytes:
        return _cid(f"{self.where}.{name}", self.m[name])

    def get_list(self, name: str, max_len: int) -> list[Any]:
        v = self.m[name]
        if not isinstance(v, list):
            raise FieldTypeError(f"{self.where}.{name}: expected a list, got {type(v).__name__}")
        if len(v) > max_len:
            raise FieldTypeError(f"{self.where}.{name}: {len(v)} entries, over {max_len}")
        return v


def _str(where: str, v: object, max_len: int, empty: bool = False) -> str:
    if not isinstance(v, str):
        raise FieldTypeError(f"{where}: expected a string, got {type(v).__name__}")
    if len(v) > max_len or (not empty and not v):
        raise FieldTypeError(f"{where}: string length {len(v)} not in 1..{max_len}")
    return v


def _bytes(where: str, v: object, size: int | None) -> bytes:
    if not isinstance(v, bytes):
        raise FieldTypeError(f"{where}: expected bytes, got {type(v).__name__}")
    if size is not None and len(v) != size:
        raise FieldTypeError(f"{where}: expected {size} bytes, got {len(v)}")
    return v


def _cid(where: str, v: object) -> bytes:
    b = _bytes(where, v, None)
    try:
        cidlib.decode_cid(b)
    except Exception as exc:  # CidError
        raise FieldTypeError(f"{where}: not a CID: {exc}") from None
    return b


def body_from_map(kind: str, m: object, max_items: int = 8192) -> Body:
    where = kind
    if kind == "task":
        m, items_dir = _items_dir_from_map(where, m)
        if isinstance(m, dict) and any(k in m for k in _GOLD_FIELDS):
            m = dict(m)
            items_v, close_v = m.get("items"), m.get("close_time")
            n_items = (len(items_v) if isinstance(items_v, list) and items_v
                       else int(items_dir.get("item_count", 0)))
            gold = _gold_from_map(where, m, n_items, close_v if type(close_v) is int else 0)
        else:
            gold = {}
        f = _Fields(where, m, ("allow", "close_time", "instructions", "items", "labels",
                               "redundancy", "reward_per_item", "rule", "title",
                               "validator_share_bps", "weights_from"))
        labels = tuple(_str(f"{where}.labels[]", x, MAX_LABEL_LEN)
                       for x in f.get_list("labels", 256))
        if len(labels) < 2 or len(set(labels)) != len(labels) or EXPIRED in labels:
            raise FieldTypeError(f"{where}.labels: need 2+ distinct labels, none {EXPIRED!r}")
        items = tuple(_cid(f"{where}.items[]", x) for x in f.get_list("items", max_items))
        if len(set(items)) != len(items) or bool(items) == bool(items_dir):
            raise FieldTypeError(f"{where}.items: need 1+ distinct item CIDs, or none and "
                                 "an items_dir")
        rule = f.get_str("rule", 32)
        if rule not in RULES:
            raise FieldTypeError(f"{where}.rule: {rule!r} is not one of {', '.join(RULES)}")
        instr = m["instructions"]  # type: ignore[index]
        return Task(
            title=f.get_str("title", 512),
            labels=labels,
            items=items,
            redundancy=f.get_int("redundancy", 1, 1000),
            reward_per_item=f.get_int("reward_per_item", 0, 10**15),
            validator_share_bps=f.get_int("validator_share_bps", 0, 10_000),
            instructions=None if instr is None else f.get_cid("instructions"),
            allow=tuple(_bytes(f"{where}.allow[]", x, 32) for x in f.get_list("allow", 4096)),
            close_time=f.get_int("close_time"),
            rule=rule,
            **items_dir,
            weights_from=tuple(_cid(f"{where}.weights_from[]", x)
                               for x in f.get_list("weights_from", 64)),
            **gold,
        )
    if kind == "annotation":
        f = _Fields(where, m, ("item", "label", "task"))
        return Annotation(task=f.get_cid("task"), item=f.get_cid("item"),
                          label=f.get_str("label", MAX_LABEL_LEN))
    if kind == "task_update":
        f = _Fields(where, m, ("action", "close_time", "task"))
        action = f.get_str("action", 16)
        if action not in TASK_ACTIONS:
            raise FieldTypeError(f"{where}.action: {action!r} is not one of "
                                 f"{', '.join(TASK_ACTIONS)}")
        close_time = f.get_int("close_time")
        if (action == "extend") != (close_time > 0):
            raise FieldTypeError(f"{where}.close_time: an extend names the new close time "
                                 f"(unix seconds > 0); close and cancel take 0, got {close_time}")
        return TaskUpdate(task=f.get_cid("task"), action=action, close_time=close_time)
    if kind == "vote":
        f = _Fields(where, m, ("entries", "phase", "round"))
        entries = []
        for e in f.get_list("entries", max_items):
            if not isinstance(e, list) or len(e) != 3:
                raise FieldTypeError(f"{where}.entries[]: expected [task, item, value]")
            value = None if e[2] is None else _str(f"{where}.entries[].value", e[2],
                                                   MAX_LABEL_LEN)
            entries.append(VoteEntry(_cid(f"{where}.entries[].task", e[0]),
                                     _cid(f"{where}.entries[].item", e[1]), value))
        if not entries:
            raise FieldTypeError(f"{where}.entries: a vote has at least one entry")
        return Vote(phase=f.get_int("phase", PREVOTE, PRECOMMIT),
                    round=f.get_int("round", 0, 2**31), entries=tuple(entries))
    if kind == "tally_vote":
        f = _Fields(where, m, ("root", "task"))
        return TallyVote(task=f.get_cid("task"), root=f.get_bytes("root", 32))
    if kind == "gold_reveal":
        f = _Fields(where, m, ("entries", "task"))
        gold_entries = []
        for e in f.get_list("entries", max_items):
            if not isinstance(e, list) or len(e) != 3:
                raise FieldTypeError(f"{where}.entries[]: expected [salt, item, label]")
            gold_entries.append(GoldEntry(_bytes(f"{where}.entries[].salt", e[0], GOLD_SALT_LEN),
                                          _cid(f"{where}.entries[].item", e[1]),
                                          _str(f"{where}.entries[].label", e[2], MAX_LABEL_LEN)))
        if not gold_entries:
            raise FieldTypeError(f"{where}.entries: a reveal opens at least one commitment")
        if any(a.item >= b.item for a, b in itertools.pairwise(gold_entries)):
            raise FieldTypeError(f"{where}.entries: must be sorted by item, one per item")
        return GoldReveal(task=f.get_cid("task"), entries=tuple(gold_entries))
    if kind == "payout_binding":
        f = _Fields(where, m, ("address", "signature"))
        return PayoutBinding(address=f.get_bytes("address", EVM_ADDRESS_LEN),
                             signature=f.get_bytes("signature", EIP191_SIG_LEN))
    if kind == "payout_vote":
        f = _Fields(where, m, ("epoch", "root", "tasks"))
        tasks = tuple(_cid(f"{where}.tasks[]", x) for x in f.get_list("tasks", 1 << 16))
        if not tasks or any(a >= b for a, b in itertools.pairwise(tasks)):
            raise FieldTypeError(f"{where}.tasks: need 1+ task ids, sorted and distinct")
        return PayoutVote(epoch=f.get_int("epoch", 1, 2**31), tasks=tasks,
                          root=f.get_bytes("root", 32))
    raise UnknownKindError(kind)


# ---------------------------------------------------------------- signing

def sign_bytes(network_id: bytes, kind: str, author: bytes, seq: int, body: Body) -> bytes:
    """The exact bytes an author signs for a record (one function for every kind;
    the kind is part of the domain tag, so a signature never transfers across kinds)."""
    if kind not in KINDS:
        raise UnknownKindError(kind)
    return (VERSION_TAG + kind.encode() + b"\x00" + network_id
            + encode_canonical([kind, author, seq, body_to_map(body)]))


def _envelope(network_id: bytes, kind: str, author: bytes, seq: int, body: Body,
              sig: bytes) -> bytes:
    return encode_canonical({
        "a": author, "b": body_to_map(body), "k": kind,
        "n": network_id[:NET_TAG_LEN], "s": seq, "x": sig,
    })


def sign_record(network_id: bytes, signer: keys.Signer | keys.SigningKey, seq: int,
                body: Body) -> Record:
    """Sign ``body`` as record ``seq`` of ``signer`` on network ``network_id``."""
    if seq < 1:
        raise FieldTypeError(f"seq starts at 1, got {seq}")
    kind = body.KIND
    # never sign what a decoder would refuse: check the body by the decoder's own rules
    body_from_map(kind, encode_roundtrip(body_to_map(body)))
    author = signer.public_key
    sig = signer.sign(sign_bytes(network_id, kind, author, seq, body))
    data = _envelope(network_id, kind, author, seq, body, sig)
    return Record(kind, author, seq, body, sig, data, cidlib.cid_bytes(data))


def decode_record(data: bytes, network_id: bytes, limits: Limits = DEFAULT_LIMITS,
                  verify: bool = True) -> Record:
    """Decode and (by default) verify one record; raise a named ``ProtocolError``."""
    record, body = _decode(data, network_id, limits)
    if verify:
        check_signature(record, _signed(record, body, network_id), network_id)
    return record


def decode_signed(data: bytes, network_id: bytes, limits: Limits = DEFAULT_LIMITS
                  ) -> tuple[Record, bytes]:
    """Decode one record without checking its signature: the record and the exact bytes
    its author signed, for :func:`check_signature`. Raises a named ``ProtocolError``.

    The two halves of :func:`decode_record`, so the signature check (three quarters of
    its time, and PyNaCl releases the GIL for it) can run apart, on other cores."""
    record, body = _decode(data, network_id, limits)
    return record, _signed(record, body, network_id)


def _signed(record: Record, body: Any, network_id: bytes) -> bytes:
    # ``body`` is the body map exactly as decoded (canonical, checked field by field), so
    # its plain encoding equals sign_bytes()'s without rebuilding the map
    packed: bytes = msgpack.packb([record.kind, record.author, record.seq, body],
                                  use_bin_type=True)
    return VERSION_TAG + record.kind.encode() + b"\x00" + network_id + packed


def _decode(data: bytes, network_id: bytes, limits: Limits) -> tuple[Record, Any]:
    """The record, unverified, and its body map as decoded."""
    m = unpack_limited(data, limits)
    if isinstance(m, dict) and m.get("k") == "vote" and isinstance(m.get("b"), dict):
        entries = m["b"].get("entries")
        if isinstance(entries, list) and len(entries) > limits.max_vote_entries:
            raise VoteTooLargeError(len(entries), limits.max_vote_entries)
    check_canonical(m, data)
    f = _Fields("record", m, ("a", "b", "k", "n", "s", "x"))
    kind = m["k"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise UnknownKindError(kind)
    net = f.get_bytes("n", NET_TAG_LEN)
    if net != network_id[:NET_TAG_LEN]:
        raise WrongNetworkError(net, network_id[:NET_TAG_LEN])
    author = f.get_bytes("a", 32)
    seq = f.get_int("s", 1)
    sig = f.get_bytes("x", 64)
    body = body_from_map(kind, m["b"], limits.max_array)
    return (Record(kind, author, seq, body, sig, bytes(data), cidlib.cid_bytes(bytes(data))),
            m["b"])


def check_signature(record: Record, signed: bytes, network_id: bytes) -> None:
    """Raise ``SignatureError`` (or a body's own error) unless ``record``, as returned
    by :func:`decode_signed` with ``signed``, is its author's."""
    keys.verify(record.author, signed, record.signature)
    _verify_body(record.body, record.author, network_id)


def verify_record(record: Record, network_id: bytes) -> None:
    """Check a record's signature (for records decoded with ``verify=False``)."""
    check_signature(record, sign_bytes(network_id, record.kind, record.author, record.seq,
                                       record.body), network_id)


def _verify_body(body: Body, author: bytes, network_id: bytes) -> None:
    """Checks a body carries beyond its author's signature: a payout binding's
    EIP-191 signature from the address key (every node checks it on decode)."""
    if isinstance(body, PayoutBinding):
        from protocol.payout import verify_binding  # eth-account loads only when needed
        verify_binding(body, author, network_id)


def encode_roundtrip(m: dict[str, Any]) -> Any:
    """``m`` as a decoder would see it (tuples become lists, as on the wire)."""
    return decode_canonical(encode_canonical(m))


def record_id(data: bytes) -> bytes:
    return cidlib.cid_bytes(data)


__all__ = [
    "EXPIRED", "PRECOMMIT", "PREVOTE", "Annotation", "Body", "DecodeError", "GoldEntry",
    "GoldReveal", "PayoutBinding", "PayoutVote", "Record", "TallyVote", "Task", "TaskUpdate",
    "Vote", "VoteEntry", "check_signature", "decode_record", "decode_signed", "sign_bytes",
    "sign_record", "verify_record",
]
