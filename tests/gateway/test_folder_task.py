"""Issue 15: a task whose items are a UnixFS folder (``items_dir`` + ``item_count``)
shows its real item count in the gateway, lists and serves its files, and hands them
out to label. Before, every count came from ``len(task.items)`` — 0 for a folder task —
so the web app showed "0 items" and never offered one to label."""

from __future__ import annotations

from pathlib import Path

import httpx

from node.content.files import add_bytes
from node.core.home import NodeHome, init_home
from node.core.local import open_node
from node.gateway.adapter import NodeGateway, NodeParts
from protocol.cid import DAG_PB, cid_bytes, cid_from_str
from protocol.keys import SigningKey
from protocol.records import Task, sign_record
from tests.gateway.helpers import Fixture, png_items, serving

N = 5


def _folder_fixture(root: Path, resolved: bool) -> Fixture:
    home = root / "node"
    init_home(home)
    node = open_node(NodeHome(home))
    items = [add_bytes(node.blocks, png) for png in png_items(N)]
    requester = SigningKey(bytes(range(2, 34)))
    body = Task(title="Folder", labels=("bright", "dark"), items=(), redundancy=2,
                reward_per_item=1000, validator_share_bps=1000,
                items_dir=cid_bytes(b"the folder's root", DAG_PB), item_count=N)
    task = sign_record(node.genesis.network_id, requester, 1, body)
    node.ingest.submit(task.data)
    if resolved:
        node.store.save_task_items(
            task.cid, [(f"img/{k:02}.png", cid_from_str(i)) for k, i in enumerate(items)], N)
    gw = NodeGateway(NodeParts(node.store, node.ingest, node.genesis, node.blocks,
                               node.peer_id, lambda: []))
    return Fixture(node, gw, task, items, requester)


async def test_a_folder_task_counts_lists_and_offers_its_files(tmp_path: Path) -> None:
    fx = _folder_fixture(tmp_path, resolved=True)
    tid = fx.task.cid_str
    async with serving(fx) as url, httpx.AsyncClient(base_url=url) as http:
        tasks = (await http.get("/api/v1/tasks")).json()["tasks"]
        assert [(t["task"], t["items"]) for t in tasks] == [(tid, N)]
        one = (await http.get(f"/api/v1/tasks/{tid}")).json()
        assert one["item_count"] == N and one["items"] == [] and one["items_dir"]
        assert one["progress"]["items"] == N and one["progress"]["short"] == N
        page = (await http.get(f"/api/v1/tasks/{tid}/items", params={"limit": 3})).json()
        assert [r["item"] for r in page["items"]] == fx.items[:3] and page["next_cursor"]
        key = SigningKey(bytes(32))
        nxt = (await http.get(f"/api/v1/tasks/{tid}/next",
                              params={"author": key.peer_id})).json()
        assert nxt["item"] == fx.items[0] and nxt["remaining"] == N
        item = await http.get(f"/api/v1/tasks/{tid}/items/{fx.items[1]}")
        assert item.status_code == 200 and item.json()["item"] == fx.items[1]


async def test_an_unresolved_folder_task_has_its_count_but_no_files_yet(
        tmp_path: Path) -> None:
    fx = _folder_fixture(tmp_path, resolved=False)
    tid = fx.task.cid_str
    async with serving(fx) as url, httpx.AsyncClient(base_url=url) as http:
        one = (await http.get(f"/api/v1/tasks/{tid}")).json()
        assert one["item_count"] == N and one["progress"]["items"] == N
        # resolved later: the gateway does not keep the empty listing
        fx.node.store.save_task_items(fx.task.cid, [(f"{k}.png", cid_from_str(i))
                                                    for k, i in enumerate(fx.items)], N)
        page = (await http.get(f"/api/v1/tasks/{tid}/items", params={"limit": 10})).json()
        assert [r["item"] for r in page["items"]] == fx.items
