"""Dawid-Skene expectation-maximisation in exact fixed-point integers.

Every validator must derive the same labels from the same annotations, on any
machine and any Python, so this EM never touches a float. Precision and
rounding, which are part of the protocol:

* A probability is an integer ``p`` standing for ``p / SCALE``, ``SCALE = 2**32``.
* **Initialisation**: each item's class posterior is its (weighted) vote share,
  ``T[i][k] = weight_for_k * SCALE // total_weight``. Author weights (e.g.
  reputation from earlier final tallies) act only here.
* **M-step**: class priors ``pi[k] = (sum_i T[i][k] + SCALE) * SCALE //
  (sum_i,k T[i][k] + K*SCALE)`` (one pseudo-item per class). A worker's
  confusion entry, for true class ``k`` and given label ``l``:
  ``e[w][l][k] = (n[w][l][k] + ALPHA) * SCALE // (sum_l' n[w][l'][k] + K*ALPHA)``
  where ``n[w][l][k]`` sums ``T[i][k]`` over items ``w`` labelled ``l`` and
  ``ALPHA = SCALE // 100`` (Laplace smoothing with 0.01 pseudo-count).
  Every prior and entry is at least 1, so no product is ever zero.
* **E-step**: ``q[k] = pi[k] * prod(e[w][l][k] for each (w, l) on the item)``
  is computed *exactly* (Python integers are unbounded; an item with ``n``
  annotations gives a ``32*(n+1)``-bit product), then renormalised once:
  ``T[i][k] = q[k] * SCALE // sum_k q[k]``. Only floor division is used.
* **Stopping**: rounds of M then E until no posterior moved by more than
  :data:`TOLERANCE` (``SCALE >> 16``, about 1.5e-5, the tolerance crowd-kit's
  Dawid-Skene uses on its loss) in one round, and at most :data:`ITERATIONS`
  (100, crowd-kit's cap) rounds. The test is on integers, so every validator
  stops after the same round. Measured on the five public crowd sets in
  ``tests/data/crowd``: d_Duck_Identification stops after 15 rounds,
  d_sentiment 19, s4_Dog_data 22, s4_Face_Sentiment_Identification 69, and
  d_jn_product (8,315 items of 3 answers, many workers with few answers) runs
  to the cap; its accuracy is 0.9396 after 50 rounds, 0.9400 after 100.
* The label of an item is the class with the largest final posterior; ties go
  to :func:`protocol.grouping.best_label` (hash of item and label).

Integer sums and products commute, and every floor division happens on a
complete sum, so the result does not depend on the order of the input.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence

from protocol.errors import AggregationError
from protocol.grouping import (
    Annotation,
    best_label,
    check_labels,
    check_redundancy,
    check_weights,
    group_by_item,
)
from protocol.records import EXPIRED

SCALE_BITS = 32
SCALE = 1 << SCALE_BITS
ALPHA = SCALE // 100  # confusion-matrix smoothing: a 0.01 pseudo-count per cell
ITERATIONS = 100  # the cap on EM rounds (crowd-kit's n_iter)
TOLERANCE = SCALE >> 16  # converged: no posterior moved more than this in a round
MAX_ITERATIONS = 1000


def dawid_skene(
    annotations: Iterable[Annotation],
    labels: Sequence[str],
    *,
    redundancy: int = 1,
    weights: Mapping[bytes, int] | None = None,
    default_weight: int = 1,
    iterations: int = ITERATIONS,
) -> dict[bytes, str]:
    """Labels for every item that appears in ``annotations``.

    All annotations inform the worker model, but an item with fewer than
    ``redundancy`` annotations is labelled :data:`EXPIRED` (the caller only
    asks after the task closed, see :func:`protocol.aggregate.propose`).
    ``weights`` maps author → positive integer weight (``default_weight`` for
    authors not in it) and seeds the initial posteriors.
    """
    labels = check_labels(labels)
    check_redundancy(redundancy)
    weights = check_weights(weights, default_weight)
    if type(iterations) is not int or not 0 <= iterations <= MAX_ITERATIONS:
        raise AggregationError(f"iterations must be an integer 0..{MAX_ITERATIONS}")
    groups = group_by_item(annotations, labels)
    items = list(groups)
    posteriors = _run(groups, labels, weights, default_weight, iterations)
    out: dict[bytes, str] = {}
    for i, item in enumerate(items):
        if len(groups[item]) < redundancy:
            out[item] = EXPIRED
        else:
            out[item] = best_label(item, {lab: posteriors[k][i] for k, lab in enumerate(labels)})
    return out


def _run(groups: Mapping[bytes, list[tuple[bytes, str]]], labels: tuple[str, ...],
         weights: Mapping[bytes, int], default_weight: int, iterations: int) -> list[list[int]]:
    """The EM loop; returns posteriors class-major: ``T[k][i]``."""
    n_classes = len(labels)
    label_index = {lab: k for k, lab in enumerate(labels)}
    authors = sorted({a for entries in groups.values() for a, _ in entries})
    author_index = {a: w for w, a in enumerate(authors)}
    # A cell is one (worker, given label); cell = worker * K + label.
    item_cells: list[list[int]] = []
    cell_items: list[list[int]] = [[] for _ in range(len(authors) * n_classes)]
    posteriors: list[list[int]] = [[] for _ in range(n_classes)]
    for i, entries in enumerate(groups.values()):
        cells = []
        votes = [0] * n_classes
        for author, label in entries:
            cell = author_index[author] * n_classes + label_index[label]
            cells.append(cell)
            cell_items[cell].append(i)
            votes[label_index[label]] += weights.get(author, default_weight)
        item_cells.append(cells)
        total = sum(votes)
        for k in range(n_classes):
            posteriors[k].append(votes[k] * SCALE // total)
    for _ in range(iterations):
        priors, confusion = _m_step(posteriors, cell_items, len(authors), n_classes)
        updated = _e_step(item_cells, priors, confusion, n_classes)
        moved = max((max(map(abs, map(operator.sub, new, old)), default=0)
                     for new, old in zip(updated, posteriors, strict=True)), default=0)
        posteriors = updated
        if moved <= TOLERANCE:
            break
    return posteriors


def _m_step(posteriors: list[list[int]], cell_items: list[list[int]], n_workers: int,
            n_classes: int) -> tuple[list[int], list[list[int]]]:
    """Class priors ``pi[k]`` and confusion entries ``e[k][cell]`` from the posteriors."""
    mass = [sum(col) for col in posteriors]
    total = sum(mass)
    priors = [max(1, (m + SCALE) * SCALE // (total + n_classes * SCALE)) for m in mass]
    confusion: list[list[int]] = []
    for k in range(n_classes):
        col = posteriors[k]
        getter = col.__getitem__
        counts = [sum(map(getter, its)) for its in cell_items]
        entries = [0] * len(counts)
        for w in range(n_workers):
            base = w * n_classes
            row = counts[base:base + n_classes]
            denom = sum(row) + n_classes * ALPHA
            for l_ in range(n_classes):
                entries[base + l_] = max(1, (row[l_] + ALPHA) * SCALE // denom)
        confusion.append(entries)
    return priors, confusion


def _e_step(item_cells: list[list[int]], priors: list[int], confusion: list[list[int]],
            n_classes: int) -> list[list[int]]:
    """New posteriors: exact products of prior and confusion entries, renormalised once."""
    out: list[list[int]] = [[] for _ in range(n_classes)]
    getters = [col.__getitem__ for col in confusion]
    prod = math.prod
    for cells in item_cells:
        q = [priors[k] * prod(map(getters[k], cells)) for k in range(n_classes)]
        total = sum(q)
        for k in range(n_classes):
            out[k].append(q[k] * SCALE // total)
    return out


__all__ = ["ALPHA", "ITERATIONS", "SCALE", "SCALE_BITS", "TOLERANCE", "dawid_skene"]
