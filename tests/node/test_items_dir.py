"""Directory tasks in one node: the resolver, the store's item table, expansion; and
CSV rows as items (``task create --items-csv``), through a fake ``block.put``.

Real SQLite store, real signed records, a UnixFS directory built by
:class:`protocol.unixfs_dir.DirectoryBuilder`; blocks come from a dict through the
same fetch signature the daemon gives (local store, then bitswap).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import trio

from node.cli.tree import TreeError, csv_items, import_csv
from node.content.items import ItemResolver, expand_task, walk_directory
from node.rpc.client import BatchReply
from node.store.db import open_store
from protocol.cid import DAG_PB, RAW, cid_bytes, cid_from_str, cid_to_str
from protocol.keys import SigningKey
from protocol.records import Record, Task, sign_record
from protocol.unixfs import import_bytes
from protocol.unixfs_dir import DirectoryBuilder, walk_files

NET = bytes(32)
KEY = SigningKey(bytes(range(32)))


def folder(n: int, dup: int = 0) -> tuple[bytes, dict[bytes, bytes], dict[str, bytes]]:
    """A sharded-enough folder of ``n`` files (``dup`` of them copies of file 0)."""
    builder = DirectoryBuilder(shard_threshold=2_000)
    blocks: dict[bytes, bytes] = {}
    files: dict[str, bytes] = {}
    for i in range(n):
        data = b"item 0" if i < dup else b"item %d" % i
        root, file_blocks = import_bytes(data)
        blocks.update(file_blocks)
        path = f"part-{i % 4}/sub/{i:05d}.txt" if i % 2 else f"top-{i:05d}.txt"
        builder.add_file(path, root, len(data))
        files[path] = root
    root, _, dir_blocks = builder.finish()
    blocks.update(dir_blocks)
    return root, blocks, files


def dir_task(root: bytes, count: int, seq: int = 1) -> Record:
    return sign_record(NET, KEY, seq, Task(title="folder", labels=("a", "b"), items=(),
                                           redundancy=1, reward_per_item=1,
                                           validator_share_bps=0, items_dir=root,
                                           item_count=count))


def fetcher(blocks: dict[bytes, bytes]):  # type: ignore[no-untyped-def]
    async def fetch(cid: bytes, timeout: float) -> bytes | None:
        await trio.sleep(0)
        return blocks.get(cid)
    return fetch


async def test_walk_directory_lists_every_file() -> None:
    root, blocks, files = folder(300)
    got = await walk_directory(fetcher(blocks), root, 10_000)
    assert dict(got) == files


async def test_resolver_holds_expands_and_forwards(tmp_path: Path) -> None:
    root, blocks, files = folder(300, dup=3)
    store = open_store(tmp_path / "s.db")
    record = dir_task(root, 298)  # 300 files, 3 of them the same content
    plain = sign_record(NET, KEY, 2, Task(title="t", labels=("a", "b"),
                                          items=(cid_bytes(b"x"),), redundancy=1,
                                          reward_per_item=1, validator_share_bps=0))
    forwarded: list[Record] = []
    have: dict[bytes, bytes] = {}  # blocks arrive late, as from a slow peer
    resolver = ItemResolver(store, fetcher(have), forwarded.extend)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(resolver.serve)
        resolver.records_nowait([record, plain])
        assert forwarded == [plain]  # the plain task passes at once, in order
        assert expand_task(store, record) is None
        await trio.sleep(0.5)
        have.update(blocks)
        with trio.fail_after(10):
            while len(forwarded) < 2:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    expanded = forwarded[1]
    assert (expanded.cid, expanded.data, expanded.signature) == (
        record.cid, record.data, record.signature)
    assert isinstance(expanded.body, Task)
    assert sorted(expanded.body.items) == sorted(set(files.values()))
    assert len(expanded.body.items) == 298
    assert store.task_dir(record.cid) == ("resolved", 298, None)
    first = files["top-00000.txt"]
    assert store.item_paths(record.cid, first) == ["part-1/sub/00001.txt", "top-00000.txt",
                                                    "top-00002.txt"]
    page = store.task_item_page(record.cid, "", 5)
    assert [p for p, _ in page] == sorted(files)[:5]
    assert store.task_item_page(record.cid, page[-1][0], 1000)[-1][0] == max(files)
    # a restart: the same record from the store expands at once, and is forwarded expanded
    store.save_records([record, plain])
    again: list[Record] = []
    ItemResolver(store, fetcher({}), again.extend).restore(NET)
    assert again == [expanded]  # only the directory task: plain ones consensus restores
    store.close()


@pytest.mark.parametrize("count", [299, 301])
async def test_wrong_item_count_makes_the_task_invalid(tmp_path: Path, count: int) -> None:
    root, blocks, _ = folder(300)
    store = open_store(tmp_path / "s.db")
    record = dir_task(root, count)
    forwarded: list[Record] = []
    resolver = ItemResolver(store, fetcher(blocks), forwarded.extend)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(resolver.serve)
        resolver.records_nowait([record])
        with trio.fail_after(10):
            while store.task_dir(record.cid) is None:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    state = store.task_dir(record.cid)
    assert state is not None and state[0] == "invalid"
    assert state[2] == f"the directory holds 300 distinct files, the task says item_count {count}"
    assert forwarded == [] and expand_task(store, record) is None
    resolver.records_nowait([record])  # never retried, never forwarded
    assert forwarded == [] and not resolver.pending
    store.close()


async def test_malformed_directory_makes_the_task_invalid(tmp_path: Path) -> None:
    bad = b"\x0a\x02\x08\x04"  # a UnixFS symlink node as the "directory"
    root = cid_bytes(bad, DAG_PB)
    store = open_store(tmp_path / "s.db")
    record = dir_task(root, 1)
    resolver = ItemResolver(store, fetcher({root: bad}), lambda rs: None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(resolver.serve)
        resolver.records_nowait([record])
        with trio.fail_after(10):
            while store.task_dir(record.cid) is None:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    state = store.task_dir(record.cid)
    assert state is not None and state[0] == "invalid" and "symlinks" in (state[2] or "")
    store.close()


# --- CSV rows as items (annot task create --items-csv) -------------------------------

class _FakeClient:
    """``batch`` of ``block.put`` as the node answers it, keeping the blocks."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}

    async def batch(self, calls: list[tuple[str, dict[str, str]]]) -> list[BatchReply]:
        out = []
        for method, params in calls:
            assert method == "block.put"
            data = base64.b64decode(params["data"])
            cid = cid_bytes(data, DAG_PB if params["codec"] == "dag-pb" else RAW)
            self.blocks[cid] = data
            out.append(BatchReply(result={"cid": cid_to_str(cid), "size": len(data)}))
        return out


