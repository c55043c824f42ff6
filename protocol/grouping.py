"""Shared groundwork for the aggregation rules: checking and grouping annotations.

Both rules (:mod:`protocol.aggregate`'s weighted majority and
:mod:`protocol.dawid_skene`) take annotations as plain ``(item, author, label)``
triples, labels as the task's class list and weights as ``author → int``. This
module checks those inputs once, puts them in one canonical order (items sorted
by bytes, authors sorted by bytes within an item) so no result can depend on
the order a node happened to receive records in, and defines the tie-break.

Contract with the caller: exactly one annotation per author per item (the
record layer rejects a second one as a fork). A duplicate ``(item, author)``
pair here is a caller bug and raises :class:`DuplicateAnnotationError` rather
than being silently resolved, because any silent choice would let two nodes
holding different duplicates disagree.

Tie-break: among labels with equal score, the winner is the label whose
``sha256(TIE_TAG + item + 0x00 + label)`` is smallest. It depends only on the
item and the label, never on the label's position in the schema, so across
many items no class is favoured, yet every node picks the same label.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence

from protocol.errors import AggregationError, DuplicateAnnotationError
from protocol.records import EXPIRED

Annotation = tuple[bytes, bytes, str]  # (item, author, label)
Grouped = dict[bytes, list[tuple[bytes, str]]]  # item -> [(author, label)] sorted by author
TIE_TAG = b"annot/v1/tie\x00"


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """The task's classes as a tuple; raise unless non-empty, distinct strings."""
    out = tuple(labels)
    if not out:
        raise AggregationError("a task needs at least one label")
    for label in out:
        if not isinstance(label, str) or not label:
            raise AggregationError(f"label {label!r} is not a non-empty string")
        if label == EXPIRED:
            raise AggregationError(f"{EXPIRED!r} is reserved and cannot be a label")
    if len(set(out)) != len(out):
        raise AggregationError(f"labels are not distinct: {out!r}")
    return out


def check_redundancy(redundancy: int) -> int:
    if type(redundancy) is not int or redundancy < 1:
        raise AggregationError(f"redundancy must be an integer >= 1, got {redundancy!r}")
    return redundancy


def check_weights(weights: Mapping[bytes, int] | None, default_weight: int) -> Mapping[bytes, int]:
    """Weights must be positive integers (no floats, no bools, no zero)."""
    if type(default_weight) is not int or default_weight < 1:
        raise AggregationError(f"default weight must be an integer >= 1, got {default_weight!r}")
    if weights is None:
        return {}
    for author, w in weights.items():
        if type(w) is not int or w < 1:
            raise AggregationError(f"weight of {author.hex()} must be an integer >= 1, got {w!r}")
    return weights


def group_by_item(annotations: Iterable[Annotation], labels: Sequence[str]) -> Grouped:
    """Group annotations by item in canonical order, checking every triple.

    Raises :class:`AggregationError` for a malformed triple or a label outside
    ``labels``, and :class:`DuplicateAnnotationError` for a repeated (item, author).
    """
    allowed = frozenset(labels)
    groups: Grouped = {}
    for ann in annotations:
        if not isinstance(ann, tuple) or len(ann) != 3:
            raise AggregationError(f"annotation must be (item, author, label), got {ann!r}")
        item, author, label = ann
        if not isinstance(item, bytes) or not isinstance(author, bytes):
            raise AggregationError(f"annotation item and author must be bytes: {ann!r}")
        if label not in allowed:
            raise AggregationError(f"label {label!r} of item {item.hex()} is not one of {labels!r}")
        groups.setdefault(item, []).append((author, label))
    out: Grouped = {}
    for item in sorted(groups):
        entries = sorted(groups[item])
        for (a, _), (b, _) in itertools.pairwise(entries):
            if a == b:
                raise DuplicateAnnotationError(item, a)
        out[item] = entries
    return out


def tie_key(item: bytes, label: str) -> bytes:
    """The tie-break rank of ``label`` on ``item``: smaller wins."""
    return hashlib.sha256(TIE_TAG + item + b"\x00" + label.encode()).digest()


def best_label(item: bytes, scores: Mapping[str, int]) -> str:
    """The label with the highest integer score; ties go to the smallest :func:`tie_key`."""
    if not scores:
        raise AggregationError(f"no scores to choose a label for item {item.hex()}")
    top = max(scores.values())
    tied = [label for label, s in scores.items() if s == top]
    if len(tied) == 1:
        return tied[0]
    return min(tied, key=lambda label: tie_key(item, label))


__all__ = [
    "TIE_TAG", "Annotation", "Grouped", "best_label", "check_labels", "check_redundancy",
    "check_weights", "group_by_item", "tie_key",
]
