"""Bad input: fuzz every decoder at the edge and every RPC method.

Decoders (records, gossip batches, sync frames, certificates, tallies) may
only raise their package's root error (``ProtocolError`` / ``NodeError``);
the RPC, run in-process with a real ``NodeRPC`` over a real store, may only
answer with a JSON-RPC error that is not -32603 (an internal error means an
unexpected exception escaped a handler). Inputs come from hypothesis and from
a seeded mutation fuzzer over valid records; memory is bounded (tracemalloc).
"""

from __future__ import annotations

import base64
import json
import os
import random
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.core.home import NodeHome, init_home
from node.daemon import open_running_node
from node.errors import NodeError
from node.p2p.frames import (
    decode_batch,
    decode_frame,
    encode_batch,
    encode_done,
    encode_error,
    encode_recs,
    hello_frames,
)
from node.rpc.adapter import NodeRPC
from node.rpc.jsonrpc import handle_body
from node.rpc.routes import ROUTES
from node.rpc.server import RPCApp
from protocol import cid as cidlib
from protocol.certificate import build_certificate, decode_certificate, encode_certificate
from protocol.encoding import encode_canonical
from protocol.errors import ProtocolError
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.records import (
    PRECOMMIT,
    Annotation,
    Record,
    TallyVote,
    Task,
    Vote,
    VoteEntry,
    decode_record,
    sign_record,
)
from protocol.tally import decode_tally

from .summary import add, scale

KEYS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
GENESIS = Genesis("fuzz", tuple(Validator(k.peer_id, 1) for k in KEYS[:3]))
NET = GENESIS.network_id
LIMITS = GENESIS.params.limits()
MAX_IN = GENESIS.params.max_batch_records
ITEMS = tuple(cidlib.cid_bytes(b"item%d" % i) for i in range(4))
SEED_ENV = "ANNOT_FUZZ_SEED"


def fuzz_seed(name: str) -> int:
    """The mutation fuzzer's seed for one target: stable across processes (crc32 of the
    name, not ``hash``), printed, and replaced by ``ANNOT_FUZZ_SEED`` to replay a run."""
    env = os.environ.get(SEED_ENV)
    seed = int(env) if env else zlib.crc32(name.encode()) % 1000 + 1
    print(f"fuzz {name}: seed {seed} (replay: {SEED_ENV}={seed})")
    return seed


SETTINGS = settings(max_examples=scale(1500, 12_000), deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))
SETTINGS_STRUCTURED = settings(SETTINGS, max_examples=scale(300, 6000))


def valid_records() -> list[Record]:
    task = sign_record(NET, KEYS[3], 1, Task("t", ("cat", "dog"), ITEMS, 3, 100, 1000))
    out = [task]
    for i, k in enumerate(KEYS[:3]):
        out.append(sign_record(NET, k, 1, Annotation(task.cid, ITEMS[i], "cat")))
        out.append(sign_record(NET, k, 2, Vote(PRECOMMIT, 0, tuple(
            VoteEntry(task.cid, it, v) for it, v in zip(ITEMS, ("cat", None, "dog", "EXPIRED"),
                                                         strict=True)))))
        out.append(sign_record(NET, k, 3, TallyVote(task.cid, bytes(32))))
    return out


RECORDS = valid_records()
CERT = encode_certificate(build_certificate(RECORDS[0].cid, ITEMS[0], "cat", 0,
                                            [r.data for r in RECORDS if r.kind == "vote"]))
SEEDS = [r.data for r in RECORDS]
FRAME_SEEDS = [encode_batch(SEEDS), encode_recs(SEEDS[:3]), encode_done(),
               encode_error("no"), *hello_frames(NET, {k.public_key: 5 for k in KEYS})]


# ------------------------------------------------------------------ the mutation fuzzer

