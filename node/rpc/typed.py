"""A typed face for the RPC: one method per JSON-RPC method, returning its result type.

:class:`NodeClient` wraps anything with ``call(method, **params)`` — the admin
:class:`~node.rpc.client.SyncRPCClient`, or the public gateway's client that
``annot --api`` uses — so the CLI reads fields by the names in
:mod:`node.rpc.results`, checked by mypy, instead of guessing them.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from node.rpc.results import (
    AccountInfo,
    AnnotationPage,
    BlockData,
    BlockPut,
    CertificateInfo,
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


class Caller(Protocol):
    def call(self, method: str, /, **params: Any) -> Any: ...


class NodeClient:
    """Typed calls to one node (params as the route table in :mod:`node.rpc.routes`)."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller

    def node_status(self) -> NodeStatus:
        return cast(NodeStatus, self.caller.call("node.status"))

    def node_peers(self) -> NodePeers:
        return cast(NodePeers, self.caller.call("node.peers"))

    def record_submit(self, record_b64: str) -> RecordSubmitted:
        return cast(RecordSubmitted, self.caller.call("record.submit", record=record_b64))

    def task_create(self, **params: Any) -> TaskCreated:
        return cast(TaskCreated, self.caller.call("task.create", **params))

    def task_get(self, task: str) -> TaskInfo:
        return cast(TaskInfo, self.caller.call("task.get", task=task))

    def task_list(self, cursor: str | None = None, limit: int = 100) -> TaskPage:
        return cast(TaskPage, self.caller.call("task.list", cursor=cursor, limit=limit))

    def task_items(self, task: str, cursor: str | None = None, limit: int = 100) -> TaskItems:
        return cast(TaskItems, self.caller.call("task.items", task=task, cursor=cursor,
                                                limit=limit))

    def task_certificates(self, task: str, cursor: str | None = None, limit: int = 100
                          ) -> TaskCertificates:
        return cast(TaskCertificates, self.caller.call("task.certificates", task=task,
                                                       cursor=cursor, limit=limit))

    def annotation_create(self, task: str, item: str, label: str) -> Signed:
        return cast(Signed, self.caller.call("annotation.create", task=task, item=item,
                                             label=label))

    def annotation_list(self, **query: Any) -> AnnotationPage:
        return cast(AnnotationPage, self.caller.call("annotation.list", **query))

    def item_get(self, task: str, item: str) -> ItemInfo:
        return cast(ItemInfo, self.caller.call("item.get", task=task, item=item))

    def certificate_get(self, task: str, item: str) -> CertificateInfo:
        return cast(CertificateInfo, self.caller.call("certificate.get", task=task, item=item))

    def tally_get(self, task: str) -> TallyInfo:
        return cast(TallyInfo, self.caller.call("tally.get", task=task))

    def ledger_get(self) -> LedgerInfo:
        return cast(LedgerInfo, self.caller.call("ledger.get"))

    def evidence_list(self, cursor: str | None = None, limit: int = 100) -> EvidencePage:
        return cast(EvidencePage, self.caller.call("evidence.list", cursor=cursor,
                                                   limit=limit))

    def account_get(self, author: str) -> AccountInfo:
        return cast(AccountInfo, self.caller.call("account.get", author=author))

    def block_put(self, data_b64: str, codec: str = "raw") -> BlockPut:
        return cast(BlockPut, self.caller.call("block.put", data=data_b64, codec=codec))

    def block_get(self, cid: str) -> BlockData:
        return cast(BlockData, self.caller.call("block.get", cid=cid))

    def payout_epoch(self, epoch: int | None = None, task: str | None = None) -> PayoutEpoch:
        return cast(PayoutEpoch, self.caller.call("payout.epoch", epoch=epoch, task=task))
