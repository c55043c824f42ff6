"""Shared pieces of the benchmark suite: figures, record generation, RPC, store polling.

A :class:`Figure` is one row of the table: a measured value beside a baseline
measured in the same run, their ratio, and the target the ratio or the value
must meet. A throughput figure also carries its limit: the raw PyNaCl verify
rate measured in the same run (:func:`verify_limit`) times the core count,
divided by how many nodes verify each record (or item), and the share of it
reached. Records are generated here (pre-signed, valid for the network) and
either written straight into a store or submitted over JSON-RPC.

Delivery and finality are observed by reading each node's SQLite store
read-only (WAL allows it while the node writes): a record is "delivered" to a
node when it is committed there, an item "final" when its certificate row is.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import nacl.signing

from protocol.cid import cid_bytes
from protocol.records import NET_TAG_LEN, VERSION_TAG, Annotation, Record

# ------------------------------------------------------------------ figures


@dataclass
class Figure:
    """One row: ``value`` (unit) vs ``baseline``; ``met`` compares against ``target``."""

    bench: str
    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    limit: float | None = None
    limit_name: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def of_limit(self) -> float | None:
        if self.value is None or not self.limit:
            return None
        return self.value / self.limit

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "of_limit": self.of_limit}


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def table(figures: Sequence[Figure]) -> str:
    head = ("figure", "value", "baseline", "ratio", "limit", "of limit", "target", "met?")
    rows = [head]
    for f in figures:
        met = "-" if f.met is None else ("yes" if f.met else "NO")
        base = "-" if f.baseline is None else f"{fmt(f.baseline)} ({f.baseline_name})"
        lim = "-" if f.limit is None else f"{fmt(f.limit)} ({f.limit_name})"
        rows.append((f"{f.bench}: {f.name}", f"{fmt(f.value)} {f.unit}", base,
                     fmt(f.ratio), lim, fmt(f.of_limit), f.target, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def quantile(xs: Sequence[float], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def p50_p99(xs: Sequence[float]) -> tuple[float | None, float | None]:
    return quantile(xs, 0.50), quantile(xs, 0.99)


def mean(xs: Sequence[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


# ------------------------------------------------------------------ the machine's limit

_RAW_VERIFY: list[float] = []


def raw_verify_rate(n: int = 2_000, rounds: int = 3) -> float:
    """Raw PyNaCl verifications per second on one core (sign-bytes prepared), the best
    of ``rounds``; measured once per run and reused by every benchmark."""
    if not _RAW_VERIFY:
        key = seed_key("limit", 0)
        work = [(bytes(key.verify_key), m, key.sign(m).signature)
                for m in (b"annot bench verify %d" % i * 8 for i in range(n))]
        best = 0.0
        for _ in range(rounds):
            t0 = time.perf_counter()
            for pk, msg, sig in work:
                nacl.signing.VerifyKey(pk).verify(msg, sig)
            best = max(best, n / (time.perf_counter() - t0))
        _RAW_VERIFY.append(best)
    return _RAW_VERIFY[0]


def cores() -> int:
    return os.cpu_count() or 1


def verify_limit(verifiers: float = 1.0) -> tuple[float, str]:
    """(limit, its label): raw verify/s x cores / ``verifiers`` (the nodes — or
    verifications — each counted unit costs)."""
    raw = raw_verify_rate()
    per = "" if verifiers == 1 else f"/{verifiers:g}"
    return raw * cores() / verifiers, f"{raw:,.0f} verify/s x {cores()} cores{per}"


# ------------------------------------------------------------------ records


def seed_key(tag: str, i: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(f"annot bench {tag} {i}".encode()).digest())


def _pack(v: Any) -> bytes:
    out: bytes = msgpack.packb(v, use_bin_type=True)
    return out


class AnnotationMaker:
    """Signs annotations fast for one network: msgpack with keys written in sorted
    order (so the bytes are canonical), one NaCl key object per author."""

    def __init__(self, network_id: bytes, authors: int, tag: str = "annotator") -> None:
        self.network_id = network_id
        self.keys = [seed_key(tag, i) for i in range(authors)]
        self.pubs = [bytes(k.verify_key) for k in self.keys]
        self._prefix = VERSION_TAG + b"annotation\x00" + network_id
        self._net_tag = network_id[:NET_TAG_LEN]

    def make(self, author: int, seq: int, task: bytes, item: bytes, label: str) -> Record:
        pub = self.pubs[author]
        body = {"item": item, "label": label, "task": task}
        sig = self.keys[author].sign(self._prefix + _pack(["annotation", pub, seq, body])).signature
        data = _pack({"a": pub, "b": body, "k": "annotation", "n": self._net_tag, "s": seq,
                      "x": sig})
        return Record("annotation", pub, seq, Annotation(task, item, label), sig, data,
                      cid_bytes(data))


def make_annotations(network_id: bytes, n: int, authors: int = 100, tag: str = "annotator",
                     task: bytes | None = None, per_item: int = 3,
                     labels: tuple[str, ...] = ("cat", "dog", "fox")) -> list[Record]:
    """``n`` annotations by ``authors`` authors (seq 1, 2, … each), ``per_item`` per item,
    round-robin over authors so every author's seqs stay contiguous in list order."""
    mk = AnnotationMaker(network_id, authors, tag)
    task = task if task is not None else cid_bytes(b"bench task " + tag.encode())
    out = []
    for i in range(n):
        a = i % authors
        out.append(mk.make(a, i // authors + 1, task, cid_bytes(b"item %d" % (i // per_item)),
                           labels[i % len(labels)]))
    return out


