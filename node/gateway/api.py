"""The gateway's contract with the node: :class:`GatewayAPI` and its typed results.

The public gateway needs far less than the admin RPC, and nothing that signs
with the node's key or changes the node: read what the network already made
public, read content by CID, and admit records that someone else signed through
the same rules as gossip. This Protocol is that seam; :mod:`node.gateway.adapter`
implements it over a running node, and tests may implement it over anything.

Every result is a frozen value with ``to_json()``; failures raise a
:class:`GatewayError` carrying the HTTP status the gateway answers with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

JSONObject = dict[str, Any]


class GatewayError(Exception):
    """A request the gateway refuses; ``status`` is the HTTP status it answers with."""

    status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(GatewayError):
    status = 400


class NotFoundError(GatewayError):
    status = 404


class RejectedError(GatewayError):
    """A signed record failed admission (bad signature, wrong network, not a validator...)."""

    status = 422


class UnavailableError(GatewayError):
    status = 503


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list; ``next_cursor`` is None on the last page."""

    entries: tuple[JSONObject, ...]
    next_cursor: str | None

    def to_json(self, name: str) -> JSONObject:
        return {name: list(self.entries), "next_cursor": self.next_cursor}


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """What a browser needs to sign for this network."""

    network_id: str  # hex of the 32-byte id (the signer needs all of it)
    network: str
    node_peer_id: str
    validators: tuple[str, ...]

    def to_json(self) -> JSONObject:
        out = asdict(self)
        out["validators"] = list(self.validators)
        return out


@dataclass(frozen=True, slots=True)
class Health:
    """The node's public health: peers, sync state, counts."""

    peer_id: str
    version: str
    validator: bool
    peer_count: int
    peers: tuple[JSONObject, ...]
    record_count: int
    records_by_kind: JSONObject
    final_items: int
    authors: int
    ledger_root: str

    def to_json(self) -> JSONObject:
        out = asdict(self)
        out["peers"] = list(self.peers)
        return out


@dataclass(frozen=True, slots=True)
class ItemProgress:
    """One item of a task: counts, distribution, final value, agreement."""

    item: str
    content_type: str | None  # None until the item's first block is held here
    annotations: int
    labels: JSONObject  # label -> count
    final: str | None
    agreement_bps: int | None  # share of annotations equal to the final value, in 1/10,000
    status: str  # final | pending | short | expired

    def to_json(self) -> JSONObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """A task with its progress: the requester's view."""

    task: JSONObject  # the task's public fields (title, labels, items, redundancy, ...)
    final: int
    pending: int
    short: int
    expired: int
    label_counts: JSONObject
    top_annotators: tuple[JSONObject, ...]
    items: tuple[ItemProgress, ...] = field(default=())

    def to_json(self) -> JSONObject:
        return {**self.task, "progress": {"final": self.final, "pending": self.pending,
                                          "short": self.short, "expired": self.expired,
                                          "items": self.task.get("item_count", 0)},
                "label_counts": self.label_counts, "top_annotators": list(self.top_annotators),
                "item_progress": [i.to_json() for i in self.items]}


@dataclass(frozen=True, slots=True)
class NextItem:
    """The next item a given key should label, or none left."""

    task: str
    item: str | None
    content_type: str | None
    annotations: int
    redundancy: int
    remaining: int  # items of the task still open to this key

    def to_json(self) -> JSONObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Account:
    """One key's work and standing: the annotator's "my work"."""

    author: str
    labels_given: int
    items_final: int
    agreed: int
    disagreed: int
    reputation: int
    balance: int
    highest_seq: int  # the highest seq of this author's records held here (0: none)

    def to_json(self) -> JSONObject:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Content:
    """An item's bytes and the type the gateway will serve them as."""

    data: bytes
    content_type: str

    @property
    def is_media(self) -> bool:
        return self.content_type.split("/")[0] in ("image", "audio", "video", "text")


@dataclass(frozen=True, slots=True)
class Admitted:
    """What happened to a submitted record."""

    cid: str
    kind: str
    author: str
    seq: int
    new: bool
    annotations: int | None = None  # for an annotation: its item's count now
    redundancy: int | None = None

    def to_json(self) -> JSONObject:
        return asdict(self)


class GatewayAPI(Protocol):
    """Everything the public gateway may ask of a node; nothing here signs or configures."""

    async def network(self) -> NetworkInfo: ...

    async def health(self) -> Health: ...

    async def tasks(self, cursor: str | None, limit: int) -> Page: ...

    async def task(self, task: str, with_items: bool) -> TaskProgress: ...

    async def items(self, task: str, cursor: str | None, limit: int) -> Page: ...

    async def item(self, task: str, item: str) -> JSONObject: ...

    async def next_item(self, task: str, author: str, skip: tuple[str, ...]) -> NextItem: ...

    async def annotations(self, task: str | None, author: str | None,
                          cursor: str | None, limit: int) -> Page: ...

    async def certificate(self, task: str, item: str) -> JSONObject: ...

    async def tally(self, task: str) -> JSONObject: ...

    async def ledger(self) -> JSONObject: ...

    async def account(self, author: str) -> Account: ...

    async def content(self, cid: str, max_bytes: int) -> Content: ...

    async def submit(self, record: bytes) -> Admitted: ...
