"""Proposals: the value a validator prevotes for each item, derived from annotations.

A validator's proposal is a pure function of the annotations it holds, the
task, the author weights, and one bit of local time: whether the task's close
time has passed on *its* clock (``closed``). Validators may disagree on any of
these for a while; the vote protocol tolerates that, and once they hold the
same annotations and agree the task closed they propose the same values.

Rules (``Task.rule``):

``majority``
    Per item, independently. Weighted plurality of the item's annotations
    (authors not in ``weights`` count ``default_weight``); ties go to the label
    with the smallest ``sha256(tag + item + 0x00 + label)`` (see
    :mod:`protocol.grouping`). An item with fewer than ``redundancy``
    annotations has no proposal (``None``) until the task is closed, then
    :data:`EXPIRED`.

``dawid-skene``
    Task-wide: one item's label depends on every annotation of the task, so a
    proposal made while annotations still arrive on other items could change.
    To keep proposals stable, a validator proposes **nothing** (``None`` for
    every item) until every item of the task has at least ``redundancy``
    annotations, or the task is closed. Then it computes all items at once
    from one annotation set (:func:`protocol.dawid_skene.dawid_skene`); items
    still short at close are :data:`EXPIRED`. Later annotations (past
    redundancy) may change a proposal; validators that re-sync before the next
    round converge on the same set and hence on the same values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from protocol.dawid_skene import ITERATIONS, dawid_skene
from protocol.errors import AggregationError
from protocol.grouping import (
    Annotation,
    Grouped,
    best_label,
    check_labels,
    check_redundancy,
    check_weights,
    group_by_item,
)
from protocol.records import EXPIRED, RULES, Task

Proposal = str | None


def majority(
    annotations: Iterable[Annotation],
    labels: Sequence[str],
    weights: Mapping[bytes, int] | None = None,
    *,
    redundancy: int = 1,
    closed: bool = False,
    default_weight: int = 1,
) -> Proposal:
    """The weighted-plurality proposal for one item.

    ``annotations`` are the item's ``(item, author, label)`` triples (all with
    the same item). Returns ``None`` while the item is short of ``redundancy``
    annotations and not ``closed``, :data:`EXPIRED` when it is short and closed.
    """
    labels = check_labels(labels)
    check_redundancy(redundancy)
    weights = check_weights(weights, default_weight)
    groups = group_by_item(annotations, labels)
    if len(groups) > 1:
        raise AggregationError(f"majority() takes one item's annotations, got {len(groups)} items")
    if not groups:
        return EXPIRED if closed else None
    ((item, entries),) = groups.items()
    return _majority_item(item, entries, weights, default_weight, redundancy, closed)


def _majority_item(item: bytes, entries: list[tuple[bytes, str]], weights: Mapping[bytes, int],
                   default_weight: int, redundancy: int, closed: bool) -> Proposal:
    if len(entries) < redundancy:
        return EXPIRED if closed else None
    scores: dict[str, int] = {}
    for author, label in entries:
        scores[label] = scores.get(label, 0) + weights.get(author, default_weight)
    return best_label(item, scores)


def ready(rule: str, items: Sequence[bytes], counts: Mapping[bytes, int], redundancy: int,
          closed: bool) -> bool:
    """Whether a task-wide rule may propose: every item has ``redundancy``
    annotations (``counts``: item → number of annotations) or the task is closed.
    Per-item rules (``majority``) are always ready."""
    if rule == "majority" or closed:
        return True
    return all(counts.get(item, 0) >= redundancy for item in items)


def propose(
    task: Task,
    annotations: Iterable[Annotation],
    *,
    closed: bool,
    weights: Mapping[bytes, int] | None = None,
    default_weight: int = 1,
    iterations: int = ITERATIONS,
) -> dict[bytes, Proposal]:
    """This validator's proposal for every item of ``task``, by ``task.rule``.

    ``annotations`` are all of the task's annotations this node holds, as
    ``(item, author, label)``; an item not in the task raises
    :class:`AggregationError`. Returns a map over exactly ``task.items``.
    """
    if task.rule not in RULES:
        raise AggregationError(f"unknown aggregation rule {task.rule!r}")
    labels = check_labels(task.labels)
    check_redundancy(task.redundancy)
    weights = check_weights(weights, default_weight)
    groups = group_by_item(annotations, labels)
    _check_items(task, groups)
    if task.rule == "majority":
        return {item: _majority_item(item, groups.get(item, []), weights, default_weight,
                                     task.redundancy, closed)
                for item in task.items}
    counts = {item: len(entries) for item, entries in groups.items()}
    if not ready(task.rule, task.items, counts, task.redundancy, closed):
        return dict.fromkeys(task.items)
    flat = [(item, author, label) for item, entries in groups.items()
            for author, label in entries]
    found = dawid_skene(flat, labels, redundancy=task.redundancy, weights=weights,
                        default_weight=default_weight, iterations=iterations)
    return {item: found.get(item, EXPIRED) for item in task.items}


def _check_items(task: Task, groups: Grouped) -> None:
    known = frozenset(task.items)
    for item in groups:
        if item not in known:
            raise AggregationError(f"annotation for item {item.hex()}, which the task lacks")


__all__ = ["Proposal", "dawid_skene", "majority", "propose", "ready"]
