"""The CLI's way to a node it is not running beside: ``annot --api URL`` (env ``ANNOT_API``).

:class:`GatewayClient` answers the CLI's read calls and ``record.submit`` from
any node's public gateway, without the admin token, in the shapes the JSON-RPC
methods have (so the CLI prints them the same). Calls that need the node's
authority (``task.create``, ``annotation.create`` without ``--key``,
``block.put``...) are refused with a message saying so.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

from node.errors import NodeError

TIMEOUT_S = 30.0


class GatewayClientError(NodeError):
    """The gateway refused a call, or cannot be reached."""


class GatewayClient:
    """Synchronous calls to one gateway URL (``http://host:port``)."""

    def __init__(self, url: str, timeout: float = TIMEOUT_S) -> None:
        if not url.startswith(("http://", "https://")):
            raise GatewayClientError(f"--api {url!r}: expected http://host:port")
        self.url = url.rstrip("/")
        # idle connections dropped before the gateway's 5 s keep-alive ends them
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  limits=httpx.Limits(keepalive_expiry=2.0))

    def close(self) -> None:
        self._http.close()

    def _answer(self, res: httpx.Response) -> Any:
        try:
            body = res.json()
        except ValueError:
            body = None
        if res.status_code >= 400:
            why = body.get("error") if isinstance(body, dict) else res.text[:200]
            raise GatewayClientError(f"gateway {self.url}: HTTP {res.status_code}: {why}")
        return body

    def get(self, path: str, **params: Any) -> Any:
        q = {k: v for k, v in params.items() if v is not None}
        try:
            return self._answer(self._http.get(path, params=q))
        except httpx.HTTPError as exc:
            raise GatewayClientError(f"gateway {self.url} unreachable: {exc}") from None

    def submit(self, record: bytes) -> Any:
        try:
            return self._answer(self._http.post(
                "/api/v1/records", content=record,
                headers={"content-type": "application/octet-stream"}))
        except httpx.HTTPError as exc:
            raise GatewayClientError(f"gateway {self.url} unreachable: {exc}") from None

    def content(self, cid: str) -> bytes:
        try:
            res = self._http.get(f"/ipfs/{quote(cid)}")
        except httpx.HTTPError as exc:
            raise GatewayClientError(f"gateway {self.url} unreachable: {exc}") from None
        if res.status_code >= 400:
            self._answer(res)
        return res.content

    def call(self, method: str, **p: Any) -> Any:
        """One JSON-RPC method, answered from the gateway's public routes."""
        t, i = quote(str(p.get("task", ""))), quote(str(p.get("item", "")))
        if method == "node.status":
            health, net = self.get("/api/v1/health"), self.get("/api/v1/network")
            return {**health, "network_id": net["network_id"], "network": net["network"],
                    "gateway_url": self.url}
        if method == "node.peers":
            return {"peers": self.get("/api/v1/health")["peers"]}
        if method == "task.list":
            return self.get("/api/v1/tasks", cursor=p.get("cursor"), limit=p.get("limit"))
        if method == "task.get":
            task = self.get(f"/api/v1/tasks/{t}")
            progress = task.pop("progress")
            task.pop("item_progress", None)
            return {**task, "items_final": progress["final"],
                    "complete": progress["final"] + progress["expired"] == progress["items"]}
        if method == "item.get":
            return self.get(f"/api/v1/tasks/{t}/items/{i}")
        if method == "certificate.get":
            return self.get(f"/api/v1/tasks/{t}/items/{i}/certificate")
        if method == "tally.get":
            return self.get(f"/api/v1/tasks/{t}/tally")
        if method == "ledger.get":
            return self.get("/api/v1/ledger")
        if method == "account.get":
            acct = self.get(f"/api/v1/accounts/{quote(str(p['author']))}")
            return {**acct, "next_seq": acct["highest_seq"] + 1}
        if method == "annotation.list":
            return self.get("/api/v1/annotations", task=p.get("task"), author=p.get("author"),
                            cursor=p.get("cursor"), limit=p.get("limit"))
        if method == "record.submit":
            return self.submit(base64.b64decode(p["record"]))
        raise GatewayClientError(
            f"{method} needs the node's admin RPC (run it on the node's machine with --home); "
            f"the public gateway at {self.url} only reads and takes records you signed "
            "(annot --api URL label --key FILE ...)")
