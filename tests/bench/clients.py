"""Benchmark 8, clients: submissions through group commit, and gateway reads under ingest.

One node (a one-validator network) holds tasks; the load comes from a second
process (:mod:`tests.bench.rpc_loadgen`, closed loop, keep-alive connections).

* submit: pre-signed annotations, one ``record.submit`` per HTTP request, from 32
  concurrent clients; acknowledged records per second (each acknowledged only once
  its fsynced group commit is done). Baseline: one client, one record per request
  (every record its own fsynced transaction), same run. Limit: raw verify x cores.
* gateway: ``GET /api/v1/tasks/{task}/items/{item}`` over the task's items from 16
  clients for a few seconds while a writer submits 1,000 annotations/s over the RPC
  (JSON-RPC batches every ~10 ms); requests/s and p99. Baseline: the same load on
  the idle node, same run. The gateway's per-IP rate limit is lifted for the load
  (every client here is 127.0.0.1); its 500 ms answer cache stays on.

Annotations are of tasks with redundancy 4 (three labels per item): no item
completes, so the figures are ingest and serving, not consensus.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from protocol.cid import cid_to_str
from tests.bench.common import RPC, Figure, verify_limit
from tests.bench.gossip import _paced_writer
from tests.bench.ingest import make_tasks_and_annotations
from tests.harness import ROOT, Cluster

SUBMIT_CLIENTS = 32
READ_CLIENTS = 16
INGEST_RATE = 1000.0


def loadgen(home: Path, args: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "tests.bench.rpc_loadgen", "--home", str(home), *args]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def submit(home: Path, root: Path, records: list[Any], clients: int) -> dict[str, Any]:
    f = root / f"submit-{clients}.json"
    f.write_text(json.dumps([base64.b64encode(r.data).decode() for r in records]))
    return loadgen(home, ["--rate", "0", "--threads", str(clients), "--submit-file", str(f),
                          "--max-s", "120"], 180)


def reads(home: Path, paths_file: Path, seconds: float) -> dict[str, Any]:
    return loadgen(home, ["--rate", "0", "--threads", str(READ_CLIENTS), "--seconds",
                          str(seconds), "--gateway-paths-file", str(paths_file)], seconds + 60)


def run(root: Path, quick: bool = False) -> list[Figure]:
    n_submit = 2_000 if quick else 10_000
    read_s = 2.0 if quick else 5.0
    with Cluster(root / "nodes", n=1) as c:
        cfg = c.home(0) / "config.toml"
        text = cfg.read_text()
        assert "rate_per_s = 50.0" in text and "burst = 200\n" in text
        cfg.write_text(text.replace("rate_per_s = 50.0", "rate_per_s = 1000000.0")
                       .replace("burst = 200\n", "burst = 1000000\n"))
        c.start()
        net = c.genesis.network_id
        # one task set per phase, so no phase resubmits another's records
        tasks_a, one = make_tasks_and_annotations(net, n_submit // 4, tag="one", redundancy=4)
        tasks_b, many = make_tasks_and_annotations(net, n_submit, tag="many", task_seq=100,
                                                   redundancy=4)
        tasks_c, steady = make_tasks_and_annotations(
            net, int(INGEST_RATE * (read_s + 10)), tag="steady", task_seq=200, redundancy=4)
        rpc = RPC(c.home(0))
        rpc.submit_batch([t.data for t in tasks_a + tasks_b + tasks_c])
        rpc.close()
        single = submit(c.home(0), c.root, one, 1)
        grouped = submit(c.home(0), c.root, many, SUBMIT_CLIENTS)
        task = cid_to_str(tasks_c[0].cid)
        items = sorted({r.body.item for r in steady  # type: ignore[union-attr]
                        if r.body.task == tasks_c[0].cid})  # type: ignore[union-attr]
        pf = c.root / "gateway_paths.json"
        pf.write_text(json.dumps([f"/api/v1/tasks/{task}/items/{cid_to_str(i)}" for i in items]))
        idle = reads(c.home(0), pf, read_s)
        sent: dict[bytes, float] = {}
        errors: list[str] = []
        writer = threading.Thread(target=_paced_writer, args=(
            c.home(0), steady, INGEST_RATE, sent, errors))
        writer.start()
        try:
            busy = reads(c.home(0), pf, read_s)
        finally:
            writer.join(timeout=read_s + 30)
        ingested = len(sent)
    ms = 1000.0
    limit, lname = verify_limit()

    def m(x: float | None) -> float | None:
        return None if x is None else x * ms

    ok_submit = grouped["errors"] == 0 and grouped["ok"] == len(many)
    return [
        Figure("clients", f"record.submit, {SUBMIT_CLIENTS} clients, 1 record/request",
               grouped["rps"], "acked rec/s", single["rps"], "1 client, 1 record/request",
               "-", None if ok_submit else False,
               {"grouped": grouped, "single": single}, limit, lname),
        Figure("clients", "gateway item reads/s while ingesting 1,000 rec/s", busy["rps"],
               "req/s", idle["rps"], "idle node", "-", None,
               {"busy": busy, "idle": idle, "writer_errors": errors[:3],
                "ingested_during": ingested}),
        Figure("clients", "gateway item read p99 while ingesting 1,000 rec/s", m(busy["p99"]),
               "ms", m(idle["p99"]), "idle node p99", "-", None,
               {"p50_ms": m(busy["p50"]), "idle_p50_ms": m(idle["p50"])}),
    ]


if __name__ == "__main__":
    from tests.bench.common import main
    main(run)
