"""What the testnet demo labels: generated items with simulated annotators, or a real CSV.

A :class:`Workload` is pure data — items (content bytes and, when known, the
true class), annotators (a signing key each) and their answers in submission
order — so the demo driver (:mod:`node.testnet.demo`) only moves it onto the network.

Generated items are 8x8 greyscale PGM images whose pattern is their class
(``cat`` horizontal stripes, ``dog`` vertical stripes, ``bird`` a checkerboard)
under seeded noise; the same seed always gives the same bytes, so the same
CIDs. Simulated annotators answer with a fixed accuracy each: most 0.80-0.95,
two careless ones at 0.55, and one adversary that always maps the truth to
the same wrong class. Each item is labelled by ``redundancy`` distinct
annotators, assigned round-robin.

A replayed CSV (``item,worker,label`` — the public truth-inference sets name
them ``question,worker,answer``) keeps its real workers and labels; worker
keys are derived from the worker id, so a replay is repeatable.
"""

from __future__ import annotations

import csv
import hashlib
import random
from node.errors import NodeError
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from protocol.keys import SigningKey

CLASSES = ("cat", "dog", "bird")
ADVERSARY = -1.0  # the accuracy that marks the adversarial annotator
CARELESS = 0.55
ITEM_COLUMNS = ("item", "question", "id", "q", "task")
WORKER_COLUMNS = ("worker", "annotator", "worker_id")
LABEL_COLUMNS = ("label", "answer", "response")
TRUTH_COLUMNS = ("truth", "label", "answer", "gold")


class DemoDataError(NodeError):
    """A workload cannot be built (bad sizes, unreadable or malformed CSV)."""


@dataclass(frozen=True, slots=True)
class Item:
    name: str  # generated index or the CSV's item id
    data: bytes  # the IPFS block stored for it
    truth: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    item: int  # index into Workload.items
    worker: int  # index into Workload.workers
    label: str


@dataclass(frozen=True, slots=True)
class Workload:
    source: str
    labels: tuple[str, ...]
    items: tuple[Item, ...]
    workers: tuple[SigningKey, ...]
    worker_names: tuple[str, ...]  # "0.91", "careless", "adversary", or the CSV worker id
    answers: tuple[Answer, ...]
    redundancy: int


# ------------------------------------------------------------------ generated

def pgm_image(cls: str, index: int, rng: random.Random) -> bytes:
    """An 8x8 binary PGM whose stripes (or checkerboard) say its class."""
    base = rng.randint(0, 60)
    pixels = bytearray()
    for y in range(8):
        for x in range(8):
            on = {"cat": y % 2 == 0, "dog": x % 2 == 0}.get(cls, (x + y) % 2 == 0)
            pixels.append(min(255, base + (150 if on else 0) + rng.randint(0, 40)))
    return f"P5\n# annot demo item {index}\n8 8\n255\n".encode() + bytes(pixels)


def accuracies(n: int, rng: random.Random) -> list[float]:
    """Per-annotator accuracy: the last is the adversary, the two before it careless."""
    out = [round(rng.uniform(0.80, 0.95), 2) for _ in range(n)]
    if n >= 4:
        out[-3] = out[-2] = CARELESS
    if n >= 3:
        out[-1] = ADVERSARY
    return out


def _answer(truth: str, accuracy: float, rng: random.Random) -> str:
    if accuracy == ADVERSARY:
        return CLASSES[(CLASSES.index(truth) + 1) % len(CLASSES)]
    if rng.random() < accuracy:
        return truth
    return rng.choice([c for c in CLASSES if c != truth])


def simulate(n_items: int, keys: Sequence[SigningKey], redundancy: int = 3,
             seed: int = 7) -> Workload:
    """Generated items labelled by simulated annotators holding ``keys``."""
    if n_items < 1:
        raise DemoDataError("need at least one item")
    if len(keys) < redundancy:
        raise DemoDataError(f"need at least {redundancy} annotators for redundancy "
                            f"{redundancy}, got {len(keys)}")
    rng = random.Random(seed)
    truths = [CLASSES[rng.randrange(len(CLASSES))] for _ in range(n_items)]
    items = tuple(Item(str(i), pgm_image(t, i, rng), t) for i, t in enumerate(truths))
    acc = accuracies(len(keys), rng)
    answers = []
    for i, truth in enumerate(truths):
        for k in range(redundancy):
            w = (i * redundancy + k) % len(keys)
            answers.append(Answer(i, w, _answer(truth, acc[w], rng)))
    names = tuple("adversary" if a == ADVERSARY else f"acc {a:.2f}" for a in acc)
    return Workload(f"{n_items} generated 8x8 PGM images", CLASSES, items, tuple(keys), names,
                    tuple(answers), redundancy)


# ------------------------------------------------------------------ CSV replay

def worker_key(worker: str) -> SigningKey:
    """The replay key of a CSV worker: the same worker id always signs as the same peer."""
    return SigningKey(hashlib.sha256(b"annot/demo/worker\x00" + worker.encode()).digest())


def _columns(header: list[str], wanted: Sequence[Sequence[str]]) -> list[int]:
    names = [h.strip().lower() for h in header]
    out = []
    for pos, aliases in enumerate(wanted):
        found = next((names.index(a) for a in aliases if a in names), None)
        out.append(pos if found is None else found)
    return out


def _read_rows(path: Path, wanted: Sequence[Sequence[str]]) -> list[list[str]]:
    try:
        with path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except OSError as exc:
        raise DemoDataError(f"cannot read {path}: {exc}") from None
    if len(rows) < 2:
        raise DemoDataError(f"{path}: expected a header row and at least one data row")
    cols = _columns(rows[0], wanted)
    try:
        return [[r[c].strip() for c in cols] for r in rows[1:]]
    except IndexError:
        raise DemoDataError(f"{path}: every row needs {len(wanted)} columns") from None


def load_csv(path: Path, max_items: int | None = None) -> Workload:
    """Replay ``path`` (item, worker, label); truth from ``truth.csv`` beside it if present."""
    rows = _read_rows(path, (ITEM_COLUMNS, WORKER_COLUMNS, LABEL_COLUMNS))
    order: dict[str, int] = {}
    for item, _, _ in rows:
        if item not in order and (max_items is None or len(order) < max_items):
            order[item] = len(order)
    truth: dict[str, str] = {}
    truth_path = path.with_name("truth.csv")
    if truth_path.exists():
        truth = {i: t for i, t in _read_rows(truth_path, (ITEM_COLUMNS, TRUTH_COLUMNS))}
    workers: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    answers = []
    for item, worker, label in rows:
        if item not in order or (item, worker) in seen:  # one annotation per author per item
            continue
        seen.add((item, worker))
        answers.append(Answer(order[item], workers.setdefault(worker, len(workers)), label))
    labels = tuple(sorted({a.label for a in answers}))
    counts = Counter(a.item for a in answers)
    items = tuple(Item(name, f"annot demo item {path.parent.name}/{name}\n".encode(),
                       truth.get(name)) for name in order)
    return Workload(f"{path} ({len(items)} items, {len(answers)} answers)", labels, items,
                    tuple(worker_key(w) for w in workers), tuple(workers), tuple(answers),
                    min(counts.values()))
