"""End to end, real processes: a folder of 2,000 files becomes a task, is labelled,
exported and checked offline on a node that joined late.

Four validators and one observer (``harness.Cluster``). The requester runs
``annot task create --items-dir`` on node 0 with a folder of 2,000 files in nested
folders (one of them large enough to be HAMT-sharded); two simulated annotators,
each with its own key, sign one label per item (one of them wrong at times) and submit them to
different validators. Node 4 starts after that: it syncs the records, resolves the
items directory from its peers over bitswap, and sees every item final. Then on
node 4: ``annot export --car`` and ``annot verify-export`` succeed, the export's
paths are exactly the folder's, the CAR reads under @ipld/car and @helia/unixfs with
the items inside it, and a tampered export fails with a message naming the line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import ANNOT, ROOT, Cluster

from node.rpc.client import NodeUnreachableError, RPCClientError
from protocol.cid import cid_from_str, cid_to_str
from protocol.keys import SigningKey
from protocol.records import Annotation, sign_record
from protocol.unixfs import import_bytes
from protocol.unixfs_dir import DirectoryBuilder

FILES = 2_000
LABELS = ("cat", "dog")
NODE = shutil.which("node") or "/usr/bin/node"
CAR_CHECK = ROOT / "tests" / "js" / "car_check.mjs"


def _daemon_wired() -> bool:
    return "ItemResolver" in (ROOT / "node" / "daemon.py").read_text()


def make_folder(root: Path) -> dict[str, bytes]:
    """2,000 files: 1,200 in one folder (sharded: 1,200 * (name 34 B + CID 36 B) is over
    the 256 KiB estimate only with long names, so these names are long), the rest
    nested two and three levels deep."""
    files: dict[str, bytes] = {}
    for i in range(FILES):
        if i < 1_200:
            rel = f"bulk/photo-{i:05d}-{'x' * 180}.txt"
        else:
            rel = f"set-{i % 7}/part-{i % 3}/item-{i:05d}.txt"
        data = b"item %d\n" % i
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[rel] = data
    return files


def cli(c: Cluster, i: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([*ANNOT, "--home", str(c.home(i)), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert out.returncode == 0, f"annot {' '.join(args)}: {out.stderr[-2000:]}"
    return out


def final_count(c: Cluster, i: int, task: str) -> int:
    """Items final at node ``i``; 0 before it has the task, or while it is too busy
    catching up to answer within the RPC timeout."""
    try:
        return int(c.rpc(i, "task.get", task=task)["items_final"])
    except NodeUnreachableError:
        return 0
    except RPCClientError as exc:
        assert exc.message.startswith("task not found"), exc
        return 0


def local_import(files: dict[str, bytes]) -> tuple[str, dict[str, bytes]]:
    """(directory CID, path -> file CID) of the folder, imported in this process."""
    builder = DirectoryBuilder()
    by_path: dict[str, bytes] = {}
    for path, data in files.items():
        root, _ = import_bytes(data)
        builder.add_file(path, root, len(data))
        by_path[path] = root
    return cid_to_str(builder.finish()[0]), by_path


def truth(path: str) -> str:
    return LABELS[sum(path.encode()) % 2]


# node/daemon.py must route ingest through node.content.items.ItemResolver (the lead's
# wiring, asked for in the report of issue 15's data-set work); until then a folder task
# is never resolved by a running node. strict: once wired this passes, and the marker
# must go.
@pytest.mark.xfail(not _daemon_wired(), reason="ItemResolver not wired in node/daemon.py",
                   strict=True, raises=TimeoutError)
def test_folder_task_labelled_exported_verified(cluster_factory: Any, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    files = make_folder(folder)
    c: Cluster = cluster_factory(n=5, validators=4)
    c.start(0, 1, 2, 3)
    c.wait(lambda: all(c.status(i)["peer_count"] >= 3 for i in range(4)), 30, "mesh")

    made = cli(c, 0, "task", "create", "--json", "--title", "photos", "--label", "cat",
               "--label", "dog", "--items-dir", str(folder), "--redundancy", "1")
    task = json.loads(made.stdout)["task"]
    info = c.rpc(0, "task.get", task=task)
    assert info["item_count"] == FILES and info["items"] == []
    local, by_path = local_import(files)
    assert info["items_dir"] == local  # the directory CID protocol.unixfs_dir builds

    # node 0 resolved its own directory: every path, in path order
    c.wait(lambda: c.rpc(0, "task.items", task=task, limit=1)["resolved"], 20, "resolved")
    annotators = [SigningKey(bytes([100 + k]) * 32) for k in range(2)]
    records: list[list[bytes]] = [[], []]
    expect: dict[str, str] = {}
    for n, (path, item) in enumerate(sorted(by_path.items())):
        k = n % 2  # the annotators take turns; annotator 1 errs on every 10th of its items
        expect[path] = truth(path) if k == 0 or n % 20 != 1 else LABELS[1 - LABELS.index(
            truth(path))]
        records[k].append(sign_record(c.genesis.network_id, annotators[k], len(records[k]) + 1,
                                      Annotation(cid_from_str(task), item, expect[path])).data)
    for k in range(2):
        c.submit_many(k, records[k])  # to different validators

    c.wait(lambda: final_count(c, 0, task) == FILES, 240, "all final")
    c.start(4)  # joins late: sync, then the directory over bitswap
    c.wait(lambda: final_count(c, 4, task) == FILES, 240, "joiner final")
    assert c.rpc(4, "task.items", task=task, limit=1)["resolved"]

    out, car = tmp_path / "export", tmp_path / "export.car"
    summary = json.loads(cli(c, 4, "export", task, "-o", str(out), "--car", str(car),
                             "--json").stdout)
    assert summary["items"] == FILES and summary["final"] == FILES
    genesis = c.root / "genesis.json"
    verified = cli(c, 4, "verify-export", str(out), "--genesis", str(genesis))
    assert "export OK" in verified.stdout

    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(files)  # the folder's names, all
    assert all(r["label"] == expect[r["path"]] for r in rows)
    assert sum(r["label"] != truth(r["path"]) for r in rows) == FILES // 20
    assert len({r["item"] for r in rows}) == len(rows) == FILES
    assert {r["vote_share"] for r in rows} == {1.0}
    workers = {a["worker"] for r in rows for a in r["annotations"]}
    assert workers == {k.peer_id for k in annotators}
    answers = (out / "answers.csv").read_text().splitlines()
    assert answers[0] == "item,worker,label" and len(answers) == 1 + FILES

    ls = subprocess.run([NODE, str(CAR_CHECK), str(car), "--ls"], cwd=CAR_CHECK.parent,
                        capture_output=True, text=True, timeout=120, check=False)
    assert ls.returncode == 0, ls.stderr[-2000:]
    got = json.loads(ls.stdout)
    assert got["missing"] == [] and got["bad"] == [] and got["roots"] == [summary["car_root"]]
    assert {p[len("items/"):] for p in got["files"] if p.startswith("items/")} == set(files)
    assert {"labels.jsonl", "labels.csv", "answers.csv", "task.bin"} <= set(got["files"])

    # tampering: one label changed
    bad = tmp_path / "tampered"
    shutil.copytree(out, bad)
    lines = (bad / "labels.jsonl").read_text().splitlines()
    row = json.loads(lines[7])
    row["label"] = LABELS[1 - LABELS.index(row["label"])]
    lines[7] = json.dumps(row, sort_keys=True)
    (bad / "labels.jsonl").write_text("\n".join(lines) + "\n")
    refused = cli(c, 4, "verify-export", str(bad), "--genesis", str(genesis), check=False)
    assert refused.returncode == 1
    assert f"labels.jsonl line 8: {row['item']} has label {row['label']!r}" in refused.stderr
