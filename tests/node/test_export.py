"""``annot export`` files and ``annot verify-export``, in process, with real signatures.

A four-validator genesis, a directory task of 40 files (one file at two paths), and
precommits by three validators make real certificates; :func:`write_export` writes
the folder as the CLI does, ``items.car`` holds the directory. The verifier accepts
it; each tampering below is refused with a message naming the file and the line.
The JSON-lines shape is pinned: the same keys and types on every line, as the
``datasets`` JSON loader needs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from node.cli.export import Export, write_export
from node.cli.verify_export import ExportInvalid, verify_export
from protocol.car import encode_car_block, encode_car_header
from protocol.cid import cid_from_str, cid_to_str
from protocol.genesis import Genesis, Params, Validator
from protocol.keys import SigningKey
from protocol.records import PRECOMMIT, Task, Vote, VoteEntry, sign_record
from protocol.unixfs import import_bytes
from protocol.unixfs_dir import DirectoryBuilder

VALIDATORS = [SigningKey(bytes([i + 1]) * 32) for i in range(4)]
REQUESTER = SigningKey(b"\x42" * 32)
WORKERS = ["12D3KooWworkerA", "12D3KooWworkerB"]


def genesis() -> Genesis:
    g = Genesis("export-test", tuple(Validator(k.peer_id, 1) for k in VALIDATORS),
                params=Params())
    g.validate()
    return g


@pytest.fixture
def export(tmp_path: Path) -> Path:
    g = genesis()
    builder = DirectoryBuilder(shard_threshold=1_000)  # sharded, with sub-shards
    paths: dict[str, list[str]] = {}
    for i in range(40):
        data = b"photo %d" % (i if i != 39 else 0)  # the last file repeats the first
        root, _ = import_bytes(data)
        path = f"album-{i % 3}/photo-{i:03d}.jpg"
        builder.add_file(path, root, len(data))
        paths.setdefault(cid_to_str(root), []).append(path)
    dir_root, _, dir_blocks = builder.finish()
    task = Task(title="photos", labels=("cat", "dog"), items=(), redundancy=2,
                reward_per_item=10, validator_share_bps=1000, items_dir=dir_root,
                item_count=len(paths))
    record = sign_record(g.network_id, REQUESTER, 1, task)
    items = sorted(paths, key=lambda c: paths[c][0])
    final = items[:-3]  # three items not final yet
    value = {c: ("cat" if n % 3 else "dog") for n, c in enumerate(items)}
    entries = tuple(VoteEntry(record.cid, cid_from_str(c), value[c]) for c in final)
    votes = [sign_record(g.network_id, k, 1, Vote(PRECOMMIT, 2, entries))
             for k in VALIDATORS[:3]]
    ex = Export(record.cid_str, record.data, task, items, paths)
    for c in final:
        ex.certificates[c] = {"item": c, "value": value[c], "round": 2,
                              "votes": [v.cid_str for v in votes]}
    ex.votes = {v.cid_str: v.data for v in votes}
    for n, c in enumerate(items):
        ex.annotations[c] = {WORKERS[0]: value[c], WORKERS[1]: value[c] if n % 4 else "cat"}
    out = tmp_path / "export"
    write_export(ex, out)
    with (out / "items.car").open("wb") as f:
        f.write(encode_car_header([dir_root]))
        for cid, data in dir_blocks:
            f.write(encode_car_block(cid, data))
    return out


def test_a_true_export_verifies(export: Path) -> None:
    summary = verify_export(export, genesis())
    assert summary == {"task": summary["task"], "items": 39, "certificates": 36, "final": 36,
                       "ok": True}


def test_jsonl_shape_is_uniform(export: Path) -> None:
    rows = [json.loads(line) for line in (export / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 39
    keys = {"item", "path", "paths", "label", "round", "vote_share", "annotations"}
    assert all(set(r) == keys for r in rows)
    assert all(isinstance(r["paths"], list) and r["path"] == r["paths"][0] for r in rows)
    assert {type(r["label"]) for r in rows} == {str, type(None)}
    assert {a_key for r in rows for a in r["annotations"] for a_key in a} == {"worker", "label"}
    dup = [r for r in rows if len(r["paths"]) == 2]
    assert [r["paths"] for r in dup] == [["album-0/photo-000.jpg", "album-0/photo-039.jpg"]]
    header = (export / "labels.csv").read_text().splitlines()[0]
    assert header == "item,path,label,round,vote_share," + ",".join(sorted(WORKERS))


def _edit_jsonl(name: str, line: int, change: Callable[[dict[str, object]], None]
                ) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        lines = (folder / name).read_text().splitlines()
        row = json.loads(lines[line])
        change(row)
        lines[line] = json.dumps(row, sort_keys=True)
        (folder / name).write_text("\n".join(lines) + "\n")
    return edit


def _flip(row: dict[str, object]) -> None:
    row["label"] = "dog" if row["label"] == "cat" else "cat"


def _drop_vote(folder: Path) -> None:
    sorted((folder / "votes").iterdir())[0].unlink()


def _corrupt_vote(folder: Path) -> None:
    vote = sorted((folder / "votes").iterdir())[0]
    vote.write_bytes(vote.read_bytes()[:-1] + b"\x00")


def _two_votes_only(row: dict[str, object]) -> None:
    row["votes"] = row["votes"][:2]  # type: ignore[index]


def _foreign_item(row: dict[str, object]) -> None:
    row["item"] = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def _rename(row: dict[str, object]) -> None:
    row["path"] = "album-9/renamed.jpg"


@pytest.mark.parametrize(("tamper", "message"), [
    (_edit_jsonl("labels.jsonl", 4, _flip), "labels.jsonl line 5: b"),
    (_edit_jsonl("labels.jsonl", 4, _rename), "labels.jsonl line 5: b"),
    (_edit_jsonl("labels.jsonl", 38, lambda r: r.update(label="cat", round=2)),
     "its certificate says None round None"),
    (_edit_jsonl("certificates.jsonl", 0, _two_votes_only),
     "certificates.jsonl line 1 (b"),
    (_edit_jsonl("certificates.jsonl", 2, _foreign_item), "is not an item of the task"),
    # certificates after the first of a vote set: their own entry and round still count
    (_edit_jsonl("certificates.jsonl", 4, lambda r: r.update(
        value="dog" if r["value"] == "cat" else "cat")), "no entry for this item with value"),
    (_edit_jsonl("certificates.jsonl", 5, lambda r: r.update(round=3)),
     "round 2, certificate round 3"),
    (_drop_vote, "vote record b"),
    (_corrupt_vote, "votes/b"),
    (lambda f: (f / "items.car").write_bytes(b"\x02\xa0\x00"), "items.car:"),
    (lambda f: (f / "answers.csv").write_text("item,worker,label\n"),
     "answers.csv: not the annotations of labels.jsonl"),
    (lambda f: (f / "task.bin").write_bytes((f / "task.bin").read_bytes()[:-2]), "task.bin:"),
    (lambda f: (f / "labels.jsonl").write_text(
        "\n".join((f / "labels.jsonl").read_text().splitlines()[:-1]) + "\n"),
     "labels.jsonl: 1 items missing"),
])
def test_tampering_is_refused(export: Path, tmp_path: Path, tamper: Callable[[Path], None],
                              message: str) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(export, bad)
    tamper(bad)
    with pytest.raises(ExportInvalid) as info:
        verify_export(bad, genesis())
    assert message in str(info.value)


def test_certificate_reasons_are_precise(export: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(export, bad)
    _edit_jsonl("certificates.jsonl", 0, _two_votes_only)(bad)
    with pytest.raises(ExportInvalid, match="signers' weight 2 of 4 is not more than 2/3"):
        verify_export(bad, genesis())
