"""The node's API contract, shared by the RPC server and (through it) the CLI.

:class:`NodeAPI` is the one narrow seam between the JSON-RPC layer and the
node: one async method per RPC method, with parameters already validated and
decoded (bytes, not base64; typed values, not raw dicts). Implementations
return JSON-able dicts and report failures by raising an :class:`RPCError`,
each kind with a stable JSON-RPC code:

    RPCError                          code    meaning
    ├── ParseError                   -32700  the body is not JSON
    ├── InvalidRequestError          -32600  not a JSON-RPC 2.0 request
    │   └── RequestTooLargeError     -32600  body over rpc.max_request_bytes (HTTP 413)
    ├── MethodNotFoundError          -32601  no such method
    ├── InvalidParamsError           -32602  a param is missing, unknown or malformed
    ├── InternalError                -32603  a bug or an unexpected failure
    ├── NotFoundError                -32001  no such task/item/block/...
    ├── RecordRejectedError          -32002  a record failed validation; message is why
    ├── ConflictError                -32003  duplicate or conflicting write (e.g. a fork)
    ├── UnavailableError             -32004  the node cannot serve this now (syncing, ...)
    └── UnauthorizedError            -32005  missing or wrong bearer token (HTTP 401)

Anything else an implementation raises becomes an ``InternalError`` and is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

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

JSONObject = dict[str, Any]


class RPCError(Exception):
    """Root of every error the RPC layer reports to a client."""

    code: ClassVar[int] = -32603

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_json(self) -> JSONObject:
        """The JSON-RPC ``error`` member for this error."""
        error: JSONObject = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class ParseError(RPCError):
    code = -32700


class InvalidRequestError(RPCError):
    code = -32600


class RequestTooLargeError(InvalidRequestError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"request body is {size} bytes, over the limit of {limit} bytes",
            {"size": size, "limit": limit},
        )


class MethodNotFoundError(RPCError):
    code = -32601

    def __init__(self, method: str) -> None:
        super().__init__(f"method not found: {method!r}", {"method": method})
        self.method = method


class InvalidParamsError(RPCError):
    code = -32602

    def __init__(self, param: str, why: str) -> None:
        super().__init__(f"param {param!r}: {why}", {"param": param})
        self.param = param
        self.why = why


class InternalError(RPCError):
    code = -32603


class NotFoundError(RPCError):
    code = -32001

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} not found: {key}", {"what": what, "key": key})
        self.what = what
        self.key = key


class RecordRejectedError(RPCError):
    code = -32002

    def __init__(self, reason: str) -> None:
        super().__init__(f"record rejected: {reason}", {"reason": reason})
        self.reason = reason


class ConflictError(RPCError):
    code = -32003


class UnavailableError(RPCError):
    code = -32004


class UnauthorizedError(RPCError):
    code = -32005


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A validated ``task.create`` request; the node signs it as a task record."""

    title: str
    labels: tuple[str, ...]
    items: tuple[str, ...]
    redundancy: int
    reward_per_item: int
    validator_share_bps: int
    close_time: int | None = None
    allow: tuple[str, ...] = ()
    rule: str = "majority"
    instructions: str | None = None
    items_dir: str | None = None  # a UnixFS directory CID instead of ``items``
    item_count: int | None = None  # its distinct files (checked by the node if given)


@dataclass(frozen=True, slots=True)
class AnnotationQuery:
    """A validated ``annotation.list`` filter; at least one of task/item/author is set."""

    task: str | None = None
    item: str | None = None
    author: str | None = None
    cursor: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class CertificateView:
    """A finality certificate: its canonical bytes and a decoded JSON summary
    (``task``, ``item``, ``value``, ``round``, ``signers``, ...)."""

    encoded: bytes
    summary: JSONObject


class NodeAPI(Protocol):
    """What the RPC layer needs from a node; results are typed in :mod:`node.rpc.results`."""

    async def node_status(self) -> NodeStatus: ...

    async def node_peers(self) -> NodePeers: ...

    async def record_submit(self, record: bytes) -> RecordSubmitted: ...

    async def task_create(self, spec: TaskSpec) -> TaskCreated: ...

    async def task_get(self, task: str) -> TaskInfo: ...

    async def task_list(self, cursor: str | None, limit: int) -> TaskPage: ...

    async def task_items(self, task: str, cursor: str | None, limit: int) -> TaskItems: ...

    async def task_certificates(self, task: str, cursor: str | None, limit: int
                                ) -> TaskCertificates: ...

    async def annotation_create(self, task: str, item: str, label: str) -> Signed: ...

    async def annotation_list(self, query: AnnotationQuery) -> AnnotationPage: ...

    async def item_get(self, task: str, item: str) -> ItemInfo: ...

    async def certificate_get(self, task: str, item: str) -> CertificateView: ...

    async def tally_get(self, task: str) -> TallyInfo: ...

    async def ledger_get(self) -> LedgerInfo: ...

    async def evidence_list(self, cursor: str | None, limit: int) -> EvidencePage: ...

    async def account_get(self, author: str) -> AccountInfo: ...

    async def block_put(self, data: bytes, codec: str) -> str: ...

    async def block_get(self, cid: str) -> bytes: ...
    async def payout_epoch(self, epoch: int | None, task: str | None) -> PayoutEpoch: ...
