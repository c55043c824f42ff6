"""Every ``annot`` command as a subprocess, against one real running node.

``annot run`` itself is what the harness starts; here it is also checked to
refuse a key file readable by others. Errors must be one line on stderr, a
non-zero exit and no traceback.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import ANNOT, ROOT, Cluster

from node.core.home import init_home
from node.rpc.client import RPCClientError
from protocol.cid import cid_from_str, cid_str
from protocol.genesis import genesis_from_json
from protocol.keys import SigningKey
from protocol.records import Annotation, sign_record

PEER_ID = re.compile(r"12D3KooW[1-9A-HJ-NP-Za-km-z]{44}")
CID = re.compile(r"b[a-z2-7]{50,}")
# root CIDs Kubo gives these sizes (`ipfs add --cid-version=1`), from the shared
# UnixFS reference vectors (data/unixfs/vectors.json beside DESIGN.md)
KUBO_CIDS = {
    11: "bafkreic5ts76k7n66jmmum5zpih6ttjqssggqk4eenqwyh5jw7zcowlenu",
    262145: "bafybeich6cqd6yabw3cku6edwmz4rvwe275nx2l6ootvc2bpbt5bdvarua",  # 3 blocks
}


def annot(*args: str | Path, ok: bool = True,
          timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANNOT_HOME", "ANNOT_DEBUG")}
    out = subprocess.run([*ANNOT, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, env=env)
    if ok:
        assert out.returncode == 0, f"annot {' '.join(map(str, args))}: {out.stderr}"
        assert out.stderr == "" or "Traceback" not in out.stderr
    return out


def annot_many(*argvs: list[str | Path]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands at once (each CLI start costs an interpreter)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANNOT_HOME", "ANNOT_DEBUG")}
    procs = [subprocess.Popen([*ANNOT, *map(str, a)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for a in argvs]
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=60)
            out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


def annot_bytes(*args: str | Path) -> bytes:
    out = subprocess.run([*ANNOT, *map(str, args)], cwd=ROOT, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def one_line_error(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A user error: non-zero exit, exactly one line on stderr, no traceback."""
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@dataclass
class Live:
    cluster: Cluster
    home: Path
    tmp: Path

    def __call__(self, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """``annot <args> --home <node home>``: --home goes after the (sub)command."""
        words = list(args)
        split = 2 if words[0] in ("task", "item") else 1
        return annot(*words[:split], "--home", self.home, *words[split:], ok=ok)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("cli_live")
    cluster = Cluster(tmp / "cluster", n=1)
    try:
        cluster.start()
        yield Live(cluster, cluster.home(0), tmp)
    finally:
        cluster.close()


def vector(size: int) -> tuple[bytes, str]:
    """The reference vectors' content (byte i is (31 i + 7) mod 251) and its Kubo CID."""
    return bytes((i * 31 + 7) % 251 for i in range(size)), KUBO_CIDS[size]


# ---------------------------------------------------------------- offline commands


def test_init_id_refuse_existing(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    made = annot("init", "--home", home).stdout
    assert f"initialized {home}" in made
    peer = PEER_ID.search(made)
    assert peer is not None
    assert annot("id", "--home", home).stdout.strip() == peer.group()
    assert (home / "node.key").stat().st_mode & 0o777 == 0o600
    one_line_error(annot("init", "--home", home, ok=False), "already exists", str(home))
    one_line_error(annot("id", "--home", tmp_path / "none", ok=False), "not found")


def test_keygen_and_genesis(tmp_path: Path) -> None:
    key = tmp_path / "v.key"
    pid = annot("keygen", "-o", key).stdout.strip()
    assert PEER_ID.fullmatch(pid) and key.stat().st_mode & 0o777 == 0o600
    one_line_error(annot("keygen", "-o", key, ok=False), "refusing to overwrite")

    out = tmp_path / "genesis.json"
    nid = annot("genesis", "new", "--name", "net", "--validator", f"{pid}:2", "-o", out)
    genesis = genesis_from_json(out.read_text())
    assert nid.stdout.strip() == genesis.network_id.hex()
    assert [(v.peer_id, v.weight) for v in genesis.validators] == [(pid, 2)]
    bad = annot("genesis", "new", "--name", "n", "--validator", "nobody", "-o",
                tmp_path / "g2.json", ok=False)
    one_line_error(bad, "invalid genesis")
    assert annot("genesis", "new", "--name", "n", "--validator", f"{pid}:x", "-o",
                 tmp_path / "g3.json", ok=False).returncode == 2  # a usage error

    joined = tmp_path / "joined"
    annot("init", "--home", joined, "--genesis", out)
    assert genesis_from_json((joined / "genesis.json").read_text()) == genesis


def test_aggregate(tmp_path: Path) -> None:
    path = tmp_path / "answers.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item", "worker", "label"])
        for item, labels in {"i1": "aab", "i2": "bbb", "i3": "abb"}.items():
            for worker, lab in zip(("w1", "w2", "w3"), labels, strict=True):
                w.writerow([item, worker, lab])
    for rule in ("majority", "dawid-skene"):
        lines = annot("aggregate", "--rule", rule, path).stdout.splitlines()
        assert lines[0] == "item,label"
        assert dict(line.split(",") for line in lines[1:]) == {"i1": "a", "i2": "b", "i3": "b"}
    as_json = json.loads(annot("aggregate", "--json", "--rule", "majority", path).stdout)
    assert {"item": "i2", "label": "b"} in as_json["labels"] and as_json["dropped"] == 0
    # a worker answering an item twice: the first answer wins (as on the network), said
    with path.open("a", newline="") as f:
        csv.writer(f).writerow(["i1", "w1", "b"])
    twice = annot("aggregate", "--rule", "majority", path)
    assert dict(line.split(",") for line in twice.stdout.splitlines()[1:])["i1"] == "a"
    assert twice.stderr.startswith("dropped 1 duplicate answer(s)"), twice.stderr
    broken = tmp_path / "broken.csv"
    broken.write_text("item,worker,label\ni1,w1\n")
    one_line_error(annot("aggregate", "--rule", "majority", broken, ok=False), str(broken))
    assert annot("aggregate", "--rule", "mode", path, ok=False).returncode == 2


