"""Wire frames of the p2p layer: gossip batches and sync-protocol frames.

Pure and synchronous: bytes in, frozen values out, or a ``FrameError`` that
says what was wrong. Every frame is canonical msgpack, decoded with
:func:`protocol.encoding.decode_canonical` under tight limits, so a peer can
never make us allocate more than a frame's byte cap.

Gossip message payload (topic ``genesis.topic()``)::

    [record bytes, record bytes, ...]          1..max_batch_records, <= 1 MiB

Sync protocol ``/annot/sync/1.1.0`` (and 1.0.0, without ``have``;
varint-length-prefixed frames)::

    client -> server  {"clock": [[author (32 B), seq], ...], "have": [[author, [seq, ...]],
                       ...], "more": bool, "net": network id (32 B), "t": "hello"}
                                                                (repeated while more)
    server -> client  {"r": [record bytes, ...], "t": "recs"}     (zero or more)
    server -> client  {"t": "done"}
    either way        {"reason": str, "t": "error"}

Errors::

    NodeError
    └── FrameError            a frame that is malformed, oversized or unexpected
        └── NetworkMismatchError  a hello for another network id
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgpack

from node.errors import NodeError
from protocol.encoding import Limits, decode_canonical, encode_canonical
from protocol.errors import ProtocolError

SYNC_PROTOCOL = "/annot/sync/1.0.0"
SYNC_PROTOCOL_V11 = "/annot/sync/1.1.0"  # hello may carry "have": seqs held past a gap
SYNC_PROTOCOLS = (SYNC_PROTOCOL_V11, SYNC_PROTOCOL)  # our preference order
RPC_CAP = 1 << 20  # py-libp2p's gossipsub RPC cap; also our sync frame budget
GOSSIP_PAYLOAD_CAP = 1_000_000  # leave room for the pubsub envelope inside RPC_CAP
CLOCK_ENTRIES_PER_FRAME = 4096  # ~45 B each: a hello frame stays under 200 KiB
# Hello frames per session: a clock of up to ~67 M authors. The server keeps only
# entries for authors it holds itself, so memory stays bounded by its own clock;
# time is bounded by the session limit. Past this the session ends without a penalty.
MAX_HELLO_FRAMES = 1 << 14
HAVE_PER_FRAME = 4096  # (author, seq) pairs held past a gap, per hello frame
HAVE_PER_SESSION = 4 * HAVE_PER_FRAME  # more gaps than this: some records come again
MAX_REASON = 512


class FrameError(NodeError):
    """A frame that is malformed, oversized or not expected here."""


class NetworkMismatchError(FrameError):
    """A peer that speaks another network id."""

    def __init__(self, got: bytes, want: bytes) -> None:
        super().__init__(f"peer is on network {got.hex()[:16]}…, we are on {want.hex()[:16]}…")
        self.got = got
        self.want = want


@dataclass(frozen=True, slots=True)
class Hello:
    network_id: bytes
    clock: tuple[tuple[bytes, int], ...]
    more: bool
    have: tuple[tuple[bytes, tuple[int, ...]], ...] = ()  # seqs held above the clock


@dataclass(frozen=True, slots=True)
class Recs:
    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Done:
    pass


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    reason: str


Frame = Hello | Recs | Done | ErrorFrame


def frame_cap(max_record_bytes: int) -> int:
    """Largest frame we read: one full batch, or at least one maximal record."""
    return max(RPC_CAP, max_record_bytes + 4096)


# ------------------------------------------------------------------ gossip batches

def encode_batch(records: list[bytes]) -> bytes:
    return encode_canonical(records)


def decode_batch(payload: bytes, max_records: int, max_record_bytes: int) -> list[bytes]:
    """The record byte strings of one gossip message, or a ``FrameError``."""
    limits = Limits(max_bytes=GOSSIP_PAYLOAD_CAP, max_str=1, max_bin=max_record_bytes,
                    max_array=max_records, max_map=1)
    value = _decode("gossip batch", payload, limits)
    if not isinstance(value, list) or not value:
        raise FrameError("gossip batch: expected a non-empty list of records")
    for i, v in enumerate(value):
        if not isinstance(v, bytes):
            raise FrameError(f"gossip batch[{i}]: expected record bytes, got {type(v).__name__}")
    return value


# ------------------------------------------------------------------ sync frames

def encode_hello(network_id: bytes, clock: list[tuple[bytes, int]], more: bool,
                 have: list[tuple[bytes, list[int]]] | None = None) -> bytes:
    """One hello frame; ``have`` (1.1.0 only) lists seqs held above the clock.

    Canonical by construction (keys inserted in sorted order; only bytes, ints,
    bools and str inside), so it skips ``encode_canonical``'s recursive re-sort: a
    node encodes its whole clock for every peer on every sync, and that re-sort was
    6-8% of a node's CPU with 1,000 records in its pool (``have``)."""
    m: dict[str, Any] = {"clock": [[bytes(a), int(s)] for a, s in clock]}
    if have is not None:
        m["have"] = [[bytes(a), [int(q) for q in seqs]] for a, seqs in have]
    m["more"], m["net"], m["t"] = bool(more), bytes(network_id), "hello"
    out: bytes = msgpack.packb(m, use_bin_type=True)
    return out


def hello_frames(network_id: bytes, clock: dict[bytes, int],
                 have: dict[bytes, list[int]] | None = None) -> list[bytes]:
    """Every hello frame at once (see :func:`iter_hello_frames`)."""
    return list(iter_hello_frames(network_id, clock, have))