INTERESTING = [0, 1, -1, 2**7, 2**8, 2**16, 2**31, 2**32, 2**63 - 1, -(2**63), 2**64 - 1]
HUGE_HEADERS = [b"\xdb\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff",
                b"\xc6\xff\xff\xff\xff", b"\xc9\xff\xff\xff\xff\x01", b"\xda\xff\xff",
                b"\xdc\xff\xff", b"\xde\xff\xff", b"\xcb" + bytes(8), b"\xc1", b"\xd4\x01\x00"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    r = rng.randrange(10 if depth < 3 else 6)
    if r == 0:
        return None
    if r == 1:
        return rng.choice([True, False])
    if r == 2:
        return rng.choice([*INTERESTING, rng.randrange(-1000, 1000)])
    if r == 3:
        return rng.choice(["", "cat", "EXPIRED", "x" * rng.randrange(300), "\u00e9\u2603",
                           "a", "k", "b", "task", "vote"])
    if r == 4:
        return rng.choice([b"", bytes(32), bytes(64), RECORDS[0].cid, rng.randbytes(8),
                           rng.randbytes(rng.randrange(70))])
    if r == 5:
        return rng.choice(SEEDS)
    if r in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {rng.choice(["a", "b", "k", "n", "s", "x", "t", "r", "clock", "more", "net",
                        "task", "item", "value", "votes", "round", "zz"]):
            random_value(rng, depth + 1) for _ in range(rng.randrange(6))}


def mutate_value(rng: random.Random, v: Any, depth: int = 0) -> Any:
    """Replace, drop or add one node somewhere inside a decoded value."""
    if isinstance(v, dict) and v and rng.random() < 0.8:
        k = rng.choice(sorted(v))
        out = dict(v)
        op = rng.randrange(4)
        if op == 0:
            del out[k]
        elif op == 1:
            out[rng.choice(["zz", "b", "k", "s", "t"])] = random_value(rng)
        else:
            out[k] = mutate_value(rng, v[k], depth + 1)
        return out
    if isinstance(v, list) and v and rng.random() < 0.8:
        out_l = list(v)
        i = rng.randrange(len(v))
        op = rng.randrange(4)
        if op == 0:
            del out_l[i]
        elif op == 1:
            out_l.insert(i, random_value(rng))
        else:
            out_l[i] = mutate_value(rng, v[i], depth + 1)
        return out_l
    if isinstance(v, int) and not isinstance(v, bool) and rng.random() < 0.5:
        return rng.choice([*INTERESTING, v + 1, v - 1, -v])
    return random_value(rng)


def mutate_bytes(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 4, 8])):
        op = rng.randrange(9)
        if op == 0 and b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 2:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        elif op == 3 and b:
            i = rng.randrange(len(b))
            del b[i:i + rng.randrange(1, 16)]
        elif op == 4:
            b = b[:rng.randrange(len(b) + 1)]
        elif op == 5:
            other = rng.choice(pool)
            i, j = rng.randrange(len(b) + 1), rng.randrange(len(other) + 1)
            b = b[:i] + other[j:]
        elif op == 6:
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.choice(HUGE_HEADERS)
        elif op == 7:
            b += rng.randbytes(rng.randrange(1, 8))
        elif b:
            i = rng.randrange(len(b))
            b[i:i + 1] = rng.choice([b"\xc0", b"\xc2", b"\xc3", b"\x7f", b"\xff", b"\x80",
                                     b"\x90", b"\xa0", b"\xc4\x00", b"\xcc\x00"])
    return bytes(b)


def mutated_inputs(seed: int, n: int, seeds: list[bytes]) -> Iterator[bytes]:
    rng = random.Random(seed)
    for _ in range(n):
        base = rng.choice(seeds)
        if rng.random() < 0.35:
            try:
                value = msgpack.unpackb(base, raw=False, strict_map_key=False)
                yield encode_canonical(mutate_value(rng, value))
                continue
            except Exception:
                pass
        yield mutate_bytes(rng, base, seeds)


# ------------------------------------------------------------------ the decoders

def dec_record(d: bytes) -> object:
    return decode_record(d, NET, LIMITS)


def dec_batch(d: bytes) -> object:
    return [dec_record(r) for r in decode_batch(d, MAX_IN, LIMITS.max_bytes)]


def dec_frame(d: bytes) -> object:
    return decode_frame(d, MAX_IN, LIMITS.max_bytes)


def dec_cert(d: bytes) -> object:
    return decode_certificate(d)


def dec_tally(d: bytes) -> object:
    return decode_tally(d)


DECODERS: dict[str, tuple[Callable[[bytes], object], list[bytes]]] = {
    "record": (dec_record, SEEDS),
    "batch": (dec_batch, [encode_batch(SEEDS), encode_batch(SEEDS[:1])]),
    "frame": (dec_frame, FRAME_SEEDS),
    "certificate": (dec_cert, [CERT]),
    "tally": (dec_tally, [encode_canonical({"x": 1})]),
}


def only_clean_errors(fn: Callable[[bytes], object], data: bytes) -> bool:
    """Run one input; True if it was accepted. Any non-root error fails the test."""
    try:
        fn(data)
        return True
    except (ProtocolError, NodeError):
        return False
    except Exception as exc:
        raise AssertionError(f"{fn.__name__}({data[:80]!r}…) raised "
                             f"{type(exc).__name__}: {exc}") from exc