def test_run_refuses_readable_key(tmp_path: Path) -> None:
    home = tmp_path / "loose"
    init_home(home)
    (home / "node.key").chmod(0o644)
    out = annot("run", "--home", home, ok=False, timeout=30)
    line = one_line_error(out, "node.key", "chmod 600")
    assert "group or others" in line
    assert not (home / "rpc.url").exists()


# ---------------------------------------------------------------- against the node


def test_status_and_peers(live: Live) -> None:
    pid = live.cluster.peer_id(0)
    human, as_json, peers = annot_many(["status", "--home", live.home],
                                       ["status", "--home", live.home, "--json"],
                                       ["peers", "--home", live.home])
    assert re.search(rf"^peer_id:\s+{pid}$", human.stdout, re.M), human.stderr
    assert f"/p2p/{pid}" in human.stdout and re.search(r"^validator:\s+yes$", human.stdout, re.M)
    status = json.loads(as_json.stdout)
    assert status["peer_id"] == pid and status["validator"] is True
    assert peers.returncode == 0 and peers.stdout.strip() == "(none)"  # a one-node network


def test_no_node_running(tmp_path: Path) -> None:
    home = tmp_path / "idle"
    init_home(home)
    one_line_error(annot("status", "--home", home, ok=False), "node not running",
                   "annot run --home")
    one_line_error(annot("ledger", "--home", tmp_path / "void", ok=False), "not running")


def test_add_and_cat(live: Live) -> None:
    files = []
    for size in (11, 262145):
        data, cid = vector(size)
        path = live.tmp / f"v{size}.bin"
        path.write_bytes(data)
        files.append((path, cid, data))
    out = live("add", *[p for p, _, _ in files]).stdout.splitlines()
    assert out == [f"added {cid} {path}" for path, cid, _ in files]  # Kubo's CIDs
    assert annot_bytes("cat", "--home", live.home, files[1][1]) == files[1][2]  # 3 blocks
    assert annot_bytes("cat", "--home", live.home, "--raw", files[0][1]) == files[0][2]

    missing = cid_str(b"nobody has this")
    v0, junk, absent, no_file = annot_many(
        # a CIDv0 is read as its CIDv1 (as Kubo does), and that block is not here
        ["cat", "--home", live.home, "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"],
        ["cat", "--home", live.home, "not-a-cid"],
        ["cat", "--home", live.home, missing],
        ["add", "--home", live.home, live.tmp / "no-such-file"],
    )
    one_line_error(v0, "block not found: bafybei")
    one_line_error(junk, "not-a-cid")
    one_line_error(absent, "block not found", missing)
    assert no_file.returncode == 2 and "does not exist" in no_file.stderr


