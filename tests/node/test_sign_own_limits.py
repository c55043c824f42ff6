"""The node checks every genesis limit before it reserves a seq or signs (issue 15):
a body it could never get accepted costs neither a seq nor a record."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core.home import NodeHome, init_home
from node.core.local import open_node
from protocol.cid import cid_bytes
from protocol.limits import LimitError
from protocol.records import Task


def test_an_oversized_task_is_refused_before_a_seq_is_reserved(tmp_path: Path) -> None:
    init_home(tmp_path / "home")
    node = open_node(NodeHome(tmp_path / "home"))
    try:
        limit = node.genesis.params.max_items_per_task
        items = tuple(cid_bytes(b"item %d" % i) for i in range(limit + 1))
        body = Task(title="big", labels=("a", "b"), items=items, redundancy=1,
                    reward_per_item=0, validator_share_bps=0)
        before = node.store.next_seq(node.public_key)
        with pytest.raises(LimitError, match=r"max_items_per_task.*--items-dir"):
            node.sign_own(body)
        assert node.store.next_seq(node.public_key) == before
        assert node.store.count() == 0
        ok = Task(title="ok", labels=("a", "b"), items=items[:limit], redundancy=1,
                  reward_per_item=0, validator_share_bps=0)
        assert node.sign_own(ok).seq == before
    finally:
        node.close()
