"""node.content.router: local store first, then Kubo; puts are mirrored to Kubo.

Kubo cannot be installed here: the Kubo side is the recorded-response fake of
tests/node/test_kubo.py (a unit test of this one seam)."""

from __future__ import annotations

from pathlib import Path

from test_kubo import HELLO, RecordedKubo

from node.content.blockstore import BlockStore
from node.content.kubo import KuboClient
from node.content.router import Content
from protocol.cid import cid_from_str


async def test_missing_block_comes_from_kubo_and_is_kept(tmp_path: Path) -> None:
    fake = RecordedKubo("healthy.json")
    store = BlockStore(tmp_path)
    content = Content(store, bitswap=None, kubo=KuboClient(transport=fake))
    cid = cid_from_str(HELLO)
    assert store.get(cid) is None
    assert await content.get(cid) == b"hello world"
    assert store.get(cid) == b"hello world"  # verified and kept locally
    served = len(fake.requests)
    assert await content.get(cid) == b"hello world"
    assert len(fake.requests) == served  # the second read never leaves the node


async def test_put_is_pushed_and_pinned_to_kubo(tmp_path: Path) -> None:
    fake = RecordedKubo("healthy.json")
    content = Content(BlockStore(tmp_path), kubo=KuboClient(transport=fake))
    cid = await content.put(b"hello world")
    assert cid == cid_from_str(HELLO)
    paths = [r.url.path for r in fake.requests]
    assert "/api/v0/block/put" in paths
    put = next(r for r in fake.requests if r.url.path == "/api/v0/block/put")
    assert put.url.params.get("pin") == "true"


async def test_a_lying_kubo_never_poisons_the_store(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    content = Content(store, kubo=KuboClient(transport=RecordedKubo("lying.json")))
    cid = cid_from_str(HELLO)
    assert await content.get(cid, timeout=5) is None
    assert store.get(cid) is None