def test_task_label_item_certificate(live: Live, tmp_path: Path) -> None:
    rpc = live.cluster.client(0).call
    items = [cid_str(f"cli item {i}".encode()) for i in range(2)]
    task = live("task", "create", "--title", "CLI task", "--label", "cat", "--label", "dog",
                "--item", items[0], "--item", items[1], "--redundancy", "2", "--reward",
                "1000", "--validator-share", "1000").stdout.strip()
    assert CID.fullmatch(task)
    assert rpc("task.get", task=task)["items"] == items

    # node key, then the annotator's own key (signed locally, submitted like a wallet)
    key = tmp_path / "me.key"
    show, listed, labelled, keygen = annot_many(
        ["task", "show", "--home", live.home, task], ["task", "list", "--home", live.home],
        ["label", "--home", live.home, task, items[0], "cat"], ["keygen", "-o", key])
    assert re.search(r"^title:\s+CLI task$", show.stdout, re.M), show.stderr
    # the items table: PATH and ITEM ("-": an inline task's items have no path)
    assert re.search(rf"^PATH\s+ITEM\n-\s+{items[0]}\n-\s+{items[1]}$", show.stdout, re.M)
    listing = listed.stdout.splitlines()
    assert listing[0].split() == ["TASK", "TITLE", "ITEMS", "FINAL", "STATUS"], listed.stderr
    assert [line.split() for line in listing if line.startswith(task)] == [
        [task, "CLI", "task", "2", "0", "open"]]
    assert CID.fullmatch(labelled.stdout.strip()), labelled.stderr
    me = keygen.stdout.strip()
    for item, lab in zip(items, ["cat", "dog"], strict=True):
        out = live("label", task, item, lab, "--key", key).stdout.strip()
        assert re.fullmatch(CID.pattern + r": recorded, \d/2 labels(; final: '\w+')?", out), out
    assert rpc("account.get", author=me)["clock"] == 2
    # a second label by one author for one item is a valid record, but the lowest seq
    # wins on every node (the store's rule), so the first label stays; the CLI says so
    # and exits non-zero (issue 13, finding 5: never exit 0 on a lost label)
    again = live("label", task, items[1], "cat", "--key", key, ok=False)
    assert again.returncode == 1
    assert "ignored: you already labelled this item with 'dog'" in again.stderr
    mine = [a for a in rpc("item.get", task=task, item=items[1])["annotations"]
            if a["author"] == me]
    assert [a["label"] for a in mine] == ["dog"]
    live("label", task, items[1], "dog")

    live.cluster.wait(lambda: all(rpc("item.get", task=task, item=i)["final"] for i in items),
                      30, "both items final", interval=0.1)
    cert = tmp_path / "cert.bin"
    shown_item, written = annot_many(["item", "show", "--home", live.home, task, items[0]],
                                     ["certificate", "--home", live.home, task, items[0],
                                      "-o", cert])
    item_human = shown_item.stdout
    assert re.search(r"^final:\s+cat$", item_human, re.M), shown_item.stderr
    assert re.search(r"^AUTHOR\s+LABEL\s+SEQ$", item_human, re.M)
    assert me in item_human and live.cluster.peer_id(0) in item_human
    wrote = written.stdout
    assert f"wrote {cert}" in wrote and re.search(r"^value:\s+cat$", wrote, re.M)
    assert cid_str(cert.read_bytes()) == rpc("item.get", task=task, item=items[0])["certificate"]
    genesis = live.cluster.root / "genesis.json"
    ok = annot("verify-certificate", cert, "--genesis", genesis).stdout
    assert ok.startswith("certificate OK") and re.search(r"^value:\s+cat$", ok, re.M)
    assert re.search(rf"^signers:\s+{live.cluster.peer_id(0)}$", ok, re.M)

    data = bytearray(cert.read_bytes())
    data[-1] ^= 0x01  # inside the last vote's signature
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(bytes(data))

    # the tally, once every item is final, and the ledger it feeds
    live.cluster.wait(lambda: rpc("tally.get", task=task)["final"], 30, "final tally",
                      interval=0.1)
    bad_task = cid_str(b"no such task")
    tally_human, ledger, bad, unknown, bad_param, stranger = annot_many(
        ["tally", "--home", live.home, task],
        ["ledger", "--home", live.home],
        ["verify-certificate", tampered, "--genesis", genesis],
        ["task", "show", "--home", live.home, bad_task],
        ["tally", "--home", live.home, "nope"],
        ["item", "show", "--home", live.home, task, cid_str(b"stranger")],
    )
    assert tally_human.returncode == 0, tally_human.stderr
    assert re.search(r"^final:\s+yes$", tally_human.stdout, re.M)
    assert re.search(r"^root:\s+[0-9a-f]{64}$", tally_human.stdout, re.M)
    assert ledger.returncode == 0, ledger.stderr
    rows = ledger.stdout.splitlines()
    assert rows[0].split() == ["AUTHOR", "BALANCE", "AGREED", "DISAGREED", "REPUTATION"]
    balance = {a["author"]: a["balance"] for a in rpc("ledger.get")["accounts"]}[me]
    assert balance == 900  # half of (1000 - 10% to validators) on each of two items
    assert any(line.split()[:4] == [me, "900", "2", "0"] for line in rows[1:]), rows
    one_line_error(bad, "NOT valid", str(tampered))
    one_line_error(unknown, "task not found", bad_task)
    one_line_error(bad_param, "param 'task'", "nope")
    one_line_error(stranger, "item not found")


