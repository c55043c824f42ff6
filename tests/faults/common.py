"""Helpers shared by the fault tests: a fast RPC client, pre-signed workloads.

``HTTPRPC`` keeps one HTTP connection per node (the harness's client opens a
new one per call, too slow for heavy ingest) and sends JSON-RPC batches, so
a test knows, per record, whether the node acknowledged it.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from node.rpc.config import TOKEN_FILE, URL_FILE
from protocol import cid as cidlib
from protocol.keys import SigningKey
from protocol.records import Annotation, Record, Task, sign_record

REQUESTER = SigningKey(b"\x51" * 32)
ANNOTATORS = [SigningKey(bytes([0x60 + i]) * 32) for i in range(4)]


class RPCFailure(Exception):
    """A JSON-RPC error answer (the call reached the node and was refused)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = str(error.get("message"))


class HTTPRPC:
    """JSON-RPC over one kept-alive HTTP connection to one node."""

    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.client = httpx.Client(base_url=url, timeout=timeout,
                                   headers={"Authorization": f"Bearer {token}"})
        self._id = 0

    @classmethod
    def from_home(cls, home: Path, timeout: float = 10.0) -> HTTPRPC:
        return cls((home / URL_FILE).read_text().strip(), (home / TOKEN_FILE).read_text().strip(),
                   timeout)

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, **params: Any) -> Any:
        self._id += 1
        r = self._post({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        out = r.json()
        if "error" in out:
            raise RPCFailure(out["error"])
        return out["result"]

    def submit_batch(self, records: list[bytes]) -> list[dict[str, Any] | RPCFailure]:
        """Submit records in one HTTP request; per record, its result or its error."""
        body = [{"jsonrpc": "2.0", "id": i, "method": "record.submit",
                 "params": {"record": base64.b64encode(d).decode()}}
                for i, d in enumerate(records)]
        r = self._post(body)
        out = sorted(r.json(), key=lambda x: x["id"])
        return [x["result"] if "result" in x else RPCFailure(x["error"]) for x in out]

    def _post(self, body: Any) -> httpx.Response:
        # hypercorn closes idle keep-alive connections after 5 s: a request sent just
        # then is dropped unanswered. Every call here is idempotent, so send it again.
        try:
            return self.client.post("/rpc", json=body)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return self.client.post("/rpc", json=body)

    def metrics(self) -> str:
        return self.client.get("/metrics").text


def rejected_counts(metrics_text: str) -> dict[str, float]:
    """``annot_records_rejected_total{reason=…}`` values from Prometheus text."""
    out: dict[str, float] = {}
    for m in re.finditer(r'^annot_records_rejected_total\{reason="([^"]*)"\}\s+(\S+)$',
                         metrics_text, re.M):
        out[m[1]] = float(m[2])
    return out


@dataclass
class Workload:
    """A task and every annotation it needs, signed ahead by client keys."""

    task: Record
    items: list[bytes]
    annotations: list[Record]


def make_workload(network_id: bytes, seq: int, items: int, labels: tuple[str, ...] = ("cat",
                  "dog"), redundancy: int = 3, tag: bytes = b"") -> Workload:
    """Task ``seq`` of the requester; annotations with the same ``seq`` per annotator.

    Each annotator labels every item of one task with one record per item, so
    annotator seqs run ``(seq-1)*items+1 …``: tasks must be made in seq order.
    """
    item_ids = [cidlib.cid_bytes(b"%s-task%d-item%d" % (tag, seq, i)) for i in range(items)]
    task = sign_record(network_id, REQUESTER, seq,
                       Task(f"crash {seq}", labels, tuple(item_ids), redundancy, 1000, 1000))
    anns = []
    for a, k in enumerate(ANNOTATORS[:redundancy]):
        for i, item in enumerate(item_ids):
            # two of three agree on most items; some items get a split vote
            label = labels[(i + (a == 2) * (i % 3 == 0)) % len(labels)]
            anns.append(sign_record(network_id, k, (seq - 1) * items + i + 1,
                                    Annotation(task.cid, item, label)))
    return Workload(task, item_ids, anns)
