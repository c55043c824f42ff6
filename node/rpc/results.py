"""One typed result per RPC method, shared by the server adapter, the test fake and the
typed client the CLI uses.

Each method's result is a ``TypedDict``: the JSON object on the wire, field for
field. ``RESULTS`` maps a method name to its type; :mod:`node.rpc.typed` wraps
the client so every call returns its type, and the tests check the real node's
and the fake's answers against these shapes (``tests/node/rpc_shapes.py``). A
field has one name and one type everywhere: a count is ``*_count``, a list of
CIDs is a list, a CID is ``cid`` when it names the thing itself and the kind's
name (``task``, ``item``) when it names another.
"""

from __future__ import annotations

from typing import TypedDict


class PeerSync(TypedDict):
    """One peer's sync health (``node.p2p.health.PeerSyncHealth``): records the last
    good session brought (how far behind it we were), its unix time, the last error
    since then, and a ban's time left and reason."""

    peer_id: str
    connected: bool
    records_behind: int
    last_ok: float | None
    last_error: str | None
    last_error_at: float | None
    banned_for_s: float | None
    ban_reason: str | None


class NodeStatus(TypedDict):
    peer_id: str
    network_id: str
    network: str
    version: str
    validator: bool
    peer_count: int
    record_count: int
    records_by_kind: dict[str, int]
    listen_addrs: list[str]
    topics: list[str]
    final_items: int
    ledger_root: str
    gateway_url: str | None
    sync: list[PeerSync]  # per peer: connected, recently synced or banned


class PeerInfo(TypedDict):
    peer_id: str
    validator: bool
    addrs: list[str]


class NodePeers(TypedDict):
    peers: list[PeerInfo]
    sync: list[PeerSync]  # also banned and recently gone peers


class RecordSubmitted(TypedDict):
    cid: str
    kind: str
    author: str
    seq: int
    new: bool
    fork: bool


class Signed(TypedDict):
    """A record the node signed with its own key."""

    cid: str
    author: str
    seq: int


class TaskCreated(TypedDict):
    task: str
    seq: int
    requester: str


class TaskInfo(TypedDict):
    task: str
    requester: str
    title: str
    labels: list[str]
    items: list[str]  # inline items; empty for a directory task (see task.items)
    items_dir: str | None
    item_count: int
    redundancy: int
    reward_per_item: int
    validator_share_bps: int
    close_time: int | None
    allow: list[str]
    rule: str
    instructions: str | None
    items_final: int
    complete: bool
    tally_root: str | None


class TaskSummary(TypedDict):
    task: str
    title: str
    requester: str
    item_count: int
    items_final: int


class TaskPage(TypedDict):
    tasks: list[TaskSummary]
    next_cursor: str | None


class TaskItem(TypedDict):
    item: str
    path: str | None


class TaskItems(TypedDict):
    task: str
    items: list[TaskItem]
    resolved: bool
    next_cursor: str | None
    error: str | None  # why a directory task's items could not be resolved yet


class CertificateRef(TypedDict):
    item: str
    value: str
    round: int
    votes: list[str]


class TaskCertificates(TypedDict):
    task: str
    certificates: list[CertificateRef]
    next_cursor: str | None


class AnnotationInfo(TypedDict):
    cid: str
    author: str
    seq: int
    task: str
    item: str
    label: str


class AnnotationPage(TypedDict):
    annotations: list[AnnotationInfo]
    next_cursor: str | None


class ItemInfo(TypedDict):
    task: str
    item: str
    paths: list[str]
    annotations: list[AnnotationInfo]
    redundancy: int
    round: int | None
    phase: str | None
    proposal: str | None
    locked: str | None
    final: str | None
    final_round: int | None
    certificate: str | None


class CertificateInfo(TypedDict):
    certificate: str  # base64 of the canonical certificate bytes
    cid: str
    size: int
    task: str
    item: str
    value: str
    round: int
    signers: list[str]


class TallyEntry(TypedDict):
    account: str
    amount: int
    agreed: int
    disagreed: int


class TallyInfo(TypedDict):
    task: str
    final: bool
    root: str | None
    entries: list[TallyEntry]
    votes: dict[str, str]  # validator peer id -> the tally root it signed last
    quorum_root: str | None
    total: int | None  # set once the tally is final
    requester: str | None


class AccountBalance(TypedDict):
    author: str
    balance: int
    earned: int
    paid: int
    agreed: int
    disagreed: int
    reputation: int


class LedgerInfo(TypedDict):
    root: str
    tallies: int
    accounts: list[AccountBalance]


class EvidenceInfo(TypedDict):
    id: int
    kind: str
    author: str
    seq: int
    a: str
    b: str


class EvidencePage(TypedDict):
    evidence: list[EvidenceInfo]
    next_cursor: str | None


class AccountInfo(TypedDict):
    author: str
    next_seq: int
    clock: int
    balance: int
    reputation: int
    agreed: int
    disagreed: int


class BlockPut(TypedDict):
    cid: str
    size: int


class BlockData(TypedDict):
    cid: str
    data: str  # base64
    size: int


class PayoutEpoch(TypedDict):
    epoch: int
    root: str  # 0x-hex, the StandardMerkleTree root a contract checks claims against
    tasks: list[str]
    file: str  # the claim file (OpenZeppelin standard-v1 dump plus proofs), JSON text
    signers: list[str]
    signed_weight: int
    total_weight: int
    quorum: bool


RESULTS: dict[str, type] = {
    "node.status": NodeStatus,
    "node.peers": NodePeers,
    "record.submit": RecordSubmitted,
    "task.create": TaskCreated,
    "task.get": TaskInfo,
    "task.list": TaskPage,
    "task.items": TaskItems,
    "task.certificates": TaskCertificates,
    "annotation.create": Signed,
    "annotation.list": AnnotationPage,
    "item.get": ItemInfo,
    "certificate.get": CertificateInfo,
    "tally.get": TallyInfo,
    "ledger.get": LedgerInfo,
    "evidence.list": EvidencePage,
    "account.get": AccountInfo,
    "block.put": BlockPut,
    "block.get": BlockData,
    "payout.epoch": PayoutEpoch,
}