def test_task_from_items_dir(live: Live, tmp_path: Path) -> None:
    folder = tmp_path / "items"
    folder.mkdir()
    data, cid = vector(262145)
    (folder / "big.bin").write_bytes(data)
    (folder / "small.txt").write_bytes(b"hello")
    task = live("task", "create", "--title", "dir", "--label", "x", "--label", "y",
                "--items-dir", folder).stdout.strip()
    shown = live.cluster.rpc(0, "task.get", task=task)
    assert shown["items"] == [] and shown["item_count"] == 2  # the record names a folder
    added = json.loads(live("add", "-r", "--json", folder).stdout)[0]
    assert added["cid"] == shown["items_dir"]  # the same UnixFS directory CID
    assert added["files"] == [{"path": "big.bin", "cid": cid},
                              {"path": "small.txt", "cid": cid_str(b"hello")}]
    assert live.cluster.rpc(0, "block.get", cid=cid_str(b"hello"))["size"] == 5
    no_items = live("task", "create", "--title", "t", "--label", "x", ok=False)
    assert no_items.returncode == 2 and "--items-dir" in no_items.stderr


def test_a_reused_seq_is_refused_not_evidence(live: Live) -> None:
    """A client that reuses a seq (two labels sent at once) is refused with the next free
    seq, and never becomes fork evidence against it: ``annot evidence`` stays empty.
    (Evidence between nodes: tests/node/consensus/test_forks.py; its table: test_cli_rpc.)"""
    key = SigningKey(hashlib.sha256(b"cli forker").digest())
    items = [cid_str(b"evidence item")]
    task = live.cluster.rpc(0, "task.create", title="evidence", labels=["cat", "dog"],
                            items=items, redundancy=2, reward_per_item=0,
                            validator_share_bps=0)["task"]
    net = live.cluster.genesis.network_id
    first, second = (sign_record(net, key, 1, Annotation(cid_from_str(task),
                                                         cid_from_str(items[0]), lab))
                     for lab in ("cat", "dog"))
    live.cluster.submit(0, first.data)
    with pytest.raises(RPCClientError, match="already used by another record; the next "
                                             "free seq is 2"):
        live.cluster.submit(0, second.data)
    rows = live("evidence").stdout.splitlines()
    assert rows == ["(none)"], rows
