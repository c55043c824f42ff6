"""RPC load: latency percentiles and throughput of one JSON-RPC method on a running node.

Run from the repository root against a node started with ``annot run``::

    .venv/bin/python -m tests.bench.rpc_load --home DIR [--requests 2000] [--concurrency 8]
        [--method item.get] [--task CID --item CID] [--max-seconds 60]

Every request is a real HTTP POST (httpx, one connection per worker, keep-alive) with
the token from ``DIR/rpc.token``. For ``item.get`` without ``--task``/``--item``
the first item of the first listed task is used; with no task at all a small bench
task is created (one signed record). The run stops early after ``--max-seconds``.
Prints one JSON object: count, errors, wall time, rps, p50/p99/max in ms and the
node's resident memory (from the pid in ``DIR/daemon.lock``, if psutil is there).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from node.rpc.client import read_home


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (``q`` in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def node_rss(home: Path) -> int | None:
    """Resident set size of the daemon holding ``home``'s lock, in bytes."""
    try:
        import psutil

        pid = int((home / "daemon.lock").read_text().strip())
        return int(psutil.Process(pid).memory_info().rss)
    except (ImportError, OSError, ValueError, LookupError):
        return None
    except Exception:  # psutil.Error: the node is gone, so there is no number
        return None


async def _call(http: httpx.AsyncClient, url: str, method: str, params: dict[str, Any]) -> Any:
    reply = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                       "params": params})
    reply.raise_for_status()
    payload = reply.json()
    if "error" in payload:
        raise RuntimeError(f"{method}: {payload['error']['message']}")
    return payload["result"]


async def default_params(http: httpx.AsyncClient, url: str, method: str,
                         task: str | None, item: str | None) -> dict[str, Any]:
    if method != "item.get":
        return {}
    if task is None or item is None:
        tasks = (await _call(http, url, "task.list", {"limit": 1}))["tasks"]
        if tasks:
            task = tasks[0]["task"]
        else:
            from protocol.cid import cid_str

            items = [cid_str(b"rpc bench item %d" % i) for i in range(4)]
            task = (await _call(http, url, "task.create", {
                "title": "rpc bench", "labels": ["a", "b"], "items": items, "redundancy": 1,
                "reward_per_item": 0, "validator_share_bps": 0}))["task"]
        item = (await _call(http, url, "task.get", {"task": task}))["items"][0]
    return {"task": task, "item": item}


async def run_load(home: Path, requests: int, concurrency: int, method: str,
                   task: str | None, item: str | None, max_seconds: float) -> dict[str, Any]:
    base, token = read_home(home)
    url = f"{base.rstrip('/')}/rpc"
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    errors: list[str] = []
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30.0) as http:
        params = await default_params(http, url, method, task, item)
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        await http.post(url, json=body)  # warm: connect once before timing
        issued = 0
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker() -> None:
            nonlocal issued
            while issued < requests and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                try:
                    reply = await http.post(url, json=body)
                    ok = reply.status_code == 200 and "result" in reply.json()
                    if not ok:
                        errors.append(f"HTTP {reply.status_code}: {reply.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - t0)

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "method": method, "requests": len(latencies), "errors": len(errors),
        "first_error": errors[0] if errors else None, "concurrency": concurrency,
        "seconds": round(wall, 3), "rps": round(len(latencies) / wall, 1) if wall else None,
        "p50_ms": round(percentile(ordered, 50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        "truncated": len(latencies) < requests,
        "node_rss_bytes": node_rss(home),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.rpc_load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="home of a running node")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--method", default="item.get", help="item.get (default), node.status, ...")
    ap.add_argument("--task", help="task CID for item.get (default: the first task)")
    ap.add_argument("--item", help="item CID for item.get (default: the task's first item)")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="stop issuing requests after this long")
    args = ap.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        ap.error("--requests and --concurrency must be at least 1")
    try:
        result = trio.run(run_load, args.home.expanduser(), args.requests, args.concurrency,
                          args.method, args.task, args.item, args.max_seconds)
    except Exception as exc:  # a benchmark says why it could not run, in one line
        print(f"rpc_load: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
