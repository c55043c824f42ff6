"""Hidden gold for the command line: what ``annot task create ... --gold FILE`` and
``annot task reveal TASK`` (:mod:`node.cli.gold_cmds`) do.

``--gold FILE`` is a CSV of ``item,answer`` rows (an optional ``item,answer`` header;
an item is a CID, or with ``--items-dir`` / ``--items-csv`` its path in the
directory). The CLI draws a 32-byte random salt per gold item, builds the task
with the salted commitments (:func:`protocol.gold.commit_gold`), signs it with the
node's key (``<home>/node.key``), keeps the salts and answers in a secrets file
(mode 0600, default ``<home>/gold/<task>.json``) *before* it submits the task,
and submits it. ``annot task reveal TASK`` opens every commitment from that file
with a ``gold_reveal`` record signed by the node's key or ``--key`` (the task's
requester), once the task is closed (its close time, or ``annot task close``).
"""

from __future__ import annotations

import base64
import csv
import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from node.cli.common import _client, _home

if TYPE_CHECKING:
    from protocol.records import Body, GoldReveal, Record

SECRETS_VERSION = 1


def read_gold_csv(path: Path, names: Mapping[str, str], items: frozenset[str],
                  labels: tuple[str, ...]) -> dict[str, str]:
    """item CID → gold label from ``path``; ``names`` maps a directory path to its CID,
    ``items`` are the task's item CIDs. Refuses an unknown item or label, or a repeat."""
    from protocol.cid import cid_from_str, cid_to_str
    from protocol.errors import ProtocolError

    gold: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or (n == 1 and [c.strip().lower() for c in row[:1]] == ["item"]):
                continue
            if len(row) != 2:
                raise click.UsageError(f"{path}:{n}: expected item,answer; got {row!r:.80}")
            name, label = row[0].strip(), row[1].strip()
            item = names.get(name)
            if item is None:
                try:
                    item = cid_to_str(cid_from_str(name))
                except ProtocolError:
                    raise click.UsageError(f"{path}:{n}: {name!r} is neither an item CID nor "
                                           "a path of the task's directory") from None
            if item not in items:
                raise click.UsageError(f"{path}:{n}: {name!r} is not an item of the task")
            if label not in labels:
                raise click.UsageError(f"{path}:{n}: {label!r} is not a label of the task "
                                       f"({', '.join(labels)})")
            if item in gold:
                raise click.UsageError(f"{path}:{n}: {name!r} is gold twice")
            gold[item] = label
    if not gold:
        raise click.UsageError(f"{path}: no gold rows")
    return gold


def sign_and_submit(home: Path, key_path: Path, body: Body,
                    before_submit: Callable[[Record], None] | None = None) -> dict[str, Any]:
    """Sign ``body`` with the key at ``key_path`` (its seq from the counter beside the
    key, never below the node's view) and submit it. ``before_submit(record)`` runs
    once the record is signed."""
    from node.core.home import load_key
    from node.core.keyseq import reserve_key_seq
    from protocol.records import sign_record

    client = _client(home)
    key = load_key(key_path)
    network_id = bytes.fromhex(client.call("node.status")["network_id"])
    floor = int(client.call("account.get", author=key.peer_id)["next_seq"])
    record = sign_record(network_id, key, reserve_key_seq(key_path, 1, floor), body)
    if before_submit is not None:
        before_submit(record)
    result: dict[str, Any] = client.call("record.submit",
                                         record=base64.b64encode(record.data).decode())
    return result


def secrets_path(home: Path, task_cid: str) -> Path:
    return _home(home) / "gold" / f"{task_cid}.json"


def save_secrets(path: Path, doc: dict[str, Any]) -> None:
    """Write the salts and answers durably, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def create_gold_task(home: Path, key_path: Path | None, params: dict[str, Any], gold_csv: Path,
                     names: Mapping[str, str], min_gold_bps: int, reveal_window: int,
                     secrets_out: Path | None) -> dict[str, Any]:
    """Sign and submit the task of ``params`` (``task.create``'s) with gold
    commitments from ``gold_csv``; keep the secrets first. ``names``: the directory's
    path → CID (empty for an inline task)."""
    from protocol.cid import cid_from_str, cid_to_str
    from protocol.gold import commit_gold
    from protocol.keys import public_key_from_peer_id
    from protocol.records import Task

    if key_path is None:
        raise click.UsageError("--gold needs --key FILE: the requester's key signs the task, "
                               "and later its close and its reveal (the node's key signs "
                               "only the node's own records)")
    if not params.get("close_time"):
        raise click.UsageError("--gold needs --close-time: a reveal opens the answers once "
                               "the task closes")
    items = frozenset(names.values()) if params.get("items_dir") else \
        frozenset(params["items"])
    gold = read_gold_csv(gold_csv, names, items, tuple(params["labels"]))
    answers = {cid_from_str(i): label for i, label in gold.items()}
    commitments, entries = commit_gold(answers, {i: secrets.token_bytes(32) for i in answers})
    dir_items: dict[str, Any] = {}
    if params.get("items_dir"):
        dir_items = {"items_dir": cid_from_str(params["items_dir"]),
                     "item_count": params["item_count"]}
    body = Task(
        title=params["title"], labels=tuple(params["labels"]),
        items=tuple(cid_from_str(i) for i in params["items"]),
        redundancy=params["redundancy"], reward_per_item=params["reward_per_item"],
        validator_share_bps=params["validator_share_bps"],
        instructions=cid_from_str(params["instructions"]) if params.get("instructions")
        else None,
        allow=tuple(public_key_from_peer_id(a) for a in params.get("allow", ())),
        close_time=params["close_time"], rule=params["rule"], gold=commitments,
        min_gold_bps=min_gold_bps, reveal_window=reveal_window, **dir_items)
    kept: list[Path] = []

    def keep(record: Record) -> None:
        path = secrets_out or secrets_path(home, record.cid_str)
        save_secrets(path, {
            "version": SECRETS_VERSION, "task": record.cid_str,
            "requester": record.author_id, "key": str(key_path.resolve()),
            "entries": [{"item": cid_to_str(e.item), "label": e.label, "salt": e.salt.hex()}
                        for e in entries]})
        kept[:] = [path]

    result = sign_and_submit(home, key_path, body, keep)
    return {"task": result["cid"], "seq": result.get("seq"), "gold_items": len(entries),
            "gold_secrets": str(kept[0])}


def load_secrets(path: Path, task_cid: str) -> tuple[GoldReveal, Path | None]:
    """The ``gold_reveal`` body for ``task_cid`` from a secrets file, and the key
    file the task was signed with."""
    from protocol.cid import cid_from_str
    from protocol.records import GoldEntry, GoldReveal

    try:
        doc = json.loads(path.read_text())
        if doc.get("task") != task_cid:
            raise click.UsageError(f"{path} holds the gold of task {doc.get('task')}, "
                                   f"not {task_cid}")
        entries = sorted((GoldEntry(bytes.fromhex(e["salt"]), cid_from_str(e["item"]),
                                    str(e["label"])) for e in doc["entries"]),
                         key=lambda e: e.item)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise click.UsageError(f"{path} is not a gold secrets file: {exc}") from None
    key = doc.get("key")
    return (GoldReveal(task=cid_from_str(task_cid), entries=tuple(entries)),
            Path(key) if isinstance(key, str) else None)


__all__ = ["create_gold_task", "load_secrets", "read_gold_csv", "save_secrets",
           "secrets_path", "sign_and_submit"]
