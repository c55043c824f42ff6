"""The route table: every JSON-RPC method, its params and its result, in one place.

Params are given by name (an object) or by position (an array, in the order
listed). ``?`` marks an optional param; ``null`` means "not given". Bytes
travel as standard base64; CIDs are CIDv1 base32 (``bafk...``); peer ids are
``12D3KooW...``. List methods page with an opaque ``cursor``: pass back the
``next_cursor`` of the previous page (``null`` when there is no more).

method             params                                   result
-----------------  ---------------------------------------  ---------------------------------
node.status        {}                                       {peer_id, network_id, version,
                                                             validator: bool, peer_count,
                                                             record_count, listen_addrs:
                                                             [".../p2p/<peer id>"], topics}
node.peers         {}                                       {peers: [{peer_id, addrs,
                                                             validator: bool, ...}]}
record.submit      {record: base64}                         {cid, kind, author, seq,
                                                             new: bool}  (re-submitting the
                                                             same record is new=false)
task.create        {title, labels: [str], items: [cid],     {task: cid, seq}
                    redundancy, reward_per_item,
                    validator_share_bps, close_time?: unix
                    seconds, allow?: [peer id], rule?:
                    "majority"|"dawid-skene", instructions?:
                    cid, items_dir?: cid, item_count?}
                    (items, or a UnixFS directory whose
                    blocks the node holds: not both)
task.get           {task: cid}                              the task's fields + {task,
                                                             requester, items_final, ...}
task.list          {cursor?, limit?: 1..1000 = 100}         {tasks: [...], next_cursor}
task.items         {task: cid, cursor?, limit?}             {items: [{item, path}], resolved,
                                                             next_cursor}  (paths of a
                                                             directory task, in path order)
task.certificates  {task: cid, cursor?, limit?}             {certificates: [{item, value,
                                                             round, votes: [record cid]}],
                                                             next_cursor}  (vote records by
                                                             block.get; for export)
annotation.create  {task: cid, item: cid, label}            {cid, author, seq}
annotation.list    {task?, item?, author?, cursor?,         {annotations: [{cid, author, seq,
                    limit?}  (at least one of task, item,    task, item, label}],
                    author)                                  next_cursor}
item.get           {task: cid, item: cid}                   {task, item, annotations, round,
                                                             phase, final: value|null,
                                                             certificate: cid|null}
certificate.get    {task: cid, item: cid}                   {certificate: base64, task, item,
                                                             value, round, signers, ...}
tally.get          {task: cid}                              {task, root, final: bool, ...}
ledger.get         {}                                       {accounts: [{author, balance,
                                                             agreements, reputation}], ...}
evidence.list      {cursor?, limit?}                        {evidence: [...], next_cursor}
account.get        {author: peer id}                        {author, next_seq, reputation,
                                                             ...}
block.put          {data: base64, codec?: "raw"|"dag-pb"}   {cid, size}
block.get          {cid}                                    {cid, data: base64, size}  (a
                                                             record too: records are raw
                                                             blocks named by their id)
payout.epoch       {epoch?, task?}  (the latest without    {epoch, root, tasks, file: the
                    either)                                  claim file's JSON, signers,
                                                             signed_weight, total_weight,
                                                             quorum: bool}
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from node.rpc.api import (
    AnnotationQuery,
    InvalidParamsError,
    MethodNotFoundError,
    NodeAPI,
    TaskSpec,
)
from node.rpc.params import (
    Param,
    base64_bytes,
    bind,
    cid,
    integer,
    list_of,
    one_of,
    peer_id,
    string,
)

MAX_RECORD_BYTES = 256 * 1024
MAX_BLOCK_BYTES = 1024 * 1024  # the IPFS/bitswap block size ceiling
MAX_LIST = 100_000
MAX_U63 = 2**63 - 1

Handler = Callable[[NodeAPI, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    params: tuple[Param, ...] = ()


def _opt(name: str, check: Any, default: Any = None) -> Param:
    return Param(name, check, required=False, default=default)


TASK = Param("task", cid)
ITEM = Param("item", cid)
CURSOR = _opt("cursor", string(512))
LIMIT = _opt("limit", integer(1, 1000), 100)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


async def _task_create(api: NodeAPI, p: dict[str, Any]) -> Any:
    if bool(p["items"]) == (p["items_dir"] is not None):
        raise InvalidParamsError("items", "give 'items' (a list of CIDs) or 'items_dir' "
                                 "(a UnixFS directory CID), not both")
    if p["item_count"] is not None and p["items_dir"] is None:
        raise InvalidParamsError("item_count", "'item_count' goes with 'items_dir'")
    return await api.task_create(TaskSpec(**p))


async def _annotation_list(api: NodeAPI, p: dict[str, Any]) -> Any:
    if p["task"] is None and p["item"] is None and p["author"] is None:
        raise InvalidParamsError("task", "at least one of 'task', 'item', 'author' is required")
    return await api.annotation_list(AnnotationQuery(**p))


async def _certificate_get(api: NodeAPI, p: dict[str, Any]) -> Any:
    view = await api.certificate_get(p["task"], p["item"])
    return {**view.summary, "certificate": _b64(view.encoded)}


async def _block_put(api: NodeAPI, p: dict[str, Any]) -> Any:
    return {"cid": await api.block_put(p["data"], p["codec"]), "size": len(p["data"])}


async def _block_get(api: NodeAPI, p: dict[str, Any]) -> Any:
    data = await api.block_get(p["cid"])
    return {"cid": p["cid"], "data": _b64(data), "size": len(data)}


ROUTES: dict[str, Route] = {
    "node.status": Route(lambda api, p: api.node_status()),
    "node.peers": Route(lambda api, p: api.node_peers()),
    "record.submit": Route(
        lambda api, p: api.record_submit(p["record"]),
        (Param("record", base64_bytes(MAX_RECORD_BYTES)),),
    ),
    "task.create": Route(
        _task_create,
        (
            Param("title", string(1024)),
            Param("labels", list_of(string(256), 1024, min_len=1, unique=True)),
            _opt("items", list_of(cid, MAX_LIST, unique=True), ()),
            Param("redundancy", integer(1, 1000)),
            Param("reward_per_item", integer(0, MAX_U63)),
            Param("validator_share_bps", integer(0, 10_000)),
            _opt("close_time", integer(0, MAX_U63)),
            _opt("allow", list_of(peer_id, MAX_LIST, unique=True), ()),
            _opt("rule", one_of("majority", "dawid-skene"), "majority"),
            _opt("instructions", cid),
            _opt("items_dir", cid),
            _opt("item_count", integer(1, 10_000_000)),
        ),
    ),
    "task.get": Route(lambda api, p: api.task_get(p["task"]), (TASK,)),
    "task.list": Route(lambda api, p: api.task_list(p["cursor"], p["limit"]), (CURSOR, LIMIT)),
    "task.items": Route(lambda api, p: api.task_items(p["task"], p["cursor"], p["limit"]),
                        (TASK, _opt("cursor", string(4096)), LIMIT)),
    "task.certificates": Route(
        lambda api, p: api.task_certificates(p["task"], p["cursor"], p["limit"]),
        (TASK, CURSOR, LIMIT)),
    "annotation.create": Route(
        lambda api, p: api.annotation_create(p["task"], p["item"], p["label"]),
        (TASK, ITEM, Param("label", string(256))),
    ),
    "annotation.list": Route(
        _annotation_list,
        (_opt("task", cid), _opt("item", cid), _opt("author", peer_id), CURSOR, LIMIT),
    ),
    "item.get": Route(lambda api, p: api.item_get(p["task"], p["item"]), (TASK, ITEM)),
    "certificate.get": Route(_certificate_get, (TASK, ITEM)),
    "tally.get": Route(lambda api, p: api.tally_get(p["task"]), (TASK,)),
    "ledger.get": Route(lambda api, p: api.ledger_get()),
    "evidence.list": Route(
        lambda api, p: api.evidence_list(p["cursor"], p["limit"]), (CURSOR, LIMIT)
    ),
    "account.get": Route(lambda api, p: api.account_get(p["author"]), (Param("author", peer_id),)),
    "block.put": Route(
        _block_put,
        (
            Param("data", base64_bytes(MAX_BLOCK_BYTES)),
            _opt("codec", one_of("raw", "dag-pb"), "raw"),
        ),
    ),
    "block.get": Route(_block_get, (Param("cid", cid),)),
    "payout.epoch": Route(
        lambda api, p: api.payout_epoch(p["epoch"], p["task"]),
        (Param("epoch", integer(1, MAX_U63), required=False),
         Param("task", cid, required=False)),
    ),
}


async def call_method(api: NodeAPI, method: str, params: Any) -> Any:
    """Look up ``method``, check ``params`` against its spec and run it."""
    route = ROUTES.get(method)
    if route is None:
        raise MethodNotFoundError(method)
    return await route.handler(api, bind(method, route.params, params))
