"""``annot task status`` and ``annot task close|extend|cancel``.

Status reads a task's items, their certificates and annotations through the RPC
pages (``task.get``, ``task.items``, ``task.certificates``, ``annotation.list``)
and sorts every item into one of four counts:

    final     a certificate with a label
    expired   a certificate with EXPIRED (closed short of annotations, or cancelled)
    pending   enough annotations, no certificate yet (consensus is on it)
    short     fewer annotations than the task's redundancy, no certificate

``pending`` and ``short`` items are the stuck ones, listed with their counts.
``--watch`` re-reads every interval until every item is final or expired.

Close, extend and cancel are ``task_update`` records (:mod:`protocol.lifecycle`)
signed by the requester's key: ``--key FILE`` signs here, like ``annot label
--key``; the node refuses an update not signed by the task's requester.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.core.home import load_key
from node.errors import HomeError
from protocol import cid as cidlib
from protocol.errors import ProtocolError
from protocol.records import EXPIRED, TaskUpdate, sign_record

Call = Callable[..., Any]
PAGE = 1000


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """Where a task's items stand on one node."""

    task: str
    title: str
    redundancy: int
    close_time: int | None
    items: int
    final: int
    expired: int
    pending: int
    short: int
    stuck: tuple[tuple[str, int], ...] = field(default=())  # (item, annotations), not final

    @property
    def done(self) -> bool:
        return self.final + self.expired == self.items

    def as_json(self) -> dict[str, Any]:
        return {"task": self.task, "title": self.title, "redundancy": self.redundancy,
                "close_time": self.close_time, "items": self.items, "final": self.final,
                "expired": self.expired, "pending": self.pending, "short": self.short,
                "done": self.done,
                "stuck": [{"item": i, "annotations": n} for i, n in self.stuck]}


def _pages(call: Call, method: str, key: str, **params: Any) -> list[Any]:
    out: list[Any] = []
    cursor = None
    while True:
        page = call(method, cursor=cursor, limit=PAGE, **params)
        out += page[key]
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def read_status(call: Call, task: str) -> TaskStatus:
    """The task's status from the node behind ``call`` (an RPC client's ``call``)."""
    info = call("task.get", task=task)
    items: list[str] = list(info.get("items") or [])
    if not items and info.get("items_dir"):
        items = sorted({row["item"] for row in _pages(call, "task.items", "items", task=task)})
    finals = {c["item"]: c["value"]
              for c in _pages(call, "task.certificates", "certificates", task=task)}
    counts: dict[str, int] = {}
    for a in _pages(call, "annotation.list", "annotations", task=task):
        counts[a["item"]] = counts.get(a["item"], 0) + 1
    redundancy = int(info["redundancy"])
    expired = sum(1 for i in items if finals.get(i) == EXPIRED)
    final = sum(1 for i in items if i in finals) - expired
    stuck = tuple((i, counts.get(i, 0)) for i in items if i not in finals)
    pending = sum(1 for _, n in stuck if n >= redundancy)
    return TaskStatus(task=task, title=str(info.get("title", "")), redundancy=redundancy,
                      close_time=info.get("close_time"), items=len(items), final=final,
                      expired=expired, pending=pending, short=len(stuck) - pending,
                      stuck=stuck)


def format_status(st: TaskStatus, show: int = 20) -> list[str]:
    """Human lines: the counts, then up to ``show`` stuck items."""
    lines = [f"task      {st.task}  {st.title}",
             f"items     {st.items}  (redundancy {st.redundancy}, close time "
             f"{st.close_time if st.close_time else 'none'})",
             f"final     {st.final}", f"expired   {st.expired}",
             f"pending   {st.pending}  (enough labels, not final yet)",
             f"short     {st.short}  (fewer than {st.redundancy} labels)"]
    if st.stuck:
        lines.append("stuck items (item, labels):")
        lines += [f"  {item}  {n}/{st.redundancy}" for item, n in st.stuck[:show]]
        if len(st.stuck) > show:
            lines.append(f"  … and {len(st.stuck) - show} more (--json lists all)")
    return lines


def sign_task_update(key_path: Path, network_id_hex: str, seq: int, task: str, action: str,
                     close_time: int = 0) -> bytes:
    """Sign a close/extend/cancel of ``task`` with a local key; return the record bytes."""
    key = load_key(key_path)
    try:
        body = TaskUpdate(task=cidlib.cid_from_str(task), action=action, close_time=close_time)
        return sign_record(bytes.fromhex(network_id_hex), key, seq, body).data
    except ProtocolError as exc:
        raise HomeError(f"cannot sign the task update: {exc}") from None
