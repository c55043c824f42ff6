"""The CLI's RPC commands against a real server (in a thread) over a fake NodeAPI."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fake_rpc_api import ITEM, PEER, PEER2, TASK, FakeNodeAPI, serve_in_thread

from node.cli.main import cli
from node.rpc.api import TaskSpec
from protocol.cid import cid_from_str, cid_to_str
from protocol.unixfs import CHUNK_SIZE
from protocol.unixfs_dir import walk_files


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeNodeAPI, Path]]:
    home = tmp_path_factory.mktemp("home")
    api = FakeNodeAPI()
    with serve_in_thread(api, home):
        yield api, home


def annot(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args[:1], "--home", str(home), *args[1:]],
                              catch_exceptions=False)


def annot2(home: Path, group: str, *args: str) -> Result:
    return CliRunner().invoke(cli, [group, args[0], "--home", str(home), *args[1:]],
                              catch_exceptions=False)


def test_status(served: tuple[FakeNodeAPI, Path]) -> None:
    _, home = served
    human = annot(home, "status")
    assert human.exit_code == 0, human.output
    assert re.search(rf"^peer_id: +{PEER}$", human.stdout, re.M)
    assert f"/p2p/{PEER}" in human.stdout
    as_json = json.loads(annot(home, "status", "--json").stdout)
    assert as_json["record_count"] == 7


def test_peers_table(served: tuple[FakeNodeAPI, Path]) -> None:
    out = annot(served[1], "peers").stdout.splitlines()
    assert out[0].split() == ["PEER", "ID", "VALIDATOR", "ADDRS"]
    assert out[1].split() == [PEER2, "no", "/ip4/10.0.0.2/tcp/4001"]


def test_task_create_list_show(served: tuple[FakeNodeAPI, Path]) -> None:
    api, home = served
    result = annot2(home, "task", "create", "--title", "cats", "--label", "cat", "--label",
                    "dog", "--item", ITEM, "--redundancy", "2", "--reward", "50",
                    "--close-time", "2030-01-01T00:00:00")
    assert result.exit_code == 0, result.output
    created = result.stdout.strip()
    assert api.tasks[created] == TaskSpec("cats", ("cat", "dog"), (ITEM,), 2, 50, 1000,
                                          1893456000)
    listing = annot2(home, "task", "list").stdout
    assert "TASK" in listing and TASK in listing and "open" in listing
    assert "(more: annot task list --cursor c2)" in listing
    shown = annot2(home, "task", "show", TASK, "--json")
    assert json.loads(shown.stdout)["title"] == "cats"


def test_task_create_from_items_dir(served: tuple[FakeNodeAPI, Path], tmp_path: Path) -> None:
    api, home = served
    (tmp_path / "a.txt").write_bytes(b"first")
    (tmp_path / "b.bin").write_bytes(bytes(range(256)) * (CHUNK_SIZE // 128))  # 2 chunks
    result = annot2(home, "task", "create", "--title", "t", "--label", "x",
                    "--items-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    spec = api.tasks[result.stdout.strip()]
    assert spec.items == () and spec.item_count == 2 and spec.items_dir in api.blocks
    assert spec.items_dir is not None
    files = dict(walk_files(lambda c: api.blocks[cid_to_str(c)], cid_from_str(spec.items_dir)))
    assert sorted(files) == ["a.txt", "b.bin"]  # a folder task keeps the file names
    big = annot(home, "cat", cid_to_str(files["b.bin"]))
    assert big.stdout_bytes == (tmp_path / "b.bin").read_bytes()


def test_add_and_cat(served: tuple[FakeNodeAPI, Path], tmp_path: Path) -> None:
    _, home = served
    (tmp_path / "f.txt").write_bytes(b"hello annot\n")
    added = annot(home, "add", str(tmp_path / "f.txt"), "--json")
    assert added.exit_code == 0, added.output
    cid = json.loads(added.stdout)[0]["cid"]
    assert cid.startswith("bafk")
    assert annot(home, "cat", cid).stdout_bytes == b"hello annot\n"
    assert annot(home, "cat", "--raw", cid).stdout_bytes == b"hello annot\n"


def test_label_item_certificate(served: tuple[FakeNodeAPI, Path], tmp_path: Path) -> None:
    api, home = served
    labelled = annot(home, "label", TASK, ITEM, "cat")
    assert labelled.exit_code == 0 and labelled.stdout.startswith("bafk")
    assert api.calls[-1] == ("annotation_create", (TASK, ITEM, "cat"))
    item = annot2(home, "item", "show", TASK, ITEM).stdout
    assert "final:" in item and "AUTHOR" in item and PEER in item
    out = tmp_path / "cert.bin"
    cert = annot(home, "certificate", TASK, ITEM, "-o", str(out))
    assert cert.exit_code == 0 and out.read_bytes() == b"\x93cert"
    assert "value:" in cert.stdout and f"wrote {out}" in cert.stdout


@pytest.mark.parametrize(("args", "expect"), [
    (("tally", TASK), "root:"),
    (("ledger",), "REPUTATION"),
    (("evidence",), f"fork  {PEER2}  1"),
])
def test_read_commands(served: tuple[FakeNodeAPI, Path], args: tuple[str, ...],
                       expect: str) -> None:
    result = annot(served[1], *args)
    assert result.exit_code == 0 and expect in result.stdout
    assert json.loads(annot(served[1], *args, "--json").stdout)


def test_rpc_error_is_one_line(served: tuple[FakeNodeAPI, Path]) -> None:
    result = annot2(served[1], "task", "show", ITEM)
    assert result.exit_code == 1
    assert result.stderr == f"Error: task not found: {ITEM} (code -32001)\n"
    bad = annot2(served[1], "task", "show", "nope")
    assert bad.exit_code == 1 and "param 'task': expected a CIDv1" in bad.stderr


def test_not_running_is_one_line(tmp_path: Path) -> None:
    result = annot(tmp_path, "status")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: node not running: {tmp_path}/rpc.url not found — "
                             f"start it with `annot run --home {tmp_path}`\n")


def test_stale_token_is_one_line(served: tuple[FakeNodeAPI, Path], tmp_path: Path) -> None:
    (tmp_path / "rpc.url").write_text((served[1] / "rpc.url").read_text())
    (tmp_path / "rpc.token").write_text("stale")
    result = annot(tmp_path, "ledger")
    assert result.exit_code == 1 and "unauthorized" in result.stderr
    assert result.stderr.count("\n") == 1