def test_csv_column_rows_become_text_items(tmp_path: Path) -> None:
    path = tmp_path / "snippets.csv"
    path.write_text("id,text\n1,the cat sat\n2,\"a dog, barking\"\n3,the cat sat\n",
                    encoding="utf-8")
    assert csv_items(path, "text") == [("000001.txt", b"the cat sat"),
                                       ("000002.txt", b"a dog, barking"),
                                       ("000003.txt", b"the cat sat")]
    rows = csv_items(path, None)
    assert rows[1] == ("000002.json", b'{"id": "2", "text": "a dog, barking"}')
    client = _FakeClient()
    tree = trio.run(import_csv, client, path, "text", False)  # type: ignore[arg-type]
    assert tree.items == 2 and [p for p, _ in tree.files] == ["000001.txt", "000002.txt",
                                                              "000003.txt"]
    files = dict(walk_files(client.blocks.__getitem__, cid_from_str(tree.root)))
    assert {p: client.blocks[c] for p, c in files.items()} == {
        "000001.txt": b"the cat sat", "000002.txt": b"a dog, barking",
        "000003.txt": b"the cat sat"}


@pytest.mark.parametrize(("text", "column", "why"), [
    ("id,text\n1,x\n", "body", "no column 'body' (columns: id, text)"),
    ("id,text\n1,x,extra\n", "text", "row 1 has more fields than the header"),
    ("id,text\n", "text", "no files to add"),
])
def test_csv_refusals(tmp_path: Path, text: str, column: str, why: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TreeError, match=re.escape(why)):
        trio.run(import_csv, _FakeClient(), path, column, False)  # type: ignore[arg-type]
