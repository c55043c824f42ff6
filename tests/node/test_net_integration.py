"""Networking, end to end, with real ``annot run`` processes (issue "Networking").

1. Records written at one node reach every node of four.
2. A node started after 10,000 records were written catches up completely
   (records signed in-process and submitted with batched ``record.submit``).
3. A node killed with SIGKILL while records are written keeps every record it
   acknowledged and, restarted, catches up to the identical record set.
4. Two groups that are partitioned and healed converge: a real link cut in
   network namespaces (veth + bridges, ``ip link set down``), and a
   connection-level partition (bootstrap lists confined to each group).
5. Blocks: ``annot add`` a multi-chunk file at node0, ``annot cat`` at node2
   fetches it over bitswap (CID equals Kubo's); a corrupt block on disk is refused.

"Same record set" is checked as: equal record counts by kind and equal vector
clocks (author → highest contiguous seq) for every author involved.
Numbers are printed (run with ``-s``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import ROOT, Cluster, netns
from harness.netns import NetLab

from node.rpc.client import RPCClientError
from node.store.db import Saved, open_store
from protocol.cid import cid_from_str, cid_str, cid_to_str
from protocol.keys import SigningKey
from protocol.records import Annotation, Task, sign_record

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "node.cli"]


def annotators(n: int, base: int = 100) -> list[SigningKey]:
    return [SigningKey(bytes([base + j]) * 32) for j in range(n)]


def items_of(n: int, tag: str = "item") -> list[str]:
    return [cid_str(f"{tag} {k}".encode()) for k in range(n)]


def network_id(c: Cluster) -> bytes:
    return bytes.fromhex(c.status(0)["network_id"])


def label_all(nid: bytes, keys: list[SigningKey], task: str, items: list[str],
              first_seq: int = 1) -> list[bytes]:
    """Every annotator labels every item (labels vary so items disagree a little)."""
    t = cid_from_str(task)
    out = []
    for j, k in enumerate(keys):
        for s, item in enumerate(items):
            label = "ab"[(j * 7 + s) % 3 == 0]
            out.append(sign_record(nid, k, first_seq + s,
                                   Annotation(t, cid_from_str(item), label)).data)
    return out


def authors_of(c: Cluster, keys: list[SigningKey]) -> list[str]:
    return [k.peer_id for k in keys] + [c.peer_id(i) for i in range(c.n)]


def wait_same_records(c: Cluster, nodes: list[int], authors: list[str], timeout: float,
                      what: str) -> tuple[dict[str, int], dict[str, int]]:
    """Wait until every node in ``nodes`` holds the same record set; return it."""
    last: list[tuple[dict[str, int], dict[str, int]]] = []

    def same() -> bool:
        last[:] = [c.record_set(i, authors) for i in nodes]
        return all(s == last[0] for s in last)

    try:
        c.wait(same, timeout, what, interval=0.5)
    except TimeoutError:
        detail = "\n".join(f"node{i}: {s[0]}" for i, s in zip(nodes, last, strict=False))
        raise TimeoutError(f"{what} not reached in {timeout}s:\n{detail}") from None
    return last[0]


def create_task(c: Cluster, i: int, items: list[str], redundancy: int = 3) -> str:
    task: str = c.rpc(i, "task.create", title="net", labels=["a", "b"], items=items,
                      redundancy=redundancy, reward_per_item=100,
                      validator_share_bps=1000)["task"]
    return task


# --------------------------------------------------------------------------- 1
def test_records_from_one_node_reach_all_four(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c: Cluster = cluster_factory(4)
    c.start().wait_connected(60)
    items = items_of(60)
    task = create_task(c, 0, items)
    keys = annotators(5)
    records = label_all(network_id(c), keys, task, items)
    out = c.submit_many(0, records, batch=100)
    assert all(r["new"] for r in out) and len(out) == 300

    def everywhere() -> bool:
        for i in range(4):
            clocks = c.rpc_batch(i, [("account.get", {"author": k.peer_id}) for k in keys])
            if [a["clock"] for a in clocks] != [60] * 5:
                return False
        return True

    c.wait(everywhere, 60, "every annotator's clock = 60 on every node", interval=0.5)
    for i in range(4):
        n = 0
        cursor = None
        while True:
            page = c.rpc(i, "annotation.list", task=task, limit=1000, cursor=cursor)
            n += len(page["annotations"])
            if (cursor := page["next_cursor"]) is None:
                break
        assert n == 300, f"node{i} lists {n} annotations"
    # consensus adds votes meanwhile; once it settles every node holds the same records
    c.wait(lambda: all(c.status(i)["final_items"] == 60 for i in range(4)), 90, "finality")
    kinds, _ = wait_same_records(c, list(range(4)), authors_of(c, keys), 60, "same records")
    assert kinds["annotation"] == 300 and kinds["task"] == 1


# --------------------------------------------------------------------------- 2
def test_late_node_catches_up_10k_records(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    """10 tasks x 50 items x 20 annotators = 10,000 annotations, signed in-process and
    pre-loaded into the stores of node0 and node1 before they start (RPC submission of
    10,000 records takes 6-30 s on this shared 2-core machine; test 1 and 3 cover it);
    then node2 starts and must catch up completely by sync."""
    c: Cluster = cluster_factory(3, validators=1)
    nid = c.genesis.network_id
    requester = SigningKey(b"\x55" * 32)
    items = items_of(500)
    t0 = time.monotonic()
    records = [sign_record(nid, requester, k + 1, Task(
        title=f"task {k}", labels=("a", "b"), items=tuple(cid_from_str(i) for i in
                                                          items[k * 50:(k + 1) * 50]),
        redundancy=3, reward_per_item=100, validator_share_bps=1000)) for k in range(10)]
    tasks = [r.cid for r in records]
    keys = annotators(20)
    for j, k in enumerate(keys):  # each annotator labels all 500 items: seqs 1..500
        for s, item in enumerate(items):
            records.append(sign_record(nid, k, s + 1, Annotation(
                tasks[s // 50], cid_from_str(item), "ab"[(j + s) % 2])))
    signed_s = time.monotonic() - t0
    assert len(records) == 10_010
    for i in (0, 1):
        store = open_store(c.home(i) / "store.db")
        try:
            assert set(store.save_records(records)) == {Saved.NEW}
        finally:
            store.close()
    c.start(0, 1).wait_connected(60)

    started = time.monotonic()
    c.start(2, wait=False)
    c.wait_rpc(2, 60)
    rpc_up = time.monotonic()

    def caught_up() -> bool:
        return c.status(2)["records_by_kind"].get("annotation", 0) == 10_000

    c.wait(caught_up, 120, "node2 holds all 10,000 annotations", interval=0.1)
    done = time.monotonic()
    authors = [*authors_of(c, keys), requester.peer_id]
    kinds, clocks = wait_same_records(c, [0, 1, 2], authors, 60, "same records")
    assert all(clocks[k.peer_id] == 500 for k in keys) and clocks[requester.peer_id] == 10
    print(f"\n[catch-up] signed 10,010 records in-process in {signed_s:.2f}s, pre-loaded into "
          f"node0 and node1")
    print(f"[catch-up] late node2: 10,000 annotations in {done - started:.2f}s from process "
          f"start = {10_000 / (done - started):.0f} rec/s ({done - rpc_up:.2f}s after its RPC "
          f"was up = {10_000 / (done - rpc_up):.0f} rec/s); final set {sum(kinds.values())} "
          f"records {kinds}; load average {os.getloadavg()[0]:.1f}")


# --------------------------------------------------------------------------- 3
def test_sigkilled_node_keeps_acked_records_and_catches_up(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c: Cluster = cluster_factory(3, validators=1)
    c.start().wait_connected(60)
    nid = network_id(c)
    n_items = 200
    items = items_of(n_items)
    task = create_task(c, 0, items, redundancy=2)
    keys = annotators(6)
    per_key = {k.peer_id: label_all(nid, [k], task, items) for k in keys}
    acked_at_2: list[str] = []
    killed = threading.Event()
    errors: list[BaseException] = []
    written = [0, 0]  # before / after the kill

    def write_to_victim() -> None:  # annotator 5 writes at node2 until node2 dies
        recs = per_key[keys[5].peer_id]
        for k in range(0, len(recs), 10):
            try:
                out = c.submit_many(2, recs[k:k + 10])
            except Exception:
                return  # node2 was killed under us
            acked_at_2.extend(r["cid"] for r in out)

    def write_to_survivors() -> None:  # annotators 0..4 write at node0 / node1 throughout
        try:
            for k in range(0, n_items, 20):
                if k == n_items // 2:  # the second half goes in while node2 is dead
                    assert killed.wait(60)
                for j in range(5):
                    c.submit_many(j % 2, per_key[keys[j].peer_id][k:k + 20])
                    written[killed.is_set()] += 20
        except BaseException as exc:
            errors.append(exc)

    victim = threading.Thread(target=write_to_victim, daemon=True)
    writer = threading.Thread(target=write_to_survivors, daemon=True)
    victim.start()
    writer.start()
    c.wait(lambda: len(acked_at_2) >= 60, 60, "node2 acknowledged 60 records", interval=0.02)
    c.kill(2)  # SIGKILL while node2 is being written to
    killed.set()
    victim.join(30)
    assert not victim.is_alive()
    assert len(acked_at_2) < n_items, "node2 was killed mid-write"
    # every record node2 acknowledged survived the kill -9 (read its store file directly)
    store = open_store(c.home(2) / "store.db", readonly=True)
    try:
        missing = [x for x in acked_at_2 if not store.has(cid_from_str(x))]
    finally:
        store.close()
    assert not missing, f"{len(missing)} acknowledged records lost by kill -9"
    writer.join(120)
    assert not writer.is_alive() and not errors, errors
    assert written[1] >= 5 * n_items // 2, "half the records or more written with node2 down"
    c.start(2)
    rest = per_key[keys[5].peer_id][len(acked_at_2):]  # what node2 never acknowledged
    c.submit_many(0, rest)
    kinds, clocks = wait_same_records(c, [0, 1, 2], authors_of(c, keys), 90, "same records")
    assert kinds["annotation"] == 6 * n_items
    assert all(clocks[k.peer_id] == n_items for k in keys)
    print(f"\n[kill -9] node2 acknowledged {len(acked_at_2)} records before SIGKILL, all kept; "
          f"{written[1]} written elsewhere while it was down; restarted, it holds the same "
          f"{sum(kinds.values())} records {kinds}")


# --------------------------------------------------------------------------- 4
def _partition_scenario(c: Cluster, side_a: list[int], side_b: list[int], cut: object,
                        heal: object, check_cut: object = None) -> None:
    """Write on both sides of a partition; show nothing crosses; heal; converge."""
    nid = network_id(c)
    items = items_of(20, "partition item")
    # the requester signs the task itself and gives it to both sides (they may never
    # have been connected)
    requester = SigningKey(b"\x77" * 32)
    rec = sign_record(nid, requester, 1, Task(
        title="partition", labels=("a", "b"), items=tuple(cid_from_str(i) for i in items),
        redundancy=2, reward_per_item=100, validator_share_bps=1000))
    task = rec.cid_str
    for i in (side_a[0], side_b[0]):
        c.submit(i, rec.data)
    c.wait(lambda: all(c.rpc(i, "task.list")["tasks"] for i in side_a + side_b), 30,
           "the task on every node")
    ka, kb = annotators(2, base=150)
    cut()  # type: ignore[operator]
    if check_cut is not None:
        check_cut()  # type: ignore[operator]
    ra, rb = label_all(nid, [ka], task, items), label_all(nid, [kb], task, items)
    c.submit_many(side_a[0], ra)
    c.submit_many(side_b[0], rb)

    def clock(i: int, k: SigningKey) -> int:
        clk: int = c.rpc(i, "account.get", author=k.peer_id)["clock"]
        return clk

    c.wait(lambda: all(clock(i, ka) == 20 for i in side_a)
           and all(clock(i, kb) == 20 for i in side_b), 60, "each side has its own writes")
    # several sync intervals (1 s) pass: nothing may cross the partition
    time.sleep(3)
    assert all(clock(i, kb) == 0 for i in side_a), "side B's records crossed the cut"
    assert all(clock(i, ka) == 0 for i in side_b), "side A's records crossed the cut"
    assert all(c.status(i)["final_items"] == 0 for i in side_a + side_b), \
        "2 of 4 validators finalized without a quorum"
    healed = time.monotonic()
    heal()  # type: ignore[operator]
    every = side_a + side_b
    c.wait(lambda: all(c.status(i)["final_items"] == 20 for i in every), 120,
           "every item final on every node after healing")
    kinds, clocks = wait_same_records(c, every, [*authors_of(c, [ka, kb]), requester.peer_id],
                                      90, "same records after healing")
    assert clocks[ka.peer_id] == clocks[kb.peer_id] == 20 and kinds["annotation"] == 40
    print(f"\n[partition] healed and converged in {time.monotonic() - healed:.1f}s: {kinds}")


@pytest.fixture
def netlab() -> Iterator[NetLab]:
    reason = netns.probe()
    if reason is not None:
        pytest.skip(f"{reason}; the connection-level partition test still runs")
    with NetLab(4, side_b=[2, 3]) as lab:
        yield lab


def test_partition_link_cut_in_namespaces_heals(cluster_factory, netlab: NetLab) -> None:  # type: ignore[no-untyped-def]
    """A real cut: four nodes in their own namespaces; the link between the two
    bridges goes down (TCP connections stay open but carry nothing) and comes back."""
    c: Cluster = cluster_factory(4, hosts=netlab.hosts, netns=netlab.nodes)
    try:
        c.start().wait_connected(60)
        _partition_scenario(c, [0, 1], [2, 3], netlab.cut, netlab.heal)
    finally:
        c.close()  # before the fixture deletes the namespaces


def test_partition_connection_level_heals(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    """No connection between the groups exists (bootstrap lists name only their own
    group, shown by the peer lists); healing = node0 restarted with every address."""
    c: Cluster = cluster_factory(4)
    a, b = [0, 1], [2, 3]
    for group in (a, b):
        for i in group:
            c.set_bootstrap(i, group)
    c.start()

    def peers(i: int) -> set[str]:
        return {p["peer_id"] for p in c.rpc(i, "node.peers")["peers"]}

    def check_cut() -> None:
        c.wait(lambda: peers(0) == {c.peer_id(1)} and peers(2) == {c.peer_id(3)}, 30,
               "each group connected within itself")
        for group, other in ((a, b), (b, a)):
            for i in group:
                assert not peers(i) & {c.peer_id(j) for j in other}, f"node{i} crosses"

    def heal() -> None:
        c.set_bootstrap(0, range(4))
        c.stop(0)
        c.start(0)
        c.wait(lambda: peers(0) == {c.peer_id(j) for j in (1, 2, 3)}, 30, "node0 bridges")

    _partition_scenario(c, a, b, cut=lambda: None, heal=heal, check_cut=check_cut)


# --------------------------------------------------------------------------- 5
def kubo_vector_bytes(size: int) -> bytes:
    return bytes((i * 31 + 7) % 251 for i in range(size))


def test_multichunk_file_over_bitswap_and_corrupt_block(cluster_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vectors = json.loads((ROOT / "tests/data/unixfs/vectors.json").read_text())
    vec = next(v for v in vectors if v["size"] == 1_048_576)  # four 256 KiB chunks + root
    assert vec["blocks"] > 1
    data = kubo_vector_bytes(vec["size"])
    f = tmp_path / "file.bin"
    f.write_bytes(data)
    c: Cluster = cluster_factory(3, validators=1)
    c.start().wait_connected(60)
    add = subprocess.run([*CLI, "--home", str(c.home(0)), "add", "--json", str(f)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert add.returncode == 0, add.stderr
    root = json.loads(add.stdout)[0]["cid"]
    assert root == vec["cid"], "annot add must give Kubo's CID for these bytes"
    assert not list((c.home(2) / "blocks").rglob("*.data")), "node2 has no blocks yet"
    t0 = time.monotonic()
    cat = subprocess.run([*CLI, "--home", str(c.home(2)), "cat", root], cwd=ROOT,
                         capture_output=True, timeout=120)
    cat_s = time.monotonic() - t0
    assert cat.returncode == 0, cat.stderr.decode()
    assert cat.stdout == data
    fetched = sorted((c.home(2) / "blocks").rglob("*.data"))
    assert len(fetched) == vec["blocks"], [p.name for p in fetched]
    print(f"\n[blocks] annot cat at node2 fetched {vec['blocks']} blocks "
          f"({len(data)} bytes) over bitswap in {cat_s:.2f}s (CLI start included)")

    # corrupt a leaf block on node2's disk: block.get refuses it with a clear error
    leaf = next(p for p in fetched if p.name.startswith("bafkrei"))
    leaf_cid = leaf.name.removesuffix(".data")
    good = leaf.read_bytes()
    leaf.write_bytes(bytes([good[0] ^ 0xFF]) + good[1:])
    with pytest.raises(RPCClientError) as err:
        c.rpc(2, "block.get", cid=leaf_cid)
    assert err.value.code != -32603 and "corrupt" in err.value.message, str(err.value)
    print(f"[blocks] corrupt block refused: {err.value}")
    # the bad copy was moved aside; the next read fetches good bytes from node0 again
    again = c.rpc(2, "block.get", cid=leaf_cid)
    assert base64.b64decode(again["data"]) == good
    assert cid_to_str(cid_from_str(leaf_cid)) == leaf_cid