def iter_hello_frames(network_id: bytes, clock: dict[bytes, int],
                      have: dict[bytes, list[int]] | None = None) -> Iterator[bytes]:
    """The hello frames for a whole clock, chunked so each frame stays small; made one
    at a time (a clock of a million authors is ~250 frames). ``have`` (for 1.1.0) is
    cut into frames of at most ``HAVE_PER_FRAME`` seqs, at most ``HAVE_PER_SESSION``."""
    items = sorted(clock.items())
    haves: list[list[tuple[bytes, list[int]]]] = []
    if have is not None:
        flat = [(a, q) for a, seqs in sorted(have.items()) for q in seqs][:HAVE_PER_SESSION]
        for i in range(0, len(flat), HAVE_PER_FRAME):
            grouped: dict[bytes, list[int]] = {}
            for a, q in flat[i:i + HAVE_PER_FRAME]:
                grouped.setdefault(a, []).append(q)
            haves.append(list(grouped.items()))
    frames = max(1, -(-len(items) // CLOCK_ENTRIES_PER_FRAME), len(haves))
    for i in range(frames):
        chunk = items[i * CLOCK_ENTRIES_PER_FRAME:(i + 1) * CLOCK_ENTRIES_PER_FRAME]
        extra = (haves[i] if i < len(haves) else []) if have is not None else None
        yield encode_hello(network_id, chunk, i < frames - 1, extra)


def encode_recs(records: list[bytes]) -> bytes:
    return encode_canonical({"r": records, "t": "recs"})


def encode_done() -> bytes:
    return encode_canonical({"t": "done"})


def encode_error(reason: str) -> bytes:
    return encode_canonical({"reason": reason[:MAX_REASON], "t": "error"})


def decode_frame(data: bytes, max_records: int, max_record_bytes: int) -> Frame:
    """Decode one sync frame strictly: known type, exact fields, bounded sizes."""
    limits = Limits(max_bytes=frame_cap(max_record_bytes), max_str=MAX_REASON,
                    max_bin=max(max_record_bytes, 32),
                    max_array=max(max_records, CLOCK_ENTRIES_PER_FRAME), max_map=5)
    m = _decode("sync frame", data, limits)
    if not isinstance(m, dict):
        raise FrameError("sync frame: expected a map")
    t = m.get("t")
    if t == "hello":
        if "have" in m:
            _fields(m, ("clock", "have", "more", "net", "t"))
        else:
            _fields(m, ("clock", "more", "net", "t"))
        return _hello(m)
    if t == "recs":
        _fields(m, ("r", "t"))
        r = m["r"]
        if not isinstance(r, list) or len(r) > max_records:
            raise FrameError(f"recs: expected a list of at most {max_records} records")
        if not all(isinstance(x, bytes) for x in r):
            raise FrameError("recs: every record must be bytes")
        return Recs(tuple(r))
    if t == "done":
        _fields(m, ("t",))
        return Done()
    if t == "error":
        _fields(m, ("reason", "t"))
        if not isinstance(m["reason"], str):
            raise FrameError("error: reason must be a string")
        return ErrorFrame(m["reason"])
    raise FrameError(f"sync frame: unknown type {t!r}")


def _hello(m: dict[str, Any]) -> Hello:
    net, clock, more = m["net"], m["clock"], m["more"]
    if not isinstance(net, bytes) or len(net) != 32:
        raise FrameError("hello.net: expected a 32-byte network id")
    if not isinstance(more, bool):
        raise FrameError("hello.more: expected true or false")
    if not isinstance(clock, list) or len(clock) > CLOCK_ENTRIES_PER_FRAME:
        raise FrameError(f"hello.clock: expected a list of at most {CLOCK_ENTRIES_PER_FRAME}")
    out: list[tuple[bytes, int]] = []
    for e in clock:
        if (not isinstance(e, list) or len(e) != 2 or not isinstance(e[0], bytes)
                or len(e[0]) != 32 or type(e[1]) is not int or not 0 <= e[1] < 2**63):
            raise FrameError("hello.clock[]: expected [author (32 bytes), seq >= 0]")
        out.append((e[0], e[1]))
    return Hello(net, tuple(out), more, _have(m.get("have", [])))


def _have(have: Any) -> tuple[tuple[bytes, tuple[int, ...]], ...]:
    if not isinstance(have, list) or len(have) > HAVE_PER_FRAME:
        raise FrameError(f"hello.have: expected a list of at most {HAVE_PER_FRAME}")
    out: list[tuple[bytes, tuple[int, ...]]] = []
    total = 0
    for e in have:
        if (not isinstance(e, list) or len(e) != 2 or not isinstance(e[0], bytes)
                or len(e[0]) != 32 or not isinstance(e[1], list)):
            raise FrameError("hello.have[]: expected [author (32 bytes), [seq, ...]]")
        total += len(e[1])
        if total > HAVE_PER_FRAME:
            raise FrameError(f"hello.have: more than {HAVE_PER_FRAME} seqs in one frame")
        if not all(type(x) is int and 0 < x < 2**63 for x in e[1]):
            raise FrameError("hello.have[]: seqs must be integers >= 1")
        out.append((e[0], tuple(e[1])))
    return tuple(out)


def _fields(m: dict[str, Any], names: tuple[str, ...]) -> None:
    if set(m) != set(names):
        raise FrameError(f"{m.get('t')} frame: fields {sorted(m)}, expected {list(names)}")


def _decode(what: str, data: bytes, limits: Limits) -> Any:
    try:
        return decode_canonical(data, limits)
    except ProtocolError as exc:
        raise FrameError(f"{what}: {exc}") from None
