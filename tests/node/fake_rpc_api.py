"""An in-memory NodeAPI for the RPC seam tests, and ways to serve it.

Not a node: it records the decoded arguments each method got and returns
canned results in the documented shapes, so the tests check the route table,
the envelope, the server and the client, not consensus.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

from node.rpc.api import (
    AnnotationQuery,
    CertificateView,
    NotFoundError,
    RecordRejectedError,
    TaskSpec,
)
from node.rpc.config import RPCConfig
from node.rpc.results import (
    AccountInfo,
    AnnotationPage,
    EvidencePage,
    ItemInfo,
    LedgerInfo,
    NodePeers,
    NodeStatus,
    PayoutEpoch,
    RecordSubmitted,
    Signed,
    TallyInfo,
    TaskCertificates,
    TaskCreated,
    TaskInfo,
    TaskItems,
    TaskPage,
)
from node.rpc.server import serve_rpc
from protocol.cid import DAG_PB, RAW, cid_str

PEER = "12D3KooWMUSCGALkQes1wq7wpewA2qRWngHVE8V4UstwGK6fiR9p"
PEER2 = "12D3KooWRXuXJSzFBZ5c8PpZVwTecW693PG1Qi7jwXvna3VwGQef"
TASK = cid_str(b"task-1")
ITEM = cid_str(b"item-1")
NETWORK_ID = "ab" * 32
METRICS = b"# TYPE annot_peers gauge\nannot_peers 2.0\n"


class FakeNodeAPI:
    """Implements node.rpc.api.NodeAPI with canned results typed as node.rpc.results;
    ``calls`` logs (method, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.blocks: dict[str, bytes] = {}
        self.tasks: dict[str, TaskSpec] = {}
        self.seq = 0

    def _log(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))

    async def node_status(self) -> NodeStatus:
        self._log("node_status")
        return {
            "peer_id": PEER, "network_id": NETWORK_ID, "network": "fakenet",
            "version": "0.1.0", "validator": True, "peer_count": 1, "record_count": 7,
            "records_by_kind": {"task": 1, "annotation": 6},
            "listen_addrs": [f"/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"],
            "topics": [f"/annot/{NETWORK_ID}/records/1"], "final_items": 0,
            "ledger_root": "00" * 32, "gateway_url": None,
            "sync": [{"peer_id": PEER2, "connected": True, "records_behind": 0,
                      "last_ok": 1.7e9, "last_error": None, "last_error_at": None,
                      "banned_for_s": None, "ban_reason": None}],
        }

    async def node_peers(self) -> NodePeers:
        self._log("node_peers")
        return {"peers": [{"peer_id": PEER2, "addrs": ["/ip4/10.0.0.2/tcp/4001"],
                           "validator": False}], "sync": []}

    async def record_submit(self, record: bytes) -> RecordSubmitted:
        self._log("record_submit", record)
        if record.startswith(b"bad"):
            raise RecordRejectedError("signature does not verify")
        self.seq += 1
        return {"cid": cid_str(record), "kind": "annotation", "author": PEER2, "seq": self.seq,
                "new": True, "fork": False}

    async def task_create(self, spec: TaskSpec) -> TaskCreated:
        self._log("task_create", spec)
        self.seq += 1
        task = cid_str(repr(spec).encode())
        self.tasks[task] = spec
        return {"task": task, "seq": self.seq, "requester": PEER}

    async def task_get(self, task: str) -> TaskInfo:
        self._log("task_get", task)
        if task != TASK:
            raise NotFoundError("task", task)
        return {"task": TASK, "requester": PEER, "title": "cats", "labels": ["cat", "dog"],
                "items": [ITEM], "items_dir": None, "item_count": 1, "redundancy": 3,
                "reward_per_item": 100, "validator_share_bps": 1000, "close_time": None,
                "allow": [], "rule": "majority", "instructions": None, "items_final": 0,
                "complete": False, "tally_root": None}

    async def task_certificates(self, task: str, cursor: str | None, limit: int
                                ) -> TaskCertificates:
        self._log("task_certificates", task, cursor, limit)
        return {"task": task, "next_cursor": None,
                "certificates": [{"item": ITEM, "value": "cat", "round": 0, "votes": [TASK]}]}

    async def task_items(self, task: str, cursor: str | None, limit: int) -> TaskItems:
        self._log("task_items", task, cursor, limit)
        return {"task": task, "resolved": True, "next_cursor": None, "error": None,
                "items": [{"item": ITEM, "path": "photos/cat.png"}]}

    async def task_list(self, cursor: str | None, limit: int) -> TaskPage:
        self._log("task_list", cursor, limit)
        return {"tasks": [{"task": TASK, "title": "cats", "requester": PEER, "item_count": 1,
                           "items_final": 0}], "next_cursor": None if cursor else "c2"}

    async def annotation_create(self, task: str, item: str, label: str) -> Signed:
        self._log("annotation_create", task, item, label)
        self.seq += 1
        return {"cid": cid_str(f"{task}{item}{label}".encode()), "author": PEER, "seq": self.seq}

    async def annotation_list(self, query: AnnotationQuery) -> AnnotationPage:
        self._log("annotation_list", query)
        return {"annotations": [{"cid": ITEM, "author": PEER, "seq": 1, "task": TASK,
                                 "item": ITEM, "label": "cat"}], "next_cursor": None}

    async def item_get(self, task: str, item: str) -> ItemInfo:
        self._log("item_get", task, item)
        return {"task": task, "item": item, "paths": ["photos/cat.png"], "redundancy": 3,
                "round": 0, "phase": "precommit", "proposal": "cat", "locked": "cat",
                "final": "cat", "final_round": 0, "certificate": ITEM,
                "annotations": [{"cid": ITEM, "author": PEER, "seq": 1, "task": task,
                                 "item": item, "label": "cat"}]}

    async def certificate_get(self, task: str, item: str) -> CertificateView:
        self._log("certificate_get", task, item)
        return CertificateView(b"\x93cert", {"task": task, "item": item, "value": "cat",
                                             "round": 0, "signers": [PEER],
                                             "cid": ITEM, "size": 5})

    async def tally_get(self, task: str) -> TallyInfo:
        self._log("tally_get", task)
        return {"task": task, "root": "00" * 32, "final": True, "total": 100,
                "requester": PEER2, "votes": {PEER: "00" * 32}, "quorum_root": "00" * 32,
                "entries": [{"account": PEER, "amount": 90, "agreed": 3, "disagreed": 0}]}

    async def ledger_get(self) -> LedgerInfo:
        self._log("ledger_get")
        return {"root": "11" * 32, "tallies": 1,
                "accounts": [{"author": PEER, "balance": 90, "earned": 90, "paid": 0,
                              "agreed": 3, "disagreed": 0, "reputation": 1000}]}

    async def evidence_list(self, cursor: str | None, limit: int) -> EvidencePage:
        self._log("evidence_list", cursor, limit)
        return {"evidence": [{"id": 1, "kind": "fork", "author": PEER2, "seq": 1,
                              "a": "AA==", "b": "AQ=="}], "next_cursor": None}

    async def account_get(self, author: str) -> AccountInfo:
        self._log("account_get", author)
        return {"author": author, "next_seq": 5, "clock": 4, "balance": 90,
                "reputation": 1000, "agreed": 3, "disagreed": 0}

    async def block_put(self, data: bytes, codec: str) -> str:
        self._log("block_put", data, codec)
        cid = cid_str(data, DAG_PB if codec == "dag-pb" else RAW)
        self.blocks[cid] = data
        return cid

    async def payout_epoch(self, epoch: int | None, task: str | None) -> PayoutEpoch:
        self._log("payout_epoch", epoch, task)
        return {"epoch": epoch or 1, "root": "0x" + "22" * 32, "tasks": [TASK],
                "file": '{"format":"standard-v1"}', "signers": [PEER], "signed_weight": 1,
                "total_weight": 1, "quorum": True}

    async def block_get(self, cid: str) -> bytes:
        self._log("block_get", cid)
        try:
            return self.blocks[cid]
        except KeyError:
            raise NotFoundError("block", cid) from None


@contextmanager
def serve_in_thread(
    api: FakeNodeAPI, home: Path, config: RPCConfig | None = None
) -> Iterator[str]:
    """Run serve_rpc in a thread with its own trio.run; yield its URL; stop it after."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            state["url"] = await nursery.start(
                serve_rpc, api, config or RPCConfig.for_tests(), home, lambda: METRICS
            )
            state["token"] = trio.lowlevel.current_trio_token()
            state["cancel"] = nursery.cancel_scope.cancel
            ready.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            state["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    if "error" in state:
        raise state["error"]
    try:
        yield state["url"]
    finally:
        trio.from_thread.run_sync(state["cancel"], trio_token=state["token"])
        thread.join(10)
