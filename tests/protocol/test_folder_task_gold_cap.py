"""Issue 15: a folder task (items as a UnixFS directory, ``item_count`` in the record)
may carry up to ``item_count`` gold commitments. The cap used to be ``len(items)``,
which is 0 for a folder task, so no folder task could have gold at all."""

from __future__ import annotations

import pytest

from protocol.cid import DAG_PB, cid_bytes
from protocol.errors import FieldTypeError
from protocol.records import Task, body_from_map, body_to_map

DIR = cid_bytes(b"folder", DAG_PB)


def _task(n_items: int, n_gold: int) -> Task:
    gold = tuple(sorted(bytes([k + 1]) * 32 for k in range(n_gold)))
    return Task("t", ("a", "b"), (), 1, 0, 0, close_time=1_000, items_dir=DIR,
                item_count=n_items, gold=gold)


def test_a_folder_task_takes_up_to_item_count_gold_commitments() -> None:
    t = _task(3, 3)
    assert body_from_map("task", body_to_map(t)) == t
    with pytest.raises(FieldTypeError, match=r"1\.\.3 commitments"):
        body_from_map("task", body_to_map(_task(3, 4)))
