"""Benchmark 5, RPC: ``item.get`` p50/p99 and requests/s at a fixed 500 req/s.

The load comes from a second process (:mod:`tests.bench.rpc_loadgen`,
open-loop, 8 keep-alive connections) against node0's JSON-RPC server, cycling
over the task's items. In the full suite node0 is the finality benchmark's
validator (2,000 final items, 3 annotations and a certificate each); alone (as
in ``--quick``) it is a one-node network with a small annotated task.
Baseline: ``GET /healthz`` (no work) on the same server, same load, same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from protocol.cid import cid_from_str, cid_str
from tests.bench.common import RPC, AnnotationMaker, Figure
from tests.harness import ROOT, Cluster

RATE = 500.0


def load(home: Path, seconds: float, params_file: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tests.bench.rpc_loadgen", "--home", str(home), "--rate",
           str(RATE), "--seconds", str(seconds)]
    cmd += ["--params-file", str(params_file)] if params_file else ["--healthz"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=4 * seconds + 60,
                         check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def bench(c: Cluster, task: str, items: list[str], seconds: float = 5.0) -> list[Figure]:
    pf = c.root / "item_get_params.json"
    pf.write_text(json.dumps([{"task": task, "item": i} for i in items]))
    RPC(c.home(0)).call("item.get", task=task, item=items[0])  # warm
    health = load(c.home(0), seconds, None)
    item = load(c.home(0), seconds, pf)
    ms = 1000.0

    def m(x: float | None) -> float | None:
        return None if x is None else x * ms

    ok = item["errors"] == 0 and item["not_sent"] == 0 and item["rps"] >= 0.95 * RATE
    return [
        Figure("rpc", "item.get p50 at 500 req/s", m(item["p50"]), "ms", m(health["p50"]),
               "/healthz p50", "-", None, {"item.get": item}),
        Figure("rpc", "item.get p99 at 500 req/s", m(item["p99"]), "ms", m(health["p99"]),
               "/healthz p99", "<= 20 ms", ok and item["p99"] is not None
               and item["p99"] <= 0.020, {"healthz": health}),
        Figure("rpc", "item.get req/s served (offered 500)", item["rps"], "req/s",
               health["rps"], "/healthz req/s", ">= 475 req/s", item["rps"] >= 0.95 * RATE),
    ]


def run(root: Path, quick: bool = False) -> list[Figure]:
    """Standalone: a one-node network with a small annotated task."""
    with Cluster(root / "rpc", n=1) as c:
        c.start()
        rpc = RPC(c.home(0))
        items = [cid_str(b"rpc item %d" % i) for i in range(100)]
        task = rpc.call("task.create", title="rpc", labels=["a", "b"], items=items,
                        redundancy=3, reward_per_item=1, validator_share_bps=1000)["task"]
        mk = AnnotationMaker(c.genesis.network_id, 3, tag="rpc")
        tid = cid_from_str(task)
        rpc.submit_batch([mk.make(a, i + 1, tid, cid_from_str(it), "a").data
                          for i, it in enumerate(items) for a in range(3)])
        time.sleep(1.0)
        rpc.close()
        return bench(c, task, items, 2.0 if quick else 5.0)


if __name__ == "__main__":
    from tests.bench.common import main
    main(run)
