"""``GatewayAPI`` over a node's parts: its store, ingest, genesis and block store.

Reads are store queries; the one write, :meth:`NodeGateway.submit`, hands the
bytes to ``Ingest.submit`` — decode, verify, network rules, save, publish: the
path a record from a peer takes. The adapter holds no key and has no way to
sign. Views of tasks (progress, the next item for a key, "my work") are in
:mod:`node.gateway.views`.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import node
from node.content.blockstore import BlockStore, BlockStoreError, MissingBlockError
from node.core.ingest import Ingest
from node.errors import StoreError
from node.gateway.api import (
    Account,
    Admitted,
    BadRequestError,
    Content,
    Health,
    JSONObject,
    NetworkInfo,
    NextItem,
    NotFoundError,
    Page,
    RejectedError,
    TaskProgress,
    UnavailableError,
)
from node.gateway.media import sniff
from node.gateway.views import TaskCache, account_view, next_item, task_progress
from node.store.db import Saved, Store
from protocol import cid as cidlib
from protocol.certificate import build_certificate, decode_certificate, encode_certificate
from protocol.encoding import Limits
from protocol.errors import ProtocolError
from protocol.genesis import Genesis
from protocol.keys import peer_id_from_public_key, public_key_from_peer_id
from protocol.ledger import build_ledger, ledger_root
from protocol.records import Annotation, Task, decode_record
from protocol.tally import decode_tally
from protocol.unixfs import read_file

CERT_LIMITS = Limits(max_bytes=16 << 20)
FETCH_ROUNDS = 64  # blocks fetched from peers for one item before giving up
Fetch = Callable[[bytes], Awaitable[bytes | None]]


def parse_cid(s: str, what: str = "cid") -> bytes:
    try:
        return cidlib.cid_from_str(s)
    except ProtocolError as exc:
        raise BadRequestError(f"{what} {s!r}: {exc}") from None


def parse_peer_id(s: str) -> bytes:
    try:
        return public_key_from_peer_id(s)
    except ProtocolError as exc:
        raise BadRequestError(str(exc)) from None


@dataclass
class NodeParts:
    """What the gateway reads from a running node (the daemon fills it in)."""

    store: Store
    ingest: Ingest
    genesis: Genesis
    blocks: BlockStore
    peer_id: str
    peers: Callable[[], list[str]]
    fetch: Fetch | None = None  # a block from peers/Kubo when not held here


class NodeGateway:
    """The gateway's view of one node."""

    def __init__(self, parts: NodeParts) -> None:
        self.p = parts
        self.tasks_cache = TaskCache(parts.store, parts.genesis.network_id)
        self._types: OrderedDict[bytes, str] = OrderedDict()

    # ------------------------------------------------------------ node
    async def network(self) -> NetworkInfo:
        g = self.p.genesis
        return NetworkInfo(g.network_id.hex(), g.name, self.p.peer_id,
                           tuple(v.peer_id for v in g.validators))

    async def health(self) -> Health:
        s = self.p.store
        validators = {v.peer_id for v in self.p.genesis.validators}
        peers = sorted(self.p.peers())
        ledger = build_ledger(decode_tally(d) for _, _, d in s.tallies())
        return Health(
            peer_id=self.p.peer_id, version=node.__version__,
            validator=self.p.peer_id in validators, peer_count=len(peers),
            peers=tuple({"peer_id": p, "validator": p in validators} for p in peers),
            record_count=s.count(), records_by_kind=s.counts_by_kind(),
            final_items=s.final_count(), authors=len(s.clock()),
            ledger_root=ledger_root(ledger).hex())

    # ------------------------------------------------------------ tasks
    async def tasks(self, cursor: str | None, limit: int) -> Page:
        after = _cursor(cursor)
        rows = self.p.store.page_of_kind("task", after, limit)
        out = []
        for _, data in rows:
            rec = decode_record(data, self.p.genesis.network_id, verify=False)
            assert isinstance(rec.body, Task)
            t = rec.body
            out.append({"task": rec.cid_str, "title": t.title, "requester": rec.author_id,
                        "labels": list(t.labels),
                        "items": t.item_count if t.items_dir is not None else len(t.items),
                        "redundancy": t.redundancy, "close_time": t.close_time or None,
                        "items_final": self.p.store.final_count(rec.cid)})
        return Page(tuple(out), str(rows[-1][0]) if len(rows) == limit else None)

    async def task(self, task: str, with_items: bool) -> TaskProgress:
        entry = self.tasks_cache.get(parse_cid(task, "task"))
        types = {i: self._local_type(i) for i in entry.item_list} if with_items else {}
        return task_progress(self.p.store, entry, with_items, types)

    async def items(self, task: str, cursor: str | None, limit: int) -> Page:
        entry = self.tasks_cache.get(parse_cid(task, "task"))
        start = _cursor(cursor)
        page = entry.item_list[start:start + limit]
        types = {i: self._local_type(i) for i in page}
        rows = task_progress(self.p.store, entry, True, types, start, limit).items
        more = start + limit < len(entry.item_list)
        return Page(tuple(r.to_json() for r in rows), str(start + limit) if more else None)

    async def next_item(self, task: str, author: str, skip: tuple[str, ...]) -> NextItem:
        entry = self.tasks_cache.get(parse_cid(task, "task"))
        got = next_item(self.p.store, entry, parse_peer_id(author),
                        frozenset(parse_cid(s, "skip") for s in skip))
        if got.item is None:
            return got
        iid = cidlib.cid_from_str(got.item)
        ctype = await self._content_type(iid)
        return NextItem(got.task, got.item, ctype, got.annotations, got.redundancy,
                        got.remaining)

    async def item(self, task: str, item: str) -> JSONObject:
        entry = self.tasks_cache.get(parse_cid(task, "task"))
        iid = parse_cid(item, "item")
        if iid not in entry.items:
            raise NotFoundError(f"item {item} is not in task {task}")
        cert = self.p.store.certificate(entry.tid, iid)
        return {"task": task, "item": item, "redundancy": entry.task.redundancy,
                "content_type": self._types.get(iid),
                "annotations": [{"author": peer_id_from_public_key(a.author), "label": a.label,
                                 "seq": a.seq, "cid": cidlib.cid_to_str(a.cid)}
                                for a in self.p.store.annotations(entry.tid, iid)],
                "final": cert[0] if cert else None, "final_round": cert[1] if cert else None}

    async def annotations(self, task: str | None, author: str | None, cursor: str | None,
                          limit: int) -> Page:
        offset = _cursor(cursor)
        rows = self.p.store.annotations_page(
            parse_cid(task, "task") if task else None, None,
            parse_peer_id(author) if author else None, offset, limit)
        out = tuple({"task": cidlib.cid_to_str(a.task), "item": cidlib.cid_to_str(a.item),
                     "author": peer_id_from_public_key(a.author), "label": a.label,
                     "seq": a.seq, "cid": cidlib.cid_to_str(a.cid)} for a in rows)
        return Page(out, str(offset + len(rows)) if len(rows) == limit else None)

    async def certificate(self, task: str, item: str) -> JSONObject:
        tid, iid = parse_cid(task, "task"), parse_cid(item, "item")
        cert = self.p.store.certificate(tid, iid)
        if cert is None:
            raise NotFoundError(f"no certificate for {task}/{item}: not final here")
        value, rnd, refs = cert
        data = encode_certificate(build_certificate(
            tid, iid, value, rnd, self.p.store.certificate_votes(refs)))
        c = decode_certificate(data, CERT_LIMITS)
        signers = sorted(decode_record(v, self.p.genesis.network_id, verify=False).author_id
                         for v in c.votes)
        return {"task": task, "item": item, "value": c.value, "round": c.round,
                "signers": signers, "cid": cidlib.cid_str(data), "size": len(data),
                "certificate": base64.b64encode(data).decode()}

    async def tally(self, task: str) -> JSONObject:
        entry = self.tasks_cache.get(parse_cid(task, "task"))
        stored = self.p.store.tally(entry.tid)
        if stored is None:
            return {"task": task, "final": False, "root": None, "entries": []}
        t = decode_tally(stored[1])
        return {"task": task, "final": True, "root": stored[0].hex(), "total": t.total,
                "entries": [{"account": peer_id_from_public_key(e.account), "amount": e.amount,
                             "agreed": e.agreed, "disagreed": e.disagreed} for e in t.entries]}

    async def ledger(self) -> JSONObject:
        tallies = self.p.store.tallies()
        ledger = build_ledger(decode_tally(d) for _, _, d in tallies)
        accounts = sorted(ledger.accounts, key=lambda a: (-a.balance, a.key))
        return {"root": ledger_root(ledger).hex(), "tallies": len(tallies),
                "accounts": [{"author": peer_id_from_public_key(a.key), "balance": a.balance,
                              "agreed": a.agreed, "disagreed": a.disagreed,
                              "reputation": a.reputation} for a in accounts[:500]]}

    async def account(self, author: str) -> Account:
        return account_view(self.p.store, parse_peer_id(author), author)

    # ------------------------------------------------------------ content
    async def _read(self, cid: bytes, max_bytes: int) -> bytes:
        for _ in range(FETCH_ROUNDS):
            try:
                chunks, size = [], 0
                for chunk in read_file(self.p.blocks.get_or_raise, cid):
                    size += len(chunk)
                    if size > max_bytes:
                        raise BadRequestError(f"content over {max_bytes} bytes: use annot cat")
                    chunks.append(chunk)
                return b"".join(chunks)
            except MissingBlockError as exc:
                got = await self.p.fetch(cidlib.cid_from_str(exc.cid)) if self.p.fetch else None
                if got is None:
                    raise NotFoundError(f"content {cidlib.cid_to_str(cid)} is not held by this "
                                        f"node or its peers ({exc})") from None
                self.p.blocks.put_block(exc.cid, got)
            except BlockStoreError as exc:
                raise UnavailableError(str(exc)) from None
            except ProtocolError as exc:
                raise BadRequestError(f"{cidlib.cid_to_str(cid)} is not a UnixFS file or raw "
                                      f"block: {exc}") from None
        raise UnavailableError(f"content {cidlib.cid_to_str(cid)}: too many missing blocks")

    async def content(self, cid: str, max_bytes: int) -> Content:
        c = parse_cid(cid)
        data = await self._read(c, max_bytes)
        ctype = sniff(data[:4096])
        self._remember(c, ctype)
        return Content(data, ctype)

    async def _content_type(self, cid: bytes) -> str | None:
        if cid not in self._types:
            try:
                await self.content(cidlib.cid_to_str(cid), 16 << 20)
            except (NotFoundError, BadRequestError, ProtocolError):
                return None
        return self._types.get(cid)

    def _local_type(self, cid: bytes) -> str | None:
        """The type of an item from its first chunk, if held here (never fetches)."""
        if cid not in self._types:
            try:
                first = next(read_file(self.p.blocks.get_or_raise, cid), b"")
            except (BlockStoreError, ProtocolError):
                return None
            self._remember(cid, sniff(first[:4096]))
        return self._types[cid]

    def _remember(self, cid: bytes, ctype: str) -> None:
        self._types[cid] = ctype
        while len(self._types) > 65536:
            self._types.popitem(last=False)

    # ------------------------------------------------------------ records
    async def submit(self, record: bytes) -> Admitted:
        try:
            peek = decode_record(record, self.p.genesis.network_id, self.p.ingest.limits,
                                 verify=False)
        except ProtocolError as exc:
            raise RejectedError(str(exc)) from None
        if peek.kind not in ("annotation", "task"):
            raise RejectedError(f"the gateway takes annotations and tasks, not {peek.kind} "
                                "records (validators gossip those)")
        if isinstance(peek.body, Annotation):
            entry = self.tasks_cache.get(peek.body.task)
            entry.check_annotation(peek.author, peek.body)
            for a in self.p.store.annotations(peek.body.task, peek.body.item):
                if a.author == peek.author and a.cid != peek.cid:
                    raise RejectedError(f"this key already labelled this item "
                                        f"({a.label!r}, seq {a.seq}); one label per key")
        try:
            rec, saved = await self.p.ingest.submit_async(record)
        except ProtocolError as exc:
            raise RejectedError(str(exc)) from None
        except StoreError as exc:
            raise UnavailableError(str(exc)) from None
        out = Admitted(rec.cid_str, rec.kind, rec.author_id, rec.seq, saved is Saved.NEW)
        if isinstance(rec.body, Annotation):
            n = self.p.store.annotation_count(rec.body.task, rec.body.item)
            entry = self.tasks_cache.get(rec.body.task)
            out = Admitted(out.cid, out.kind, out.author, out.seq, out.new, n,
                           entry.task.redundancy)
        return out


def _cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise BadRequestError("cursor: not a cursor returned by this gateway")
    return int(cursor)


__all__ = ["NodeGateway", "NodeParts"]
