"""``annot verify-export DIR --genesis G``: check an export offline, file by file.

Checks, each failure named with its file and line:

* ``task.bin`` decodes and its signature verifies on the genesis' network;
* the task's items: its ``items.car`` holds the items directory the record names
  (a directory task), walked and counted as every node counts it; or the record's list;
* every line of ``certificates.jsonl`` rebuilds, from the ``votes/`` records, a
  certificate that :func:`protocol.certificate.verify_certificate` accepts, for an
  item of the task;
* ``labels.jsonl`` has one row per item, in the exported shape, whose label and round
  are its certificate's (or none without one), whose paths are the item's paths in the
  directory, and whose vote share matches its annotations; ``labels.csv`` and
  ``answers.csv`` say the same as ``labels.jsonl``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from node.errors import NodeError
from protocol.car import decode_car
from protocol.certificate import build_certificate, verify_certificate
from protocol.cid import cid_from_str, cid_to_str, verify_block
from protocol.errors import CertificateError, ProtocolError
from protocol.genesis import Genesis
from protocol.records import Task, Vote, VoteEntry, decode_record
from protocol.unixfs_dir import walk_files

ROW_KEYS: dict[str, type | tuple[type, ...]] = {
    "item": str, "path": (str, type(None)), "paths": list, "label": (str, type(None)),
    "round": (int, type(None)), "vote_share": (float, int, type(None)), "annotations": list,
}


class ExportInvalid(NodeError):
    """The export does not prove what it says; the message names the file and line."""


def _items(folder: Path, task: Task) -> tuple[list[bytes], dict[bytes, list[str]]]:
    if task.items_dir is None:
        return list(task.items), {}
    try:
        roots, blocks = decode_car((folder / "items.car").read_bytes())
        if roots != [task.items_dir]:
            raise ExportInvalid("items.car: its root is not the task's items directory "
                                f"{cid_to_str(task.items_dir)}")
        files = list(walk_files(blocks.__getitem__, task.items_dir))
    except KeyError as exc:
        raise ExportInvalid(f"items.car: block {cid_to_str(exc.args[0])} of the items "
                            "directory is missing") from None
    except (OSError, ProtocolError) as exc:
        raise ExportInvalid(f"items.car: {exc}") from None
    paths: dict[bytes, list[str]] = {}
    for path, cid in sorted(files):
        paths.setdefault(cid, []).append(path)
    if len(paths) != task.item_count:
        raise ExportInvalid(f"items.car: the directory holds {len(paths)} distinct files, the "
                            f"task says {task.item_count}")
    return list(paths), paths


class _VoteSets:
    """Certificates that share one set of precommits (a vote batch covers up to hundreds
    of items) differ only in their entry. The first of each (votes, round) gets the full
    :func:`verify_certificate`; every other one is checked for what depends on its item,
    the entry ``(task, item, value)`` in each vote, which verify_certificate checks too."""

    def __init__(self, genesis: Genesis) -> None:
        self.genesis = genesis
        self.checked: dict[tuple[tuple[bytes, ...], int],
                           list[tuple[str, frozenset[VoteEntry]]]] = {}

    def verify(self, task: bytes, item: bytes, value: str, rnd: int, refs: list[bytes],
               data: list[bytes]) -> None:
        key = (tuple(sorted(refs)), rnd)
        known = self.checked.get(key)
        if known is None:
            cert = build_certificate(task, item, value, rnd, data)
            verify_certificate(cert, self.genesis)
            known = []
            for vote in cert.votes:  # in the certificate's order, as its messages count
                r = decode_record(vote, self.genesis.network_id, verify=False)
                assert isinstance(r.body, Vote)  # verify_certificate checked it
                known.append((r.author_id, frozenset(r.body.entries)))
            self.checked[key] = known
            return
        want = VoteEntry(task, item, value)
        for i, (who, entries) in enumerate(known):
            if want not in entries:
                raise CertificateError(f"vote {i} by {who}: no entry for this item with "
                                       f"value {value!r}")


def _certificates(folder: Path, genesis: Genesis, task_id: bytes, items: set[bytes]
                  ) -> dict[bytes, tuple[str, int]]:
    out: dict[bytes, tuple[str, int]] = {}
    votes: dict[str, bytes] = {}
    sets = _VoteSets(genesis)
    for n, line in enumerate((folder / "certificates.jsonl").read_text().splitlines(), 1):
        where = f"certificates.jsonl line {n}"
        try:
            c = json.loads(line)
            item = cid_from_str(c["item"])
            refs = [cid_from_str(v) for v in c["votes"]]
            value, rnd = c["value"], c["round"]
        except (ValueError, KeyError, TypeError, ProtocolError) as exc:
            raise ExportInvalid(f"{where}: malformed: {exc}") from None
        if item not in items:
            raise ExportInvalid(f"{where}: {c['item']} is not an item of the task")
        if item in out:
            raise ExportInvalid(f"{where}: a second certificate for {c['item']}")
        data = []
        for ref in refs:
            name = cid_to_str(ref)
            if name not in votes:
                try:
                    votes[name] = (folder / "votes" / f"{name}.bin").read_bytes()
                    verify_block(ref, votes[name])
                except OSError:
                    raise ExportInvalid(f"{where}: vote record {name} is missing") from None
                except ProtocolError as exc:
                    raise ExportInvalid(f"votes/{name}.bin: {exc}") from None
            data.append(votes[name])
        if not isinstance(value, str) or type(rnd) is not int:
            raise ExportInvalid(f"{where}: malformed value or round")
        try:
            sets.verify(task_id, item, value, rnd, refs, data)
        except ProtocolError as exc:
            raise ExportInvalid(f"{where} ({c['item']}): certificate: {exc}") from None
        out[item] = (value, rnd)
    return out


def _check_row(where: str, row: Any, items: set[bytes]) -> bytes:
    if not isinstance(row, dict) or set(row) != set(ROW_KEYS):
        raise ExportInvalid(f"{where}: keys {sorted(row) if isinstance(row, dict) else row!r}"
                            f", want {sorted(ROW_KEYS)}")
    for key, kind in ROW_KEYS.items():
        if not isinstance(row[key], kind) or isinstance(row[key], bool):
            raise ExportInvalid(f"{where}: {key} is {row[key]!r}")
    try:
        item = cid_from_str(row["item"])
    except ProtocolError as exc:
        raise ExportInvalid(f"{where}: item: {exc}") from None
    if item not in items:
        raise ExportInvalid(f"{where}: {row['item']} is not an item of the task")
    return item


def _labels(folder: Path, items: list[bytes], paths: dict[bytes, list[str]],
            certs: dict[bytes, tuple[str, int]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    wanted = set(items)
    for n, line in enumerate((folder / "labels.jsonl").read_text().splitlines(), 1):
        where = f"labels.jsonl line {n}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ExportInvalid(f"{where}: not JSON: {exc}") from None
        item = _check_row(where, row, wanted)
        if item in seen:
            raise ExportInvalid(f"{where}: {row['item']} listed twice")
        seen.add(item)
        value, rnd = certs.get(item, (None, None))
        if (row["label"], row["round"]) != (value, rnd):
            raise ExportInvalid(f"{where}: {row['item']} has label {row['label']!r} round "
                                f"{row['round']}, its certificate says {value!r} round {rnd}")
        want_paths = paths.get(item, [])
        if row["paths"] != want_paths or row["path"] != (want_paths[0] if want_paths else None):
            raise ExportInvalid(f"{where}: {row['item']} has paths {row['paths']}, the items "
                                f"directory says {want_paths}")
        labels = [a.get("label") for a in row["annotations"] if isinstance(a, dict)]
        share = (round(sum(1 for lab in labels if lab == value) / len(labels), 4)
                 if labels and value is not None else None)
        if row["vote_share"] != share:
            raise ExportInvalid(f"{where}: vote share {row['vote_share']}, its annotations "
                                f"give {share}")
        rows.append(row)
    if seen != wanted:
        missing = sorted(cid_to_str(i) for i in wanted - seen)
        raise ExportInvalid(f"labels.jsonl: {len(missing)} items missing, e.g. {missing[0]}")
    return rows


def _tables(folder: Path, rows: list[dict[str, Any]]) -> None:
    want = sorted((r["item"], a["worker"], a["label"]) for r in rows for a in r["annotations"])
    with (folder / "answers.csv").open(newline="", encoding="utf-8") as f:
        got = list(csv.reader(f))
    if got[:1] != [["item", "worker", "label"]] or sorted(map(tuple, got[1:])) != want:
        raise ExportInvalid("answers.csv: not the annotations of labels.jsonl")
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    by_item = {r["item"]: r for r in rows}
    for n, t in enumerate(table, 2):
        r = by_item.get(t.get("item", ""))
        if r is None or t["label"] != (r["label"] or "") or t["path"] != (r["path"] or "") \
                or t["round"] != ("" if r["round"] is None else str(r["round"])):
            raise ExportInvalid(f"labels.csv line {n}: does not match labels.jsonl")
    if len(table) != len(rows):
        raise ExportInvalid(f"labels.csv: {len(table)} rows, labels.jsonl has {len(rows)}")


def verify_export(folder: Path, genesis: Genesis) -> dict[str, Any]:
    """Check the export in ``folder``; raise :class:`ExportInvalid` or return a summary."""
    try:
        data = (folder / "task.bin").read_bytes()
        record = decode_record(data, genesis.network_id)
    except OSError as exc:
        raise ExportInvalid(f"task.bin: {exc}") from None
    except ProtocolError as exc:
        raise ExportInvalid(f"task.bin: {exc}") from None
    if not isinstance(record.body, Task):
        raise ExportInvalid(f"task.bin: a {record.kind} record, not a task")
    items, paths = _items(folder, record.body)
    try:
        certs = _certificates(folder, genesis, record.cid, set(items))
        rows = _labels(folder, items, paths, certs)
        _tables(folder, rows)
    except OSError as exc:
        raise ExportInvalid(f"{exc.filename}: {exc.strerror}") from None
    return {"task": record.cid_str, "items": len(items), "certificates": len(certs),
            "final": sum(1 for r in rows if r["label"] is not None), "ok": True}