def test_valid_seeds_decode() -> None:
    for data in SEEDS:
        assert dec_record(data).data == data  # type: ignore[attr-defined]
    for data in FRAME_SEEDS[1:]:
        dec_frame(data)
    assert dec_cert(CERT)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_mutation_fuzz_decoder(name: str) -> None:
    fn, seeds = DECODERS[name]
    n = scale(4000, 30_000) if name in ("record", "frame", "batch") else scale(2000, 8000)
    accepted, seed = 0, fuzz_seed(name)
    for data in mutated_inputs(seed, n, seeds):
        accepted += only_clean_errors(fn, data)
    add(fuzz_inputs=n)
    print(f"fuzz {name}: {n} mutated inputs, {accepted} accepted, the rest cleanly refused")


@given(st.binary(max_size=600))
@SETTINGS
def test_hypothesis_bytes_every_decoder(data: bytes) -> None:
    for fn, _ in DECODERS.values():
        only_clean_errors(fn, data)
    add(fuzz_inputs=len(DECODERS))


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20)
    | st.binary(max_size=70),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=5),
    max_leaves=20)

RECORD_MAPS = st.fixed_dictionaries(
    {"a": st.binary(min_size=32, max_size=32) | JSONISH, "b": JSONISH,
     "k": st.sampled_from(["task", "annotation", "vote", "tally_vote", "x"]) | JSONISH,
     "n": st.just(NET[:8]) | JSONISH, "s": st.integers(-2, 2**64 - 1) | JSONISH,
     "x": st.binary(min_size=64, max_size=64) | JSONISH},
    optional={"zz": JSONISH})

FRAME_MAPS = st.fixed_dictionaries(
    {"t": st.sampled_from(["hello", "recs", "done", "error"]) | JSONISH},
    optional={"clock": st.lists(st.lists(JSONISH | st.binary(min_size=32, max_size=32),
                                         max_size=3), max_size=4) | JSONISH,
              "more": st.booleans() | JSONISH, "net": st.just(NET) | JSONISH,
              "r": st.lists(st.sampled_from(SEEDS) | st.binary(max_size=40), max_size=4)
              | JSONISH, "reason": JSONISH})


@given(RECORD_MAPS, FRAME_MAPS)
@SETTINGS_STRUCTURED
def test_hypothesis_structured(record: dict[str, Any], frame: dict[str, Any]) -> None:
    r, f = encode_canonical(record), encode_canonical(frame)
    for fn, data in ((dec_record, r), (dec_batch, encode_canonical([r])), (dec_frame, f),
                     (dec_cert, encode_canonical(frame)), (dec_tally, r)):
        only_clean_errors(fn, data)
    add(fuzz_inputs=5)


def test_decoder_memory_is_bounded() -> None:
    """Declared lengths of 4 GiB and deep nesting allocate nothing like that."""
    nasty = [h + b"\x00" * 16 for h in HUGE_HEADERS] + [b"\x91" * 100_000, b"\x81\xa1a" * 50_000]
    tracemalloc.start()
    try:
        for data in [*nasty, *mutated_inputs(7, 2000, SEEDS)]:
            for fn, _ in DECODERS.values():
                only_clean_errors(fn, data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    add(fuzz_inputs=(len(nasty) + 2000) * len(DECODERS))
    print(f"decoder fuzz peak traced memory: {peak / 2**20:.1f} MiB")
    assert peak < 24 * 2**20


# ------------------------------------------------------------------ the RPC

@pytest.fixture
async def node_rpc(tmp_path: Path) -> AsyncIterator[NodeRPC]:
    """The daemon's own parts (store, p2p on loopback, consensus, content), running."""
    gpath = tmp_path / "genesis.json"
    gpath.write_text(GENESIS.to_json())
    init_home(tmp_path / "home", gpath, p2p_port=0, rpc_port=0, key=KEYS[0])
    async with open_running_node(NodeHome(tmp_path / "home")) as running:
        running.node.store.save_records(RECORDS)
        yield NodeRPC(running.node, running.p2p, running.consensus, running.content)


def rpc_values(rng: random.Random) -> Any:
    task, item = RECORDS[0].cid_str, cidlib.cid_to_str(ITEMS[0])
    pool: list[Any] = [task, item, "cat", "dog", KEYS[0].peer_id, KEYS[3].peer_id,
                       base64.b64encode(rng.choice(SEEDS)).decode(), "bafk", "Qm", "12D3KooW",
                       base64.b64encode(b"hello").decode(), "=", "!!", "0", "-1", "999999999999",
                       "majority", "dawid-skene", "raw", "dag-pb", [task], [item, item],
                       ["cat", "dog"], 1, 0, -1, 2**63, 10**30, 1.5, True, None, {}, [],
                       "x" * 3000, "\u0000", "\ud800"[:0] + "\u2603"]
    if rng.random() < 0.3:
        b = mutate_bytes(rng, rng.choice(SEEDS), SEEDS)
        return base64.b64encode(b).decode()
    if rng.random() < 0.2:
        return random_value(rng)  # may carry bytes: replaced below
    return rng.choice(pool)


def jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, list):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return v


