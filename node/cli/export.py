"""``annot export TASK -o DIR [--car FILE]``: a task's labels and their proofs, as files.

Everything comes from the node over RPC and is written to ``DIR``:

* ``task.bin`` — the signed task record, exact bytes (its CID is the task id);
* ``labels.jsonl`` / ``labels.csv`` — one row per item: item CID, path (the first, for
  a file that appears at several paths; ``paths`` lists them all), final label, round,
  vote share (the share of the item's annotations that agree with the final label),
  and each annotator's label;
* ``answers.csv`` — ``item,worker,label`` per annotation, the format ``annot aggregate``
  reads;
* ``certificates.jsonl`` — per final item: value, round and the ids of the precommit
  records that prove it; ``votes/<id>.bin`` holds each of those records once (many
  items share a vote batch), so every certificate is rebuilt exactly by
  :func:`protocol.certificate.build_certificate`;
* ``items.car`` — for a directory task, the blocks of its items directory, so the
  export can be checked offline (``annot verify-export``) without the items' content.

``--car FILE`` also writes one CARv1 file whose root is a UnixFS directory of all the
above plus ``items`` (the task's items directory with every item's blocks), which
``ipfs dag import`` accepts whole.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from node.cli.export_files import get_blocks, write_car, write_items_car
from node.rpc.client import RPCClient, read_home
from protocol.cid import cid_from_str, cid_to_str, verify_block
from protocol.records import Task, decode_record

PAGE = 1000


@dataclass(slots=True)
class Export:
    """What an export gathers before it writes."""

    task_id: str
    task_data: bytes
    task: Task
    items: list[str]  # item CIDs in order of first path
    paths: dict[str, list[str]]  # item -> paths (empty for an inline task)
    certificates: dict[str, dict[str, Any]] = field(default_factory=dict)
    votes: dict[str, bytes] = field(default_factory=dict)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)  # item -> worker


async def _pages(client: RPCClient, method: str, key: str, **params: Any) -> list[Any]:
    out: list[Any] = []
    cursor = None
    while True:
        page = await client.call(method, **params, cursor=cursor, limit=PAGE)
        out += page[key]
        cursor = page.get("next_cursor")
        if cursor is None:
            return out


async def _blocks(client: RPCClient, cids: list[str]) -> dict[str, bytes]:
    got = await get_blocks(client, [cid_from_str(c) for c in cids])
    return {cid_to_str(c): verified(c, d) for c, d in got.items()}


def verified(cid: bytes, data: bytes) -> bytes:
    verify_block(cid, data)
    return data


async def gather(client: RPCClient, task_id: str, say: Callable[[str], None]) -> Export:
    """Fetch the task record, items, certificates, votes and annotations of a task."""
    network_id = bytes.fromhex((await client.call("node.status"))["network_id"])
    data = (await _blocks(client, [task_id]))[task_id]
    record = decode_record(data, network_id)
    if not isinstance(record.body, Task) or record.cid_str != task_id:
        raise ValueError(f"{task_id} is not a task record")
    task = record.body
    paths: dict[str, list[str]] = {}
    if task.items_dir is not None:
        page = await client.call("task.items", task=task_id, limit=1)
        if not page["resolved"]:
            raise ValueError(f"the node has not resolved the items directory of {task_id} "
                             f"yet{': ' + page['error'] if page.get('error') else ''}")
        for row in await _pages(client, "task.items", "items", task=task_id):
            paths.setdefault(row["item"], []).append(row["path"])
        items = list(paths)
    else:
        items = [cid_to_str(i) for i in task.items]
    say(f"task {task_id}: {len(items):,} items")
    out = Export(task_id, data, task, items, paths)
    for cert in await _pages(client, "task.certificates", "certificates", task=task_id):
        out.certificates[cert["item"]] = cert
    needed = sorted({v for c in out.certificates.values() for v in c["votes"]})
    out.votes = await _blocks(client, needed)
    say(f"{len(out.certificates):,} certificates over {len(needed):,} vote records")
    for a in await _pages(client, "annotation.list", "annotations", task=task_id):
        out.annotations.setdefault(a["item"], {})[a["author"]] = a["label"]
    return out


def label_rows(ex: Export) -> list[dict[str, Any]]:
    """One row per item: item, path, paths, label, round, vote share, annotations."""
    rows = []
    for item in ex.items:
        cert = ex.certificates.get(item)
        votes = ex.annotations.get(item, {})
        label = cert["value"] if cert else None
        share = (round(sum(1 for v in votes.values() if v == label) / len(votes), 4)
                 if votes and label is not None else None)
        paths = ex.paths.get(item, [])
        rows.append({
            "item": item, "path": paths[0] if paths else None, "paths": paths,
            "label": label, "round": cert["round"] if cert else None, "vote_share": share,
            "annotations": [{"worker": w, "label": lab} for w, lab in sorted(votes.items())],
        })
    return rows


def write_export(ex: Export, out: Path) -> list[dict[str, Any]]:
    """Write the export folder; return the label rows."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "task.bin").write_bytes(ex.task_data)
    rows = label_rows(ex)
    with (out / "labels.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    workers = sorted({w for v in ex.annotations.values() for w in v})
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["item", "path", "label", "round", "vote_share", *workers])
        for row in rows:
            by = {a["worker"]: a["label"] for a in row["annotations"]}
            w.writerow([row["item"], row["path"] or "", row["label"] or "",
                        "" if row["round"] is None else row["round"],
                        "" if row["vote_share"] is None else row["vote_share"],
                        *(by.get(k, "") for k in workers)])
    with (out / "answers.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["item", "worker", "label"])
        for item in ex.items:
            for worker, label in sorted(ex.annotations.get(item, {}).items()):
                w.writerow([item, worker, label])
    with (out / "certificates.jsonl").open("w", encoding="utf-8") as f:
        for item in ex.items:
            if item in ex.certificates:
                c = ex.certificates[item]
                f.write(json.dumps({"item": item, "round": c["round"], "value": c["value"],
                                    "votes": sorted(c["votes"])}, sort_keys=True) + "\n")
    (out / "votes").mkdir(exist_ok=True)
    for cid, data in ex.votes.items():
        (out / "votes" / f"{cid}.bin").write_bytes(data)
    return rows


def export_task(home: Path, task_id: str, out: Path, car: Path | None,
                say: Callable[[str], None]) -> dict[str, Any]:
    """Run an export against the node at ``home``; return a summary."""
    cid_from_str(task_id)

    async def run() -> dict[str, Any]:
        async with RPCClient(*read_home(home), timeout=300.0) as client:
            ex = await gather(client, task_id, say)
            rows = write_export(ex, out)
            if ex.task.items_dir is not None:
                await write_items_car(client, ex.task.items_dir, out / "items.car")
            root = None
            if car is not None:
                root = await write_car(client, ex.task, out, car, say)
            return {"task": task_id, "items": len(ex.items),
                    "final": sum(1 for r in rows if r["label"] is not None),
                    "certificates": len(ex.certificates), "votes": len(ex.votes),
                    "folder": str(out), "car": str(car) if car else None, "car_root": root}

    return trio.run(run)
