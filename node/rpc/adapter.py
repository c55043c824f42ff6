"""The node's implementation of the RPC contract (:class:`node.rpc.api.NodeAPI`).

Each method turns validated params into store queries or signed records and
returns JSON-able values; failures are RPC errors with stable codes.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from typing import Any

import node
from node.consensus.service import ConsensusService
from node.content.blockstore import BlockStoreError, BlockWriteError
from node.content.items import DirectoryUnavailable, expand_task, walk_directory
from node.content.router import Content
from node.core.local import Node
from node.errors import NodeError, StoreError
from node.gateway.config import read_gateway_url
from node.p2p import P2PNode
from node.rpc.api import (
    AnnotationQuery,
    CertificateView,
    InvalidParamsError,
    NotFoundError,
    RecordRejectedError,
    TaskSpec,
    UnavailableError,
)
from node.rpc.payout_view import payout_epoch
from node.rpc.results import (
    AccountInfo,
    AnnotationInfo,
    AnnotationPage,
    EvidenceInfo,
    EvidencePage,
    ItemInfo,
    LedgerInfo,
    NodePeers,
    NodeStatus,
    PayoutEpoch,
    PeerSync,
    RecordSubmitted,
    Signed,
    TallyInfo,
    TaskCertificates,
    TaskCreated,
    TaskInfo,
    TaskItem,
    TaskItems,
    TaskPage,
    TaskSummary,
)
from node.store.db import Saved, StoredAnnotation
from protocol import cid as cidlib
from protocol.certificate import build_certificate, decode_certificate, encode_certificate
from protocol.encoding import Limits
from protocol.errors import ProtocolError
from protocol.keys import peer_id_from_public_key, public_key_from_peer_id
from protocol.ledger import build_ledger, ledger_root
from protocol.records import Annotation, Task, decode_record
from protocol.tally import decode_tally

TASK_CACHE = 64
CERT_LIMITS = Limits(max_bytes=16 << 20)
CODECS = {"raw": cidlib.RAW, "dag-pb": cidlib.DAG_PB}


def _cid(s: str) -> bytes:
    try:
        return cidlib.cid_from_str(s)
    except ProtocolError as exc:
        raise InvalidParamsError("cid", str(exc)) from None


def _pid(key: bytes) -> str:
    return peer_id_from_public_key(key)


def _cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    # str.isdigit() accepts "²" and other non-ASCII digits; a 400-digit offset
    # overflows SQLite's integer. Both are bad params, not internal errors.
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
        raise InvalidParamsError("cursor", f"not a cursor returned by this node: {cursor[:40]!r}")
    return int(cursor)


def _annotation_json(a: StoredAnnotation) -> AnnotationInfo:
    return {"cid": cidlib.cid_to_str(a.cid), "author": _pid(a.author), "seq": a.seq,
            "task": cidlib.cid_to_str(a.task), "item": cidlib.cid_to_str(a.item),
            "label": a.label}


def task_json(task_id: bytes, requester: bytes, t: Task, items_final: int,
              tally_root: bytes | None) -> TaskInfo:
    return {
        "task": cidlib.cid_to_str(task_id), "requester": _pid(requester), "title": t.title,
        "labels": list(t.labels),
        # a directory task's items are listed by task.items, with their paths
        "items": [cidlib.cid_to_str(i) for i in t.items] if t.items_dir is None else [],
        "items_dir": cidlib.cid_to_str(t.items_dir) if t.items_dir is not None else None,
        "item_count": t.item_count or len(t.items),
        "redundancy": t.redundancy, "reward_per_item": t.reward_per_item,
        "validator_share_bps": t.validator_share_bps, "close_time": t.close_time or None,
        "allow": [_pid(a) for a in t.allow], "rule": t.rule,
        "instructions": cidlib.cid_to_str(t.instructions) if t.instructions else None,
        "items_final": items_final,
        "complete": items_final == (t.item_count or len(t.items)),
        "tally_root": tally_root.hex() if tally_root is not None else None,
    }


class NodeRPC:
    """``NodeAPI`` over a running node: its offline core, p2p stack, consensus service
    and content router, each handed over by the daemon."""

    def __init__(self, node: Node, p2p: P2PNode, consensus: ConsensusService,
                 content: Content) -> None:
        self.node = node
        self.p2p = p2p
        self.consensus = consensus
        self.content = content
        # tasks are immutable records: decode each once (a task may list thousands of items)
        self._tasks: OrderedDict[bytes, tuple[bytes, Task, frozenset[bytes]]] = OrderedDict()

    # ---------------------------------------------------------------- helpers
    def _task_entry(self, task: str) -> tuple[bytes, bytes, Task, frozenset[bytes]]:
        tid = _cid(task)
        hit = self._tasks.get(tid)
        if hit is None:
            data = self.node.store.get(tid)
            if data is None:
                raise NotFoundError("task", task)
            rec = decode_record(data, self.node.genesis.network_id, verify=False)
            if not isinstance(rec.body, Task):
                raise NotFoundError("task", task)
            expanded = expand_task(self.node.store, rec)
            if expanded is None:  # a directory task not resolved (yet): no items, no cache
                return tid, rec.author, rec.body, frozenset()
            assert isinstance(expanded.body, Task)
            hit = (rec.author, expanded.body, frozenset(expanded.body.items))
            self._tasks[tid] = hit
            if len(self._tasks) > TASK_CACHE:
                self._tasks.popitem(last=False)
        else:
            self._tasks.move_to_end(tid)
        return tid, *hit

    def _load_task(self, task: str) -> tuple[bytes, bytes, Task]:
        tid, requester, t, _ = self._task_entry(task)
        return tid, requester, t

    def _sign(self, body: Any) -> Signed:
        try:
            rec = self.node.sign_own(body)
        except ProtocolError as exc:
            raise RecordRejectedError(str(exc)) from None
        except NodeError as exc:
            raise UnavailableError(str(exc)) from None
        return {"cid": rec.cid_str, "author": rec.author_id, "seq": rec.seq}

    # ---------------------------------------------------------------- node
    async def node_status(self) -> NodeStatus:
        n = self.node
        p2p = self.p2p
        return {
            "peer_id": n.peer_id, "network_id": n.genesis.network_id.hex(),
            "network": n.genesis.name, "version": node.__version__,
            "validator": n.is_validator,
            "peer_count": len(p2p.peers()),
            "record_count": n.store.count(), "records_by_kind": n.store.counts_by_kind(),
            "listen_addrs": p2p.listen_addrs(),
            "topics": list(p2p.topics),
            "final_items": n.store.final_count(),
            "ledger_root": ledger_root(self._ledger()).hex(),
            "gateway_url": read_gateway_url(n.home.root),
            "sync": self._sync_health(),
        }

    def _sync_health(self) -> list[PeerSync]:
        return [{"peer_id": h.peer, "connected": h.connected,
                 "records_behind": h.records_behind, "last_ok": h.last_ok,
                 "last_error": h.last_error, "last_error_at": h.last_error_at,
                 "banned_for_s": h.banned_for_s, "ban_reason": h.ban_reason}
                for h in self.p2p.sync_health()]

    async def node_peers(self) -> NodePeers:
        p2p = self.p2p
        validators = {v.peer_id for v in self.node.genesis.validators}
        return {"peers": [{"peer_id": p, "validator": p in validators,
                           "addrs": p2p.host.peer_addrs(p)} for p in p2p.peers()],
                "sync": self._sync_health()}

    # ---------------------------------------------------------------- records
    async def record_submit(self, record: bytes) -> RecordSubmitted:
        try:
            rec, saved = await self.node.ingest.submit_async(record)
        except ProtocolError as exc:
            raise RecordRejectedError(str(exc)) from None
        except StoreError as exc:  # full disk, read-only store: refused, nothing half-written
            raise UnavailableError(str(exc)) from None
        return {"cid": rec.cid_str, "kind": rec.kind, "author": rec.author_id, "seq": rec.seq,
                "new": saved is Saved.NEW, "fork": saved is Saved.FORK}

    async def _dir_item_count(self, items_dir: str, item_count: int | None) -> int:
        """Walk a new task's items directory (its blocks must be here) before signing."""
        async def fetch(c: bytes, timeout: float) -> bytes | None:
            try:
                return await self.block_get(cidlib.cid_to_str(c))
            except NotFoundError:
                return None
        try:
            files = await walk_directory(fetch, cidlib.cid_from_str(items_dir),
                                         self.node.genesis.params.max_dir_items)
        except (DirectoryUnavailable, ProtocolError) as exc:
            raise InvalidParamsError("items_dir", f"{items_dir}: {exc}") from None
        distinct = len({c for _, c in files})
        if item_count is not None and item_count != distinct:
            raise InvalidParamsError("item_count", f"the directory holds {distinct} distinct "
                                     f"files, not {item_count}")
        if not distinct:
            raise InvalidParamsError("items_dir", f"{items_dir} holds no files")
        return distinct

    async def task_create(self, spec: TaskSpec) -> TaskCreated:
        dir_items: dict[str, Any] = {}
        if spec.items_dir is not None:
            dir_items = {"items_dir": cidlib.cid_from_str(spec.items_dir),
                         "item_count": await self._dir_item_count(spec.items_dir,
                                                                  spec.item_count)}
        try:
            body = Task(
                title=spec.title, labels=spec.labels,
                items=tuple(cidlib.cid_from_str(i) for i in spec.items),
                redundancy=spec.redundancy, reward_per_item=spec.reward_per_item,
                validator_share_bps=spec.validator_share_bps,
                instructions=cidlib.cid_from_str(spec.instructions) if spec.instructions
                else None,
                allow=tuple(public_key_from_peer_id(a) for a in spec.allow),
                close_time=spec.close_time or 0, rule=spec.rule, **dir_items,
            )
        except ProtocolError as exc:
            raise InvalidParamsError("task", str(exc)) from None
        out = self._sign(body)
        return {"task": out["cid"], "seq": out["seq"], "requester": out["author"]}

    async def task_get(self, task: str) -> TaskInfo:
        tid, requester, t = self._load_task(task)
        tally = self.node.store.tally(tid)
        return task_json(tid, requester, t, self.node.store.final_count(tid),
                         tally[0] if tally else None)

    async def task_list(self, cursor: str | None, limit: int) -> TaskPage:
        rows = self.node.store.page_of_kind("task", _cursor(cursor), limit)
        tasks: list[TaskSummary] = []
        for _, data in rows:
            rec = decode_record(data, self.node.genesis.network_id, verify=False)
            assert isinstance(rec.body, Task)
            t = rec.body
            tasks.append({"task": rec.cid_str, "title": t.title, "requester": rec.author_id,
                          "item_count": t.item_count or len(t.items),
                          "items_final": self.node.store.final_count(rec.cid)})
        nxt = str(rows[-1][0]) if len(rows) == limit else None
        return {"tasks": tasks, "next_cursor": nxt}

    async def task_items(self, task: str, cursor: str | None, limit: int) -> TaskItems:
        """A task's items with their paths: a directory task's files in path order (a
        path cursor), or an inline task's items (an index cursor, no paths)."""
        tid, _, t, _ = self._task_entry(task)
        state = self.node.store.task_dir(tid) if t.items_dir is not None else None
        if t.items_dir is None:
            start = _cursor(cursor)
            page: list[TaskItem] = [{"item": cidlib.cid_to_str(i), "path": None}
                                    for i in t.items[start:start + limit]]
            nxt = str(start + limit) if start + limit < len(t.items) else None
            return {"task": task, "items": page, "next_cursor": nxt, "resolved": True,
                    "error": None}
        rows = self.node.store.task_item_page(tid, cursor or "", limit)
        return {"task": task, "resolved": state is not None and state[0] == "resolved",
                "error": state[2] if state else None,
                "items": [{"item": cidlib.cid_to_str(i), "path": p} for p, i in rows],
                "next_cursor": rows[-1][0] if len(rows) == limit else None}

    async def task_certificates(self, task: str, cursor: str | None, limit: int
                                ) -> TaskCertificates:
        """A task's final items with the ids of the precommit records that prove each
        (fetch those with block.get): an export pages through them."""
        tid, _, _, _ = self._task_entry(task)
        after = _cid(cursor) if cursor else b""
        rows = self.node.store.certificate_page(tid, after, limit)
        return {"task": task, "certificates": [
            {"item": cidlib.cid_to_str(i), "value": v, "round": r,
             "votes": [cidlib.cid_to_str(ref) for ref in refs]} for i, v, r, refs in rows],
            "next_cursor": cidlib.cid_to_str(rows[-1][0]) if len(rows) == limit else None}

    async def annotation_create(self, task: str, item: str, label: str) -> Signed:
        tid, _, t, items = self._task_entry(task)
        iid = _cid(item)
        if iid not in items:
            raise InvalidParamsError("item", f"{item} is not an item of task {task}")
        if label not in t.labels:
            raise InvalidParamsError("label", f"{label!r} is not one of {', '.join(t.labels)}")
        try:  # a closed task takes no more labels: refused before the node signs one
            self.node.ingest.task_rules.check_open_now(tid)
        except ProtocolError as exc:
            raise RecordRejectedError(str(exc)) from None
        return self._sign(Annotation(task=tid, item=iid, label=label))

    async def annotation_list(self, query: AnnotationQuery) -> AnnotationPage:
        offset = _cursor(query.cursor)
        author = public_key_from_peer_id(query.author) if query.author else None
        rows = self.node.store.annotations_page(
            _cid(query.task) if query.task else None, _cid(query.item) if query.item else None,
            author, offset, query.limit)
        nxt = str(offset + len(rows)) if len(rows) == query.limit else None
        return {"annotations": [_annotation_json(a) for a in rows], "next_cursor": nxt}

    # ---------------------------------------------------------------- consensus
    async def item_get(self, task: str, item: str) -> ItemInfo:
        tid, _, t, items = self._task_entry(task)
        iid = _cid(item)
        if iid not in items:
            raise NotFoundError("item", f"{item} in task {task}")
        cert = self.node.store.certificate(tid, iid)
        state = self.consensus.item_state(tid, iid)
        return {
            "task": task, "item": item, "paths": self.node.store.item_paths(tid, iid),
            "annotations": [_annotation_json(a) for a in self.node.store.annotations(tid, iid)],
            "redundancy": t.redundancy, "round": state.round, "phase": state.phase,
            "proposal": state.proposal, "locked": state.locked,
            "final": cert[0] if cert else None,
            "final_round": cert[1] if cert else None,
            "certificate": cidlib.cid_str(self._certificate_bytes(tid, iid)) if cert else None,
        }

    def _certificate_bytes(self, tid: bytes, iid: bytes) -> bytes:
        cert = self.node.store.certificate(tid, iid)
        if cert is None:
            raise NotFoundError("certificate", f"{cidlib.cid_to_str(tid)}/{cidlib.cid_to_str(iid)}")
        value, rnd, refs = cert
        votes = self.node.store.certificate_votes(refs)
        return encode_certificate(build_certificate(tid, iid, value, rnd, votes))

    async def certificate_get(self, task: str, item: str) -> CertificateView:
        tid, iid = _cid(task), _cid(item)
        data = self._certificate_bytes(tid, iid)
        c = decode_certificate(data, CERT_LIMITS)
        signers = sorted(decode_record(v, self.node.genesis.network_id, verify=False).author_id
                         for v in c.votes)
        return CertificateView(data, {"task": task, "item": item, "value": c.value,
                                      "round": c.round, "signers": signers,
                                      "cid": cidlib.cid_str(data), "size": len(data)})

    def _ledger(self) -> Any:
        return build_ledger(decode_tally(d) for _, _, d in self.node.store.tallies())

    async def tally_get(self, task: str) -> TallyInfo:
        tid, _, _ = self._load_task(task)
        stored = self.node.store.tally(tid)
        votes = self.consensus.tally_state(tid)
        if stored is None:
            return {"task": task, "final": False, "root": None, "entries": [],
                    "votes": votes.votes, "quorum_root": votes.quorum_root,
                    "total": None, "requester": None}
        tally = decode_tally(stored[1])
        return {
            "task": task, "final": True, "root": stored[0].hex(), "total": tally.total,
            "requester": _pid(tally.requester),
            "entries": [{"account": _pid(e.account), "amount": e.amount, "agreed": e.agreed,
                         "disagreed": e.disagreed} for e in tally.entries],
            "votes": votes.votes, "quorum_root": votes.quorum_root,
        }

    async def ledger_get(self) -> LedgerInfo:
        ledger = self._ledger()
        accounts = sorted(ledger.accounts, key=lambda a: (-a.balance, a.key))
        return {
            "root": ledger_root(ledger).hex(),
            "tallies": len(self.node.store.tallies()),
            "accounts": [{"author": _pid(a.key), "balance": a.balance, "earned": a.earned,
                          "paid": a.paid, "agreed": a.agreed, "disagreed": a.disagreed,
                          "reputation": a.reputation} for a in accounts],
        }

    async def evidence_list(self, cursor: str | None, limit: int) -> EvidencePage:
        rows = self.node.store.evidence(_cursor(cursor), limit)
        out: list[EvidenceInfo] = []
        for i, kind, a, b in rows:
            ra = decode_record(a, self.node.genesis.network_id, verify=False)
            out.append({"id": i, "kind": kind, "author": ra.author_id, "seq": ra.seq,
                        "a": base64.b64encode(a).decode(), "b": base64.b64encode(b).decode()})
        nxt = str(rows[-1][0]) if len(rows) == limit else None
        return {"evidence": out, "next_cursor": nxt}

    async def account_get(self, author: str) -> AccountInfo:
        key = public_key_from_peer_id(author)
        ledger = self._ledger()
        acct = ledger.account(key)
        return {"author": author, "next_seq": self.node.store.next_seq(key),
                "clock": self.node.store.clock().get(key, 0),
                "balance": acct.balance, "reputation": acct.reputation,
                "agreed": acct.agreed, "disagreed": acct.disagreed}

    # ---------------------------------------------------------------- blocks
    async def block_put(self, data: bytes, codec: str) -> str:
        try:
            c = await self.content.put(data, CODECS[codec])
        except BlockWriteError as exc:  # the disk refused: the node, not the data, is at fault
            raise UnavailableError(str(exc)) from None
        except (BlockStoreError, ProtocolError) as exc:
            raise InvalidParamsError("data", str(exc)) from None
        return cidlib.cid_to_str(c)

    async def block_get(self, cid: str) -> bytes:
        c = _cid(cid)
        # a record is a block too (raw, named by its id): a local lookup, before peers
        data = self.node.store.get(c)
        if data is not None:
            return data
        try:
            data = await self.content.get(c)
        except BlockStoreError as exc:
            raise UnavailableError(str(exc)) from None
        if data is None:
            raise NotFoundError("block", cid)
        return data

    # ---------------------------------------------------------------- payouts
    async def payout_epoch(self, epoch: int | None, task: str | None) -> PayoutEpoch:
        if epoch is not None and task is not None:
            raise InvalidParamsError("task", "give 'epoch' or 'task', not both")
        return payout_epoch(self.node.store, self.node.genesis, epoch, task)
