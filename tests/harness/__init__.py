"""The shared multi-node harness: real ``annot run`` processes on 127.0.0.1.

Reads like Kubo's test harness::

    with Cluster(tmp_path, n=4) as c:        # keys, genesis, homes, free ports
        c.start()                             # every node as a process
        c.wait_connected()
        c.rpc(0, "node.status")

Every process is started in its own session and stopped by pid in ``close()``
(SIGTERM, then SIGKILL), so a failing test never leaves a node behind.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from protocol.genesis import Genesis, Params, Validator
from protocol.keys import SigningKey

from node.config import DEFAULT_TOML
from node.home import init_home
from node.rpc.client import SyncRPCClient

ANNOT = [sys.executable, "-m", "node.cli"]
ROOT = Path(__file__).resolve().parents[2]


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
                 params: Params | None = None, sync_interval_s: float = 1.0) -> None:
        self.root = root
        self.n = n
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
                      rpc_port=self.rpc_ports[i], bootstrap=boot, key=k)
            cfg = self.home(i) / "config.toml"
            text = cfg.read_text().replace("interval_s = 5.0", f"interval_s = {sync_interval_s}")
            text = text.replace('format = "json"', 'format = "text"')
            text = text.replace("reconnect_max_s = 30.0", "reconnect_max_s = 2.0")
            text = text.replace("tally_settle_s = 1.0", "tally_settle_s = 0.5")
            cfg.write_text(text)
        assert "interval_s = 5.0" in DEFAULT_TOML  # the rewrite above depends on it

    # ------------------------------------------------------------ addressing
    def home(self, i: int) -> Path:
        return self.root / f"node{i}"

    def addr(self, i: int) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.p2p_ports[i]}/p2p/{self.keys[i].peer_id}"

    def peer_id(self, i: int) -> str:
        return self.keys[i].peer_id

    # ------------------------------------------------------------ processes
    def start(self, *which: int, wait: bool = True) -> Cluster:
        for i in which or range(self.n):
            if i in self.procs and self.procs[i].poll() is None:
                continue
            log = open(self.home(i) / "node.log", "ab")  # noqa: SIM115 - owned by the process
            self.procs[i] = subprocess.Popen(
                [*ANNOT, "run", "--home", str(self.home(i))], cwd=ROOT, stdout=log,
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
                except Exception:  # noqa: BLE001 - still starting
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
        return self.client(i).call(method, **params)

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

    def submit(self, i: int, record: bytes) -> dict[str, Any]:
        out: dict[str, Any] = self.rpc(i, "record.submit",
                                      record=base64.b64encode(record).decode())
        return out
