"""A local multi-node testnet as background processes, after Kubo's iptb and ``cometbft testnet``.

    python -m node.testnet up     [--n 4] [--base-port 4700] [--dir testnet] [demo options]
    python -m node.testnet status [--dir testnet]
    python -m node.testnet stop   [--dir testnet]     # SIGTERM, then SIGKILL after 5 s
    python -m node.testnet clean  [--dir testnet]     # stop, then delete the directory

``up`` generates N validator keys, one genesis (``testnet/genesis.json``, every
validator weight 1) and homes ``testnet/node<i>`` (p2p on BASE_PORT+10i, RPC on
BASE_PORT+10i+1, every other node as a bootstrap peer), starts ``annot run``
for each in its own session (log in ``node<i>/node.log``, pid in
``node<i>/annot.pid``), waits until every node answers RPC and sees the other
N-1, then runs :mod:`node.testnet.demo` and leaves the nodes running. Run it again
and it restarts stopped nodes, reuses running ones, and runs the demo again.
``stop`` signals only pids from our pid files whose command line is an annot
daemon on that home, so a recycled pid is never hit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from node.core.home import init_home, new_key
from node.errors import NodeError
from node.gateway.config import read_gateway_url
from node.rpc.client import ClientError, RPCClient, read_home
from node.testnet.demo import add_arguments, demo_from_args, node_homes
from protocol.genesis import Genesis, Validator

META = "testnet.json"
PID_FILE = "annot.pid"
LOG_FILE = "node.log"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class TestnetError(NodeError):
    """The testnet cannot be brought up, or its directory is not what we expect."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str  # node<i>, the home's directory name
    peer_id: str
    p2p_port: int
    rpc_port: int


# ------------------------------------------------------------------ layout

def load_meta(root: Path) -> list[NodeSpec] | None:
    path = root / META
    if not path.exists():
        if root.exists() and any(root.iterdir()):
            raise TestnetError(f"{root} exists but holds no {META}; not a testnet directory")
        return None
    return [NodeSpec(**n) for n in json.loads(path.read_text())["nodes"]]


def check_ports(ports: list[int]) -> None:
    """Fail with the busy ports named unless every one can be bound on 127.0.0.1."""
    busy = []
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    if busy:
        raise TestnetError(f"ports in use on 127.0.0.1: {', '.join(map(str, busy))} — "
                           "stop what holds them or pick another --base-port")


def generate(root: Path, n: int, base_port: int) -> list[NodeSpec]:
    """Keys, genesis and N homes that bootstrap from each other."""
    ports = [(base_port + 10 * i, base_port + 10 * i + 1) for i in range(n)]
    check_ports([p for p2p, rpc in ports for p in (p2p, rpc, rpc + 1)])  # gateway: rpc + 1
    keys = [new_key() for _ in range(n)]
    genesis = Genesis(name="annot-testnet", genesis_time=int(time.time()),
                      validators=tuple(Validator(k.peer_id, 1) for k in keys))
    genesis.validate()
    root.mkdir(parents=True, exist_ok=True)
    (root / "genesis.json").write_text(genesis.to_json())
    addrs = [f"/ip4/127.0.0.1/tcp/{p2p}/p2p/{k.peer_id}"
             for (p2p, _), k in zip(ports, keys, strict=True)]
    specs = []
    for i, (key, (p2p, rpc)) in enumerate(zip(keys, ports, strict=True)):
        boot = tuple(a for j, a in enumerate(addrs) if j != i)
        init_home(root / f"node{i}", root / "genesis.json", p2p_port=p2p, rpc_port=rpc,
                  bootstrap=boot, key=key)
        specs.append(NodeSpec(f"node{i}", key.peer_id, p2p, rpc))
    meta = {"n": n, "base_port": base_port, "network_id": genesis.network_id.hex(),
            "nodes": [asdict(s) for s in specs]}
    (root / META).write_text(json.dumps(meta, indent=2) + "\n")
    return specs


# ------------------------------------------------------------------ processes