def rpc_requests(seed: int, n: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    methods = sorted(ROUTES)
    for i in range(n):
        method = rng.choice([*methods, "nope", "", "node.statu"]) if rng.random() < 0.97 \
            else rng.choice(methods)
        names = [p.name for p in ROUTES[method].params] if method in ROUTES else ["x"]
        shape = rng.randrange(6)
        params: Any
        if shape == 0:
            params = [rpc_values(rng) for _ in range(rng.randrange(len(names) + 2))]
        elif shape == 1:
            params = random_value(rng)
        else:
            params = {n_: rpc_values(rng) for n_ in names if rng.random() < 0.8}
            if rng.random() < 0.2:
                params[rng.choice(["zz", "cursor", "limit"])] = rpc_values(rng)
        req: Any = {"jsonrpc": "2.0", "id": i, "method": method, "params": jsonable(params)}
        if rng.random() < 0.05:
            del req["params"]
        if rng.random() < 0.05:
            req = [req, {"jsonrpc": "2.0", "method": method}]
        body = json.dumps(req).encode()
        if rng.random() < 0.08:
            body = mutate_bytes(rng, body, [body])
        yield body


def internal_errors(reply: bytes | None) -> list[str]:
    if reply is None:
        return []
    out = json.loads(reply)
    return [r["error"]["message"] for r in (out if isinstance(out, list) else [out])
            if "error" in r and r["error"]["code"] == -32603]


async def test_rpc_fuzz_every_method(node_rpc: NodeRPC) -> None:
    n = scale(3000, 25_000)
    failures: dict[str, int] = {}
    with trio.fail_after(scale(120, 600)):
        for body in rpc_requests(seed := fuzz_seed("rpc"), n):
            for msg in internal_errors(await handle_body(node_rpc, body)):
                failures[msg[:160]] = failures.get(msg[:160], 0) + 1
    add(fuzz_inputs=n)
    assert node_rpc.node.store.integrity_check() == []
    assert not failures, f"internal errors from the RPC (seed {seed}): {failures}"


async def test_rpc_methods_clean_errors_on_typical_mistakes(node_rpc: NodeRPC) -> None:
    """Each method with wrong-typed and missing params: a named error, never -32603."""
    bad_values: list[Any] = [None, 1, -1, "", "x", [], {}, True, "A" * 5000, 2**70]
    n = 0
    for method, route in sorted(ROUTES.items()):
        for p in route.params:
            for v in bad_values:
                body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                   "params": {p.name: v}}).encode()
                assert not internal_errors(await handle_body(node_rpc, body)), (method, p, v)
                n += 1
    add(fuzz_inputs=n)


async def test_rpc_refuses_missing_or_wrong_token(node_rpc: NodeRPC) -> None:
    app = RPCApp(node_rpc, "s3cret", 1 << 20, lambda: b"")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "node.status"}).encode()
    for auth in (None, b"Bearer wrong", b"Basic s3cret", b"Bearer ", b"bearer s3cret2",
                 b"Bearer s3cre"):
        status, reply = await asgi_post(app, body, auth)
        assert status == 401 and b"unauthorized" in reply, auth
    status, reply = await asgi_post(app, body, b"Bearer s3cret")
    assert status == 200 and b"peer_id" in reply


async def asgi_post(app: RPCApp, body: bytes, auth: bytes | None) -> tuple[int, bytes]:
    headers = [(b"content-length", str(len(body)).encode())]
    if auth is not None:
        headers.append((b"authorization", auth))
    scope = {"type": "http", "path": "/rpc", "method": "POST", "headers": headers}
    sent: list[dict[str, Any]] = []
    events = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])
