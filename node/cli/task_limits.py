"""``annot task create`` checks the network's genesis limits before it uploads or
signs anything (:func:`protocol.limits.check_body` on the task as it will be),
so a task too large for the network is refused in a second with a message that
names the limit and what to do, not after every file was uploaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.core.home import NodeHome
from protocol import cid as cidlib
from protocol.keys import public_key_from_peer_id
from protocol.limits import check_body
from protocol.records import Task

# stands in for the folder's root CID until it is built (same length as a real one)
_PLACEHOLDER_DIR = cidlib.cid_bytes(b"items folder, not built yet", cidlib.DAG_PB)


def count_files(folder: Path) -> int:
    """The files ``--items-dir`` would add (a walk, no reading)."""
    return sum(1 for p in folder.rglob("*") if p.is_file())


def precheck_task(home: Path, params: dict[str, Any], folder_items: int | None) -> None:
    """Refuse a task the network would refuse, before any upload. ``params`` are the
    ``task.create`` params; ``folder_items`` the file count of --items-dir (or None).
    Without a readable genesis in ``home`` (e.g. --api) the node checks it instead."""
    h = NodeHome(home)
    if not h.genesis_path.exists():
        return
    genesis = h.load_genesis()
    inline = tuple(cidlib.cid_from_str(i) for i in params.get("items", ()))
    body = Task(
        title=params["title"], labels=tuple(params["labels"]), items=inline,
        redundancy=params["redundancy"], reward_per_item=params["reward_per_item"],
        validator_share_bps=params["validator_share_bps"],
        instructions=cidlib.cid_from_str(params["instructions"])
        if params.get("instructions") else None,
        allow=tuple(public_key_from_peer_id(a) for a in params.get("allow", ())),
        close_time=params.get("close_time") or 0, rule=params["rule"],
        items_dir=_PLACEHOLDER_DIR if folder_items else None,
        item_count=folder_items or 0)
    check_body(body, genesis.params)
