"""The fake NodeAPI answers in exactly the shapes of node.rpc.results, as the real node
must (the harness checks every real node's answer the same way), and the shape
checker itself catches what it should."""

from __future__ import annotations

from typing import Any

import pytest

from node.rpc.api import NodeAPI
from node.rpc.results import RESULTS, NodeStatus, TaskPage
from node.rpc.routes import ROUTES, call_method
from tests.node.fake_rpc_api import ITEM, PEER2, TASK, FakeNodeAPI
from tests.rpc_shapes import check_result, problems

B64 = "aGVsbG8="
PARAMS: dict[str, dict[str, Any]] = {
    "node.status": {}, "node.peers": {}, "record.submit": {"record": B64},
    "task.create": {"title": "t", "labels": ["a", "b"], "items": [ITEM], "redundancy": 1,
                    "reward_per_item": 10, "validator_share_bps": 1000},
    "task.get": {"task": TASK}, "task.list": {}, "task.items": {"task": TASK},
    "task.certificates": {"task": TASK},
    "annotation.create": {"task": TASK, "item": ITEM, "label": "a"},
    "annotation.list": {"task": TASK}, "item.get": {"task": TASK, "item": ITEM},
    "certificate.get": {"task": TASK, "item": ITEM}, "tally.get": {"task": TASK},
    "ledger.get": {}, "evidence.list": {}, "account.get": {"author": PEER2},
    "block.put": {"data": B64}, "block.get": {"cid": ""}, "payout.epoch": {},
}


def test_every_routed_method_has_a_result_type() -> None:
    assert set(RESULTS) == set(ROUTES)


@pytest.mark.parametrize("method", sorted(PARAMS))
async def test_fake_answers_in_the_documented_shape(method: str) -> None:
    api: NodeAPI = FakeNodeAPI()
    params = dict(PARAMS[method])
    if method == "block.get":
        params["cid"] = (await call_method(api, "block.put", {"data": B64}))["cid"]
    check_result(method, await call_method(api, method, params))


def test_checker_names_missing_extra_and_mistyped_fields() -> None:
    status: dict[str, Any] = {
        "peer_id": PEER2, "network_id": "ab", "network": "n", "version": "1",
        "validator": 1, "peer_count": 0, "record_count": 0, "records_by_kind": {"task": "2"},
        "listen_addrs": [], "topics": [], "final_items": 0, "ledger_root": "00",
        "sync": [], "surprise": True}
    found = problems(NodeStatus, status)
    assert found == ["$.gateway_url: missing", "$.surprise: not a field of NodeStatus",
                     "$.validator: expected bool, got 1",
                     "$.records_by_kind.task: expected int, got '2'"]
    page = {"tasks": [{"task": "t", "title": "x", "requester": PEER2, "items": 3,
                       "items_final": 0}], "next_cursor": None}
    assert problems(TaskPage, page) == ["$.tasks[0].item_count: missing",
                                        "$.tasks[0].items: not a field of TaskSummary"]
