"""Issue 15: a task update that comes before its task waits for it, and a folder task
may not claim more files than the genesis allows.

Before, a close / extend / cancel record for a task this node had not seen yet was
admitted on its own (and nothing told the lifecycle about it until a restart), while
an annotation in the same position waited in the pending pool. And a task could claim
any item_count up to the decoder's absolute cap with no genesis limit behind it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from node.core.admission import Admission, Verdict
from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.store.db import Saved, open_store
from protocol import cid as cidlib
from protocol.errors import GenesisError
from protocol.genesis import Genesis, Params, Validator, genesis_from_json
from protocol.keys import SigningKey
from protocol.limits import LimitError, check_body
from protocol.records import MAX_DIR_ITEMS, Record, Task, TaskUpdate, sign_record

V = SigningKey(b"\x51" * 32)
REQ, MALLORY = SigningKey(b"\x52" * 32), SigningKey(b"\x53" * 32)
PEER = "12D3KooWpeer"
DIR = cidlib.cid_bytes(b"a folder", cidlib.DAG_PB)


def _genesis(**params: int) -> Genesis:
    return Genesis(name="updates", validators=(Validator(V.peer_id, 1),),
                   params=Params(**params))


def _ingest(tmp_path: Path, g: Genesis) -> tuple[Ingest, list[tuple[str, str]]]:
    store = open_store(tmp_path / "a.db", durable=False)
    metrics = Metrics()
    ing = Ingest(store, g, metrics, publish=lambda d: None,
                 admission=Admission(store, g, metrics.registry))
    charged: list[tuple[str, str]] = []
    ing.on_invalid = lambda peer, reason: charged.append((peer, reason))
    return ing, charged


def _folder_task(g: Genesis, n: int, seq: int = 1) -> Record:
    return sign_record(g.network_id, REQ, seq, _folder_body(n))


def _folder_body(n: int) -> Task:
    return Task("t", ("cat", "dog"), (), 2, 10, 0, items_dir=DIR, item_count=n)


def test_an_update_before_its_task_waits_in_the_pool_then_applies(tmp_path: Path) -> None:
    g = _genesis()
    ing, charged = _ingest(tmp_path, g)
    task = _folder_task(g, 3)
    close = sign_record(g.network_id, REQ, 2, TaskUpdate(task.cid, "close"))
    forged = sign_record(g.network_id, MALLORY, 1, TaskUpdate(task.cid, "cancel"))
    assert ing.accept([close, forged], source=PEER) == [Verdict.PENDING, Verdict.PENDING]
    assert ing.store.get(close.cid) is None and ing.admission.pending == 2
    assert charged == []  # not yet: nobody's fault
    assert ing.accept([task], source=PEER) == [Saved.NEW]
    # the requester's close is stored once its task is; the forged cancel is not
    assert ing.store.get(close.cid) == close.data
    assert ing.store.get(forged.cid) is None and ing.admission.pending == 0
    assert [d for d in ing.store.records_for_task(task.cid, "task_update")] == [close.data]
    found = ing.task_rules.lifecycle(task.cid)
    assert found is not None and found[1].closed and not found[1].cancelled
    body = ing.metrics.render().decode()
    assert 'annot_admission_total{reason="not_task_owner",verdict="invalid"} 1.0' in body


def test_an_update_of_a_known_task_is_admitted_directly(tmp_path: Path) -> None:
    g = _genesis()
    ing, _ = _ingest(tmp_path, g)
    task = _folder_task(g, 3)
    ing.accept([task], source=PEER)
    ext = sign_record(g.network_id, REQ, 2, TaskUpdate(task.cid, "extend", 2_000_000_000))
    assert ing.accept([ext], source=PEER) == [Saved.NEW]


def test_item_count_over_the_genesis_limit_is_refused_before_signing_and_on_admission(
        tmp_path: Path) -> None:
    g = _genesis(max_dir_items=100)
    check_body(_folder_body(100), g.params)  # at the limit: fine
    with pytest.raises(LimitError, match="max_dir_items") as err:
        check_body(_folder_body(101), g.params)
    assert "split the folder" in str(err.value)
    ing, charged = _ingest(tmp_path, g)
    assert ing.accept([_folder_task(g, 101)], source=PEER) == [Verdict.INVALID]
    assert charged == [(PEER, "task_too_many_items")] and ing.store.count() == 0
    assert ing.accept([_folder_task(g, 100, seq=2)], source=PEER) == [Saved.NEW]


def test_max_dir_items_in_the_genesis(tmp_path: Path) -> None:
    default = _genesis()
    assert "max_dir_items" not in default.to_map()["params"]  # old networks keep their id
    assert default.params.max_dir_items == 1_000_000
    small = _genesis(max_dir_items=100)
    assert small.to_map()["params"]["max_dir_items"] == 100
    assert small.network_id != default.network_id
    assert genesis_from_json(small.to_json()) == small
    with pytest.raises(GenesisError, match="max_dir_items"):
        replace(small, params=Params(max_dir_items=MAX_DIR_ITEMS + 1)).validate()
    with pytest.raises(LimitError, match="max_dir_items"):  # 10^12 claimed: refused
        check_body(_folder_body(10**12), default.params)
