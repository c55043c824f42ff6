"""Offline aggregation of a CSV of labels: the engine behind ``annot aggregate``.

The file has a header row and one ``item,worker,label`` row per annotation.
The header names the columns in that order; besides ``item,worker,label`` the
headers of the public crowd data sets are accepted by position
(``question,worker,answer``, ``id,worker,answer``). Items and workers are
arbitrary strings (passed to the protocol as their UTF-8 bytes); the label
schema is the sorted set of labels in the file. Every item gets a label, by
the same code validators run (:mod:`protocol.aggregate`), so a requester can
preview what the network will decide from a given set of answers.

A worker's second (third, ...) answer to an item is dropped and the first one
counts, as on the network, where a second annotation by one author on one item
is refused; :func:`aggregate_file` reports every dropped row with its line and
the line of the answer that counted. Public crowd data often has such rows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from node.errors import NodeError
from protocol.aggregate import dawid_skene, majority
from protocol.errors import ProtocolError
from protocol.records import RULES

_ITEM = ("item", "question", "id", "task")
_WORKER = ("worker", "annotator", "author")
_LABEL = ("label", "answer")


class CsvAggregateError(NodeError):
    """A CSV file that cannot be aggregated; ``line`` is 1-based (0 = not line-specific)."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A dropped row: ``worker`` already answered ``item`` on ``first_line``."""

    line: int
    first_line: int
    item: str
    worker: str


@dataclass(frozen=True, slots=True)
class Aggregated:
    """``annot aggregate``'s result: a label per item and the rows it dropped."""

    labels: list[tuple[str, str]]  # (item, label), items in first-appearance order
    duplicates: list[Duplicate]  # in file order

    @property
    def dropped(self) -> int:
        return len(self.duplicates)

    def summary(self) -> str:
        """One line for people, empty when nothing was dropped."""
        if not self.duplicates:
            return ""
        d = self.duplicates[0]
        more = f" and {self.dropped - 1} more" if self.dropped > 1 else ""
        return (f"dropped {self.dropped} duplicate answer(s) (same worker, same item; the "
                f"first counts, as on the network): line {d.line} repeats worker "
                f"{d.worker!r} on item {d.item!r} from line {d.first_line}{more}")


def _read(csv_path: Path) -> tuple[list[tuple[str, str, str]], list[Duplicate]]:
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(enumerate(csv.reader(f, strict=True), start=1))
    except OSError as exc:
        raise CsvAggregateError(csv_path, 0, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CsvAggregateError(csv_path, 0, "not valid UTF-8 text") from None
    except csv.Error as exc:
        raise CsvAggregateError(csv_path, 0, f"malformed CSV: {exc}") from None
    rows = [(n, r) for n, r in rows if r]  # blank lines carry nothing
    if not rows:
        raise CsvAggregateError(csv_path, 0, "empty file: expected a header item,worker,label")
    n, header = rows[0]
    names = [h.strip().lower() for h in header]
    if (len(names) != 3 or names[0] not in _ITEM or names[1] not in _WORKER
            or names[2] not in _LABEL):
        raise CsvAggregateError(csv_path, n, f"header must be item,worker,label, got {header!r}")
    out: list[tuple[str, str, str]] = []
    duplicates: list[Duplicate] = []
    seen: dict[tuple[str, str], int] = {}
    for n, row in rows[1:]:
        if len(row) != 3:
            raise CsvAggregateError(csv_path, n, f"expected 3 columns, got {len(row)}: {row!r}")
        item, worker, label = (c.strip() for c in row)
        if not item or not worker or not label:
            raise CsvAggregateError(csv_path, n, f"empty item, worker or label: {row!r}")
        first = seen.setdefault((item, worker), n)
        if first != n:
            duplicates.append(Duplicate(n, first, item, worker))
            continue
        out.append((item, worker, label))
    if not out:
        raise CsvAggregateError(csv_path, 0, "no annotations after the header")
    return out, duplicates


def aggregate(rule: str, csv_path: Path) -> list[tuple[str, str]]:
    """``(item, label)`` for every item in ``csv_path``, in first-appearance order,
    decided by ``rule`` (``majority`` or ``dawid-skene``); duplicates dropped
    (:func:`aggregate_file` says which)."""
    return aggregate_file(rule, csv_path).labels


def aggregate_file(rule: str, csv_path: Path) -> Aggregated:
    """Every item's label by ``rule``, and the duplicate rows dropped on the way."""
    if rule not in RULES:
        raise CsvAggregateError(csv_path, 0,
                                f"unknown rule {rule!r}; use one of {', '.join(RULES)}")
    rows, duplicates = _read(csv_path)
    labels = sorted({label for _, _, label in rows})
    by_item: dict[str, list[tuple[bytes, bytes, str]]] = {}
    for item, worker, label in rows:
        by_item.setdefault(item, []).append((item.encode(), worker.encode(), label))
    decided: dict[str, str | None]
    try:
        if rule == "majority":
            decided = {item: majority(anns, labels) for item, anns in by_item.items()}
        else:
            found = dawid_skene([a for anns in by_item.values() for a in anns], labels)
            decided = {item: found[item.encode()] for item in by_item}
    except ProtocolError as exc:
        raise CsvAggregateError(csv_path, 0, str(exc)) from None
    out = []
    for item, value in decided.items():
        if value is None:  # unreachable: every item has >= 1 annotation (redundancy 1)
            raise CsvAggregateError(csv_path, 0, f"no label for item {item!r}")
        out.append((item, value))
    return Aggregated(out, duplicates)


__all__ = ["Aggregated", "CsvAggregateError", "Duplicate", "aggregate", "aggregate_file"]
