"""The CAR files of an export: the items directory alone, or everything as one DAG.

Blocks are fetched from the node with ``block.get`` in JSON-RPC batches. An item's
whole DAG is fetched (a file over 256 KiB is several blocks), so the CAR is
complete: ``ipfs dag import`` pins its root only when every block is there.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import trio

from node.rpc.client import RPCClient
from protocol.car import encode_car_block, encode_car_header
from protocol.cid import DAG_PB, cid_to_str, decode_cid
from protocol.records import Task
from protocol.unixfs import FileImporter, decode_dag_pb
from protocol.unixfs_dir import DirectoryBuilder, DirectoryWalk

BLOCK_BATCH = 50
PARALLEL_BATCHES = 8
EXPORT_FILES = ("task.bin", "labels.jsonl", "labels.csv", "answers.csv", "certificates.jsonl")


async def get_blocks(client: RPCClient, cids: list[bytes]) -> dict[bytes, bytes]:
    """The blocks ``cids`` from the node (each checked against its CID by the caller's
    decoders; ``block.get`` verifies what it fetches from peers). A batch runs its calls
    in order, and a block the node lacks is a round trip to a peer, so several batches
    are in flight at once."""
    out: dict[bytes, bytes] = {}
    limit = trio.Semaphore(PARALLEL_BATCHES)

    async def one(chunk: list[bytes]) -> None:
        async with limit:
            replies = await client.batch([("block.get", {"cid": cid_to_str(c)})
                                          for c in chunk])
        for c, reply in zip(chunk, replies, strict=True):
            out[c] = base64.b64decode(reply.unwrap()["data"])

    async with trio.open_nursery() as nursery:
        for i in range(0, len(cids), BLOCK_BATCH):
            nursery.start_soon(one, cids[i:i + BLOCK_BATCH])
    return out


async def directory_blocks(client: RPCClient, root: bytes
                           ) -> tuple[dict[bytes, bytes], list[tuple[str, bytes]]]:
    """(the directory's own blocks, its files as (path, CID)), fetched over RPC."""
    walk = DirectoryWalk(root)
    blocks: dict[bytes, bytes] = {}
    files: list[tuple[str, bytes]] = []
    while not walk.done:
        got = await get_blocks(client, walk.wants())
        for cid, data in got.items():
            files += walk.feed(cid, data)
            blocks[cid] = data
    return blocks, files


async def dag_blocks(client: RPCClient, roots: list[bytes]) -> dict[bytes, bytes]:
    """Every block of the DAGs under ``roots`` (dag-pb links followed)."""
    out: dict[bytes, bytes] = {}
    todo = list(dict.fromkeys(roots))
    while todo:
        got = await get_blocks(client, todo)
        out.update(got)
        todo = []
        for cid, data in got.items():
            if decode_cid(cid)[0] == DAG_PB:
                todo += [link.cid for link in decode_dag_pb(data)[0] if link.cid not in out]
        todo = list(dict.fromkeys(todo))
    return out


async def write_items_car(client: RPCClient, items_dir: bytes, path: Path) -> None:
    """The items directory's own blocks (not the items' content) as a CAR."""
    blocks, _ = await directory_blocks(client, items_dir)
    with path.open("wb") as f:
        f.write(encode_car_header([items_dir]))
        for cid, data in blocks.items():
            f.write(encode_car_block(cid, data))


async def write_car(client: RPCClient, task: Task, folder: Path, car: Path,
                    say: Callable[[str], None]) -> str:
    """One CAR of the export folder's files, the vote records and every item's DAG,
    rooted at a UnixFS directory; return the root CID."""
    builder = DirectoryBuilder()
    blocks: dict[bytes, bytes] = {}
    names = [*EXPORT_FILES, *(f"votes/{p.name}" for p in sorted((folder / "votes").iterdir()))]
    for name in names:
        importer = FileImporter()
        blocks.update(importer.update((folder / name).read_bytes()))
        blocks.update(importer.finish())
        assert importer.root is not None
        builder.add_file(name, importer.root, importer.tsize)
    if task.items_dir is not None:
        dir_blocks, files = await directory_blocks(client, task.items_dir)
        blocks.update(dir_blocks)
        blocks.update(await dag_blocks(client, [c for _, c in files]))
        links, _ = decode_dag_pb(dir_blocks[task.items_dir])
        tsize = len(dir_blocks[task.items_dir]) + sum(link.tsize or 0 for link in links)
        builder.add_file("items", task.items_dir, tsize)
    else:
        item_blocks = await dag_blocks(client, list(task.items))
        blocks.update(item_blocks)
        for item in task.items:
            below = item_blocks[item]
            if decode_cid(item)[0] == DAG_PB:
                size = len(below) + sum(link.tsize or 0 for link in decode_dag_pb(below)[0])
            else:
                size = len(below)
            builder.add_file(f"items/{cid_to_str(item)}", item, size)
    root, _, dir_blocks_out = builder.finish()
    blocks.update(dir_blocks_out)
    with car.open("wb") as f:
        f.write(encode_car_header([root]))
        for cid, data in blocks.items():
            f.write(encode_car_block(cid, data))
    say(f"wrote {car}: {len(blocks):,} blocks, root {cid_to_str(root)}")
    return cid_to_str(root)
