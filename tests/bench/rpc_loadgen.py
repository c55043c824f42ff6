"""Open-loop HTTP load from a second process: request k is due at t0 + k/rate.

    python -m tests.bench.rpc_loadgen --home DIR --rate 500 --seconds 5 \
        --method item.get --params-file P.json      # JSON-RPC, params cycled
    python -m tests.bench.rpc_loadgen --home DIR --rate 500 --seconds 5 --healthz
    python -m tests.bench.rpc_loadgen --home DIR --rate 0 --seconds 5 --threads 16 \
        --gateway-paths-file P.json                 # public gateway GETs, closed loop
    python -m tests.bench.rpc_loadgen --home DIR --rate 0 --threads 32 \
        --submit-file R.json                        # each record once, one per request

``--rate 0`` is a closed loop: every thread sends its next request as soon as the
last is answered, for ``--seconds`` (or, with ``--submit-file``, until every
record was sent once).

Threads with one keep-alive connection each take the next due request, so a
slow reply delays later sends only when every thread is busy; latency is
measured from send to full reply (``latency``) and from the due time
(``latency_from_due``, which includes any such wait). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--method", default="item.get")
    ap.add_argument("--params-file")
    ap.add_argument("--healthz", action="store_true")
    ap.add_argument("--gateway-paths-file", help="JSON list of paths to GET on the gateway")
    ap.add_argument("--submit-file", help="JSON list of base64 records for record.submit")
    ap.add_argument("--max-s", type=float, default=0.0,
                    help="stop sending after this long (default 3 x seconds + 5): bounded")
    a = ap.parse_args()
    home = Path(a.home)
    url = (home / ("gateway.url" if a.gateway_paths_file else "rpc.url")).read_text().strip()
    token = (home / "rpc.token").read_text().strip()
    host, port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    params: list[Any] = json.loads(Path(a.params_file).read_text()) if a.params_file else [{}]
    method = a.method
    if a.submit_file:
        method = "record.submit"
        params = [{"record": r} for r in json.loads(Path(a.submit_file).read_text())]
    paths: list[str] = (json.loads(Path(a.gateway_paths_file).read_text())
                        if a.gateway_paths_file else [])
    closed = a.rate <= 0
    total = (len(params) if a.submit_file else 10**9) if closed else int(a.rate * a.seconds)
    bodies = [json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": p}).encode()
              for i, p in enumerate(params)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    counter = itertools.count()
    lock = threading.Lock()
    lat: list[float] = []
    lat_due: list[float] = []
    errors = [0]
    t0 = time.monotonic() + 0.2
    stop_at = t0 + (a.max_s or 3 * a.seconds + 5)
    if closed and not a.submit_file:
        stop_at = t0 + a.seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                k = next(counter)
            if k >= total or time.monotonic() > stop_at:
                break
            start = time.monotonic()
            due = start if closed else t0 + k / a.rate
            wait = due - start
            if wait > 0:
                time.sleep(wait)
                start = time.monotonic()
            try:
                if a.healthz:
                    conn.request("GET", "/healthz")
                elif paths:
                    conn.request("GET", paths[k % len(paths)])
                else:
                    conn.request("POST", "/rpc", bodies[k % len(bodies)], headers)
                resp = conn.getresponse()
                data = resp.read()
                ok = resp.status == 200 and (a.healthz or bool(paths)
                                             or b'"error"' not in data)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                ok = False
            end = time.monotonic()
            with lock:
                if ok:
                    lat.append(end - start)
                    lat_due.append(end - due)
                else:
                    errors[0] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if closed and not a.submit_file:
        total = len(lat) + errors[0]

    def q(xs: list[float], p: float) -> float | None:
        s = sorted(xs)
        return s[min(len(s) - 1, int(p * len(s)))] if s else None

    print(json.dumps({"requests": total, "ok": len(lat), "errors": errors[0],
                      "not_sent": total - len(lat) - errors[0],
                      "rps": len(lat) / elapsed, "offered_rps": a.rate or None,
                      "seconds": elapsed,
                      "p50": q(lat, 0.5), "p99": q(lat, 0.99),
                      "p50_from_due": q(lat_due, 0.5), "p99_from_due": q(lat_due, 0.99)}))


if __name__ == "__main__":
    main()
