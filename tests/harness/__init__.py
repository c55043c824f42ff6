"""The shared multi-node harness: real ``annot run`` processes on 127.0.0.1.

Reads like Kubo's test harness::

    with Cluster(tmp_path, n=4) as c:        # keys, genesis, homes, free ports
        c.start()                             # every node as a process
        c.wait_connected()
        c.rpc(0, "node.status")

Every process is started in its own session and stopped by pid in ``close()``
(SIGTERM, then SIGKILL), so a failing test never leaves a node behind.

Optionally each node listens on its own address (``hosts``) inside a network
namespace the test created (``netns``): the process runs under ``ip netns
exec`` and RPC calls to it are made from a thread that has entered that
namespace (``setns``), so a test can cut links between nodes for real while
still talking to every node.
"""

from __future__ import annotations

import base64
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from node.core.config import DEFAULT_TOML
from node.core.home import init_home
from node.rpc.client import SyncRPCClient
from protocol.genesis import Genesis, Params, Validator
from protocol.keys import SigningKey
from tests.rpc_shapes import check_result

ANNOT = [sys.executable, "-m", "node.cli"]
ROOT = Path(__file__).resolve().parents[2]
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread that has entered network namespace ``ns``
    (``/run/netns/<ns>``); sockets it opens live in that namespace."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({ns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            out["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            out["error"] = exc

    t = threading.Thread(target=run, name=f"netns-{ns}", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    value: T = out["value"]
    return value


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Cluster:
    def __init__(self, root: Path, n: int = 3, validators: int | None = None,
                 params: Params | None = None, sync_interval_s: float = 1.0,
                 hosts: Sequence[str] | None = None,
                 netns: Sequence[str | None] | None = None) -> None:
        self.root = root
        self.n = n
        self.hosts = list(hosts) if hosts is not None else ["127.0.0.1"] * n
        self.netns = list(netns) if netns is not None else [None] * n
        assert len(self.hosts) == n and len(self.netns) == n
        self.keys = [SigningKey(bytes([i + 1]) * 32) for i in range(n)]
        nv = n if validators is None else validators
        self.genesis = Genesis("harness", tuple(Validator(k.peer_id, 1) for k in self.keys[:nv]),
                               params=params or Params(round_timeout_ms=1000,
                                                       round_timeout_delta_ms=500))
        self.genesis.validate()
        ports = free_ports(2 * n)
        self.p2p_ports, self.rpc_ports = ports[:n], ports[n:]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        gpath = root / "genesis.json"
        root.mkdir(parents=True, exist_ok=True)
        gpath.write_text(self.genesis.to_json())
        for i, k in enumerate(self.keys):
            boot = tuple(self.addr(j) for j in range(n) if j != i)
            init_home(self.home(i), gpath, p2p_port=self.p2p_ports[i],
                      rpc_port=self.rpc_ports[i], bootstrap=boot, key=k,
                      gateway_port=0)  # a free one: RPC port + 1 may be taken
            cfg = self.home(i) / "config.toml"
            text = cfg.read_text().replace("interval_s = 5.0", f"interval_s = {sync_interval_s}")
            text = text.replace('format = "json"', 'format = "text"')
            text = text.replace("reconnect_max_s = 30.0", "reconnect_max_s = 2.0")
            text = text.replace("tally_settle_s = 1.0", "tally_settle_s = 0.5")
            listen = f'listen = ["/ip4/127.0.0.1/tcp/{self.p2p_ports[i]}"]'
            assert listen in text
            host = self.hosts[i]
            text = text.replace(listen, f'listen = ["/ip4/{host}/tcp/{self.p2p_ports[i]}"]')
            cfg.write_text(text)
        assert "interval_s = 5.0" in DEFAULT_TOML  # the rewrite above depends on it

    # ------------------------------------------------------------ addressing
    def home(self, i: int) -> Path:
        return self.root / f"node{i}"

    def addr(self, i: int) -> str:
        return f"/ip4/{self.hosts[i]}/tcp/{self.p2p_ports[i]}/p2p/{self.keys[i].peer_id}"

    def peer_id(self, i: int) -> str:
        return self.keys[i].peer_id

    def set_bootstrap(self, i: int, peers: Iterable[int]) -> None:
        """Rewrite node ``i``'s bootstrap list (read at its next start)."""
        cfg = self.home(i) / "config.toml"
        lines = cfg.read_text().splitlines(keepends=True)
        boot = ", ".join(f'"{self.addr(j)}"' for j in peers if j != i)
        at = [k for k, line in enumerate(lines) if line.startswith("bootstrap = [")]
        assert len(at) == 1, "config.toml has no single bootstrap line"
        lines[at[0]] = f"bootstrap = [{boot}]\n"
        cfg.write_text("".join(lines))

    # ------------------------------------------------------------ processes
    def start(self, *which: int, wait: bool = True) -> Cluster:
        for i in which or range(self.n):
            if i in self.procs and self.procs[i].poll() is None:
                continue
            log = open(self.home(i) / "node.log", "ab")
            ns = self.netns[i]
            wrap = ["ip", "netns", "exec", ns] if ns else []
            self.procs[i] = subprocess.Popen(
                [*wrap, *ANNOT, "run", "--home", str(self.home(i))], cwd=ROOT, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            for i in which or range(self.n):
                self.wait_rpc(i)
        return self

    def wait_rpc(self, i: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[i].poll() is not None:
                raise RuntimeError(f"node{i} exited: {self.log_tail(i)}")
            if (self.home(i) / "rpc.url").exists():
                try:
                    self.rpc(i, "node.status")
                    return
                except Exception:
                    pass
            time.sleep(0.1)
        raise TimeoutError(f"node{i} RPC not up in {timeout}s: {self.log_tail(i)}")

    def log_tail(self, i: int, lines: int = 30) -> str:
        try:
            return "\n".join((self.home(i) / "node.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, i: int, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        p = self.procs.pop(i, None)
        if p is None:
            return None
        if p.poll() is None:
            os.killpg(p.pid, sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        return p.returncode

    def kill(self, i: int) -> None:
        self.stop(i, signal.SIGKILL)

    def close(self) -> None:
        for i in list(self.procs):
            self.stop(i)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ RPC
    def client(self, i: int) -> SyncRPCClient:
        return SyncRPCClient.from_home(self.home(i))

    def rpc(self, i: int, method: str, **params: Any) -> Any:
        """One call; its result is checked against the method's type in node.rpc.results."""
        ns = self.netns[i]
        if ns:
            result = in_netns(ns, lambda: self.client(i).call(method, **params))
        else:
            result = self.client(i).call(method, **params)
        check_result(method, result)
        return result

    def rpc_batch(self, i: int, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
        """Many calls in one HTTP request; results in order (an error raises)."""
        client = self.client(i)
        ns = self.netns[i]
        replies = in_netns(ns, lambda: client.batch(calls)) if ns else client.batch(calls)
        results = [r.unwrap() for r in replies]
        for (method, _), result in zip(calls, results, strict=True):
            check_result(method, result)
        return results

    def status(self, i: int) -> dict[str, Any]:
        result: dict[str, Any] = self.rpc(i, "node.status")
        return result

    def wait(self, cond: Any, timeout: float = 30.0, what: str = "condition",
             interval: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(interval)
        raise TimeoutError(f"{what} not reached in {timeout}s")

    def wait_connected(self, timeout: float = 30.0) -> None:
        running = [i for i, p in self.procs.items() if p.poll() is None]
        self.wait(lambda: all(self.status(i)["peer_count"] >= len(running) - 1
                              for i in running), timeout, "full mesh")

    def submit_many(self, i: int, records: Sequence[bytes], batch: int = 500
                    ) -> list[dict[str, Any]]:
        """Submit signed records with batched ``record.submit`` calls (an error raises)."""
        out: list[dict[str, Any]] = []
        for k in range(0, len(records), batch):
            out += self.rpc_batch(i, [("record.submit", {"record": base64.b64encode(r).decode()})
                                      for r in records[k:k + batch]])
        return out

    def record_set(self, i: int, authors: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
        """(record counts by kind, author → clock) at node ``i``: equal snapshots on two
        nodes mean they hold the same records (a clock is a contiguous seq range)."""
        authors = sorted(set(authors))
        clocks = self.rpc_batch(i, [("account.get", {"author": a}) for a in authors])
        return (dict(self.status(i)["records_by_kind"]),
                {a: c["clock"] for a, c in zip(authors, clocks, strict=True)})

    def submit(self, i: int, record: bytes) -> dict[str, Any]:
        out: dict[str, Any] = self.rpc(i, "record.submit",
                                      record=base64.b64encode(record).decode())
        return out
