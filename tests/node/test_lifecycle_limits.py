"""Genesis limits are checked before a task is signed or any file uploaded.

``annot task create`` runs against homes whose node is not even running: a task
over a limit must be refused by the limit check (naming the limit and what to
do), before the CLI would reach for the node, and nothing lands in the block
store. The pure check (:func:`protocol.limits.check_body`) is pinned too: the
size it predicts is the size of the signed record.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from harness import ANNOT, ROOT

from node.core.home import init_home
from protocol.cid import cid_bytes, cid_str
from protocol.errors import FieldTypeError
from protocol.genesis import Genesis, Params, Validator
from protocol.keys import SigningKey
from protocol.limits import LimitError, check_body, record_size
from protocol.records import Task, sign_record

KEY = SigningKey(b"\x61" * 32)


def annot(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANNOT_HOME", "ANNOT_DEBUG")}
    return subprocess.run([*ANNOT, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)


def one_line_error(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def home_with(tmp: Path, params: Params) -> Path:
    genesis = Genesis(name="limits", validators=(Validator(KEY.peer_id, 1),), params=params)
    genesis.validate()
    (tmp / "genesis.json").write_text(genesis.to_json())
    home = tmp / "home"
    init_home(home, tmp / "genesis.json", key=KEY)
    return home


def blocks(home: Path) -> list[Path]:
    return [p for p in (home / "blocks").rglob("*") if p.is_file()]


def test_too_many_inline_items_refused_before_anything(tmp_path: Path) -> None:
    home = home_with(tmp_path, Params())
    items = [a for k in range(4_100) for a in ("--item", cid_str(f"i{k}".encode()))]
    line = one_line_error(annot("task", "create", "--home", home, "--title", "t",
                                "--label", "a", "--label", "b", *items))
    assert "max_items_per_task" in line and "4,100, over the genesis limit of 4,096" in line
    assert "--items-dir" in line  # what to do instead


def test_record_size_refused_before_anything(tmp_path: Path) -> None:
    home = home_with(tmp_path, Params(max_record_bytes=2_048))
    items = [a for k in range(60) for a in ("--item", cid_str(f"i{k}".encode()))]
    line = one_line_error(annot("task", "create", "--home", home, "--title", "t",
                                "--label", "a", "--label", "b", *items))
    assert "max_record_bytes" in line and "over the genesis limit of 2,048" in line, line


def test_items_dir_checked_before_upload(tmp_path: Path) -> None:
    home = home_with(tmp_path, Params())
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for k in range(5):
        (folder / "sub" / f"{k}.txt").write_text(f"item {k}")
    labels = [a for k in range(300) for a in ("--label", f"l{k}")]
    line = one_line_error(annot("task", "create", "--home", home, "--title", "t",
                                "--items-dir", folder, *labels))
    assert "labels: 300 entries, over 256" in line, line
    assert blocks(home) == []  # no file of the folder was uploaded


def test_check_body_predicts_the_signed_size() -> None:
    items = tuple(cid_bytes(f"i{k}".encode()) for k in range(50))
    task = Task(title="t", labels=("a", "b"), items=items, redundancy=3, reward_per_item=1,
                validator_share_bps=0)
    rec = sign_record(bytes(32), KEY, 2**63 - 1, task)
    assert record_size(task) == len(rec.data)
    check_body(task, Params(max_record_bytes=len(rec.data)))
    with pytest.raises(LimitError, match="max_record_bytes"):
        check_body(task, Params(max_record_bytes=len(rec.data) - 1))
    with pytest.raises(LimitError, match="max_items_per_task"):
        check_body(task, Params(max_items_per_task=49))
    with pytest.raises(FieldTypeError, match="redundancy"):
        check_body(Task(title="t", labels=("a", "b"), items=items, redundancy=0,
                        reward_per_item=1, validator_share_bps=0), Params())