def is_annot(pid: int, home: Path) -> bool:
    """Whether ``pid`` is a live (not zombie) ``annot`` process whose arguments name ``home``."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return any("annot" in a for a in args) and str(home.resolve()) in args and state != "Z"


def running_pid(home: Path) -> int | None:
    """The pid in ``home``'s pid file if that process is our daemon on ``home``."""
    try:
        pid = int((home / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_annot(pid, home) else None


def annot_command() -> list[str]:
    """The ``annot`` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "annot"
    found = str(beside) if beside.exists() else shutil.which("annot")
    if found is None:
        raise TestnetError("no `annot` executable beside the interpreter or on PATH; "
                           "run `make install`")
    return [found]


def start(home: Path) -> subprocess.Popen[bytes]:
    home = home.resolve()
    with (home / LOG_FILE).open("ab") as log:
        proc = subprocess.Popen([*annot_command(), "run", "--home", str(home)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    (home / PID_FILE).write_text(f"{proc.pid}\n")
    return proc


def log_tail(home: Path, lines: int = 20) -> str:
    try:
        text = (home / LOG_FILE).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


async def _status(home: Path, timeout: float = 3.0) -> dict[str, object] | None:
    try:
        async with RPCClient(*read_home(home), timeout=timeout) as client:
            result: dict[str, object] = await client.call("node.status")
            return result
    except ClientError:
        return None


async def wait_ready(homes: list[Path], started: dict[Path, subprocess.Popen[bytes]],
                     timeout: float) -> None:
    """Until each node answers RPC and has N-1 peers; TestnetError names a dead node.

    Nodes we just ``started`` are watched through their Popen: until it execs,
    a child's /proc cmdline is still ours."""
    deadline, last = trio.current_time() + timeout, ""
    while True:
        dead = [h for h in homes if (started[h].poll() is not None if h in started
                                     else running_pid(h) is None)]
        if dead:
            also = f" ({', '.join(h.name for h in dead[1:])} too)" if dead[1:] else ""
            raise TestnetError(f"{dead[0].name} exited while starting{also}; last lines of "
                               f"{dead[0] / LOG_FILE}:\n{log_tail(dead[0])}")
        statuses = [await _status(h) for h in homes]
        peers = [int(str(s["peer_count"])) if s else -1 for s in statuses]
        line = "  waiting: " + ", ".join(
            f"{h.name} {'down' if p < 0 else f'{p} peers'}"
            for h, p in zip(homes, peers, strict=True))
        if line != last:
            print(line, flush=True)
            last = line
        if all(p >= len(homes) - 1 for p in peers):
            return
        if trio.current_time() > deadline:
            raise TestnetError(f"nodes not ready after {timeout:.0f} s ({line.strip()}); "
                               f"logs are in {homes[0].parent}/node*/{LOG_FILE}")
        await trio.sleep(0.5)


def stop(root: Path) -> None:
    """SIGTERM our daemons, SIGKILL any still alive after 5 s, remove the pid files."""
    pids = {}
    for home in node_homes(root):
        pid = running_pid(home)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            pids[home] = pid
        elif (home / PID_FILE).exists():
            print(f"{home.name}: not running (stale pid file)")
            (home / PID_FILE).unlink()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(running_pid(h) for h in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for home, pid in pids.items():
        if running_pid(home) is not None:
            print(f"{home.name}: still running after {STOP_TIMEOUT_S:.0f} s; SIGKILL {pid}")
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 2
            while is_annot(pid, home) and time.monotonic() < deadline:
                time.sleep(0.05)
            for name in ("rpc.url", "rpc.token"):  # what a clean exit would have removed
                (home / name).unlink(missing_ok=True)
        else:
            print(f"{home.name}: stopped (pid {pid})")
        (home / PID_FILE).unlink(missing_ok=True)


# ------------------------------------------------------------------ commands

def _short(text: object, n: int = 12) -> str:
    s = str(text)
    return s if len(s) <= n else s[:n] + "…"


async def _table(root: Path) -> list[dict[str, object] | None]:
    out = []
    for home in node_homes(root):
        out.append(await _status(home) if running_pid(home) is not None else None)
    return out


def status(root: Path) -> int:
    """Print one row per node and whether they all agree; 1 if any is down or they differ."""
    homes = node_homes(root)
    if not homes:
        print(f"no testnet in {root}")
        return 1
    rows = trio.run(_table, root)
    print(f"{'node':<7} {'peer id':<17} {'peers':>5} {'records':>8} {'final':>6}  ledger root")
    for home, s in zip(homes, rows, strict=True):
        if s is None:
            print(f"{home.name:<7} {'down':<17}")
            continue
        pid = str(s["peer_id"])
        print(f"{home.name:<7} {pid[:8] + '…' + pid[-6:]:<17} {s['peer_count']!s:>5} "
              f"{s['record_count']!s:>8} {s.get('final_items', '?')!s:>6}  "
              f"{_short(s.get('ledger_root', '?'))}")
    up = [s for s in rows if s is not None]
    views = {(s.get("ledger_root"), s.get("final_items")) for s in up}
    if not up:
        print(f"all {len(rows)} nodes down; start them with `python -m node.testnet up`")
        return 1
    if len(up) < len(rows):
        print(f"{len(rows) - len(up)} of {len(rows)} nodes down; "
              f"the {len(up)} up {'agree' if len(views) <= 1 else 'DISAGREE'}")
        return 1
    if len(views) == 1:
        root_hex, final = next(iter(views))
        print(f"all {len(rows)} nodes agree: ledger root {_short(root_hex)}, {final} final items")
        return 0
    print(f"nodes DISAGREE: {len(views)} different (ledger root, final items) views — "
          "they may still be syncing; run again in a few seconds")
    return 1


def up(root: Path, n: int, base_port: int) -> None:
    """Generate (first time), start what is not running and wait until all are ready."""
    specs = load_meta(root)
    if specs is None:
        last = base_port + 10 * (n - 1) + 2
        print(f"generating a {n}-node testnet in {root} (ports {base_port}..{last})")
        specs = generate(root, n, base_port)
    elif len(specs) != n:
        raise TestnetError(f"{root} holds a {len(specs)}-node testnet; pass --n {len(specs)} "
                           f"or remove it first with `python -m node.testnet clean --dir {root}`")
    homes = [root / s.name for s in specs]
    stopped = [(h, s) for h, s in zip(homes, specs, strict=True) if running_pid(h) is None]
    if not stopped:
        print(f"testnet of {n} nodes in {root} already running")
    else:
        check_ports([p for _, s in stopped for p in (s.p2p_port, s.rpc_port, s.rpc_port + 1)])
    started = {}
    for home, spec in stopped:
        started[home] = start(home)
        print(f"started {home.name} (pid {started[home].pid}, p2p {spec.p2p_port}, "
              f"rpc {spec.rpc_port}, gateway {spec.rpc_port + 1}) {spec.peer_id}")
    try:
        trio.run(wait_ready, homes, started, READY_TIMEOUT_S)
    except BaseException:
        print("startup failed; stopping the nodes", flush=True)
        stop(root)
        raise
    print(f"all {n} nodes up, each connected to the other {n - 1}")
    if url := read_gateway_url(homes[0]):
        print(f"workbench (node0's gateway): {url}/  requester: {url}/requester")


def clean(root: Path) -> None:
    if not root.exists():
        return
    if not (root / META).exists():
        raise TestnetError(f"{root} holds no {META}; not deleting a directory we did not make")
    stop(root)
    shutil.rmtree(root)
    print(f"removed {root}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node.testnet",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "status", "stop", "clean"))
    parser.add_argument("--n", type=int, default=4, help="validator nodes (up)")
    parser.add_argument("--base-port", type=int, default=4700,
                        help="node i uses BASE+10i (p2p) and BASE+10i+1 (rpc)")
    parser.add_argument("--no-demo", action="store_true", help="up: start the nodes only")
    add_arguments(parser)
    args = parser.parse_args(argv)
    root: Path = args.dir
    try:
        if args.command == "status":
            return status(root)
        if args.command == "stop":
            stop(root)
        elif args.command == "clean":
            clean(root)
        else:
            if args.n < 1:
                raise TestnetError("--n must be at least 1")
            up(root, args.n, args.base_port)
            return 0 if args.no_demo else demo_from_args(args)
    except TestnetError as exc:
        print(f"testnet: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