# ------------------------------------------------------------------ JSON-RPC


class RPC:
    """A keep-alive JSON-RPC client on ``http.client`` (cheap per call)."""

    def __init__(self, home: Path) -> None:
        url = (home / "rpc.url").read_text().strip()
        self.token = (home / "rpc.token").read_text().strip()
        hostport = url.split("://", 1)[1].split("/", 1)[0]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self._id = 0

    def post(self, body: Any) -> Any:
        raw = json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        for attempt in (0, 1):
            try:
                self.conn.request("POST", "/rpc", raw, headers)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt:
                    raise
        if resp.status != 200:
            raise RuntimeError(f"RPC HTTP {resp.status}: {data[:200]!r}")
        return json.loads(data)

    def call(self, method: str, **params: Any) -> Any:
        self._id += 1
        out = self.post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        if "error" in out:
            raise RuntimeError(f"{method}: {out['error']}")
        return out["result"]

    def submit_batch(self, records: Iterable[bytes]) -> list[Any]:
        """``record.submit`` for each record, in one JSON-RPC batch request."""
        calls = []
        for data in records:
            self._id += 1
            calls.append({"jsonrpc": "2.0", "id": self._id, "method": "record.submit",
                          "params": {"record": base64.b64encode(data).decode()}})
        replies = self.post(calls)
        if isinstance(replies, dict):  # the whole batch refused
            raise RuntimeError(f"record.submit batch refused: {replies.get('error')}")
        bad = [r["error"] for r in replies if "error" in r]
        if bad:
            raise RuntimeError(f"record.submit refused {len(bad)}: {bad[0]}")
        return [r["result"] for r in replies]

    def close(self) -> None:
        self.conn.close()


# ------------------------------------------------------------------ store observers


class StoreWatch:
    """Reads one node's store read-only and reports what is new since the last poll."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout=5000")
        self.rec_rowid = 0
        self.cert_rowid = 0

    def new_records(self) -> list[bytes]:
        rows = self.db.execute("SELECT rowid, cid FROM records WHERE rowid>? ORDER BY rowid",
                               (self.rec_rowid,)).fetchall()
        if rows:
            self.rec_rowid = rows[-1][0]
        return [bytes(c) for _, c in rows]

    def new_finals(self) -> list[bytes]:
        rows = self.db.execute("SELECT rowid, item FROM certificates WHERE rowid>? ORDER BY "
                               "rowid", (self.cert_rowid,)).fetchall()
        if rows:
            self.cert_rowid = rows[-1][0]
        return [bytes(i) for _, i in rows]

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM records").fetchone()[0])

    def close(self) -> None:
        self.db.close()


def rss_mb(pid: int) -> float:
    """Resident set size of a process, MB (from /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def tree_rss_mb(pid: int) -> float:
    """RSS of ``pid`` (the node is one process; children, if any, are not counted)."""
    return rss_mb(pid)


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import platform
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nproc": os.cpu_count(),
            "python": platform.python_version(), "cpu": model,
            "loadavg": os.getloadavg()}


def main(run: Callable[[Path, bool], list[Figure]]) -> None:
    """``python -m tests.bench.NAME [--quick]``: one benchmark alone, printed with its notes."""
    with tempfile.TemporaryDirectory() as d:
        figs = run(Path(d), "--quick" in sys.argv)
    print(table(figs))
    for f in figs:
        print(json.dumps(f.notes))
