"""Real crowd answers through four validator processes: the network's labels are the offline rule's.

The first 30 items of d_Duck_Identification with all their answers (39 workers
each, so 1,170 annotations, each signed by its worker's own key) go through
:mod:`node.testnet.demo` into a 4-validator cluster under ``rule = "dawid-skene"``.
Then every node's final value of every item is read back over RPC and must
equal :func:`protocol.aggregate.propose` computed offline over exactly the
annotations the nodes hold (and every node must hold the same ones), and
must equal ``annot aggregate`` (:mod:`node.cli.aggregate_csv`) over the same
answers. The cluster is stopped by the fixture even when the test fails.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
import trio
from quality.network import by_name, replay

from node.cli.aggregate_csv import aggregate
from protocol.dawid_skene import dawid_skene
from protocol.records import EXPIRED

DUCK = Path(__file__).resolve().parents[1] / "data" / "crowd" / "d_Duck_Identification" / \
    "answer.csv"
ITEMS = 30
BUDGET_S = 80.0  # the replay; cluster start adds a few seconds, the whole test stays < 90 s

pytestmark = pytest.mark.slow


def test_dawid_skene_network_equals_offline(cluster_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    c = cluster_factory(4)
    c.start().wait_connected()

    async def run():  # type: ignore[no-untyped-def]
        with trio.fail_after(BUDGET_S):
            return await replay(c.root, DUCK, ITEMS, "dawid-skene", timeout=BUDGET_S,
                                say=lambda _: None)

    work, report, _, cmp = trio.run(run)
    assert report.agree  # byte-identical certificates, one tally root, one ledger root
    assert cmp.rule == "dawid-skene" and cmp.items == ITEMS
    assert cmp.annotations == len(work.answers) == ITEMS * 39  # nothing dropped on the way
    assert cmp.nodes_agree
    assert all(v is not None and v != EXPIRED for v in cmp.offline.values())
    assert cmp.network == cmp.offline, [i.hex() for i in cmp.offline
                                       if cmp.network[i] != cmp.offline[i]]

    # The same answers named by CSV id: `annot aggregate` and dawid_skene() agree too.
    path = tmp_path / "submitted.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("item", "worker", "label"))
        for a in work.answers:
            w.writerow((work.items[a.item].name, work.worker_names[a.worker], a.label))
    net = by_name(work, report, cmp.network)
    assert dict(aggregate("dawid-skene", path)) == net
    direct = dawid_skene([(work.items[a.item].name.encode(), work.worker_names[a.worker].encode(),
                           a.label) for a in work.answers], work.labels)
    assert {k.decode(): v for k, v in direct.items()} == net
    print(f"quality network replay: {time.monotonic() - started:.1f} s")  # timing: make bench
