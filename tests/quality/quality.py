"""Replay the public crowd data sets through both aggregation rules, offline and on a testnet.

Run from the repository root::

    .venv/bin/python -m tests.quality.quality [DATA_DIR] [--network] [--sets A,B] [--items N]

``DATA_DIR`` defaults to ``tests/data/crowd``.

Offline (always): for each data set it prints answers, items, workers,
classes, the accuracy against gold of ``majority`` and ``dawid-skene`` (the
exact code validators run, fed the CSV rows as ``(item, worker, label)`` with
ids as UTF-8 bytes), the seconds each took, the published majority /
Dawid-Skene accuracies where the data set's README gives them (crowd-kit's
benchmark), and whether Dawid-Skene reaches the published figure within 0.005.

``--network``: brings up a 4-validator testnet of real ``annot run`` processes
in a temporary directory on free ports (:mod:`node.testnet`), and for each
set in ``--sets`` and each rule replays the CSV through it (:mod:`node.testnet.demo`:
one task, every worker signing with its own key). Then it reads back every
node's final label for every item and compares them with the rule computed
offline over exactly the annotations the network held
(:mod:`tests.quality.network`), and with ``annot aggregate`` over the CSV the
demo submitted. The testnet is always stopped and removed.

Only sets where every item has the same number of answers replay exactly: the
demo's redundancy is the smallest count per item, and an item is decided once
it has that many (``majority``) or once every item has (``dawid-skene``), so on
s4_Face_Sentiment_Identification (7 to 9 answers per item) some items are
final before their last answers arrive, and the count ``net==off`` depends on
timing (measured 557-584 of 584). ``--sets`` replays it anyway. Exit status 1 if
any network label differs from offline, nodes disagree, or Dawid-Skene falls
short of a published figure.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from node import testnet
from node.cli.aggregate_csv import aggregate
from node.rpc.client import ClientError
from node.testnet.cluster import TestnetError
from node.testnet.demo import DemoError
from node.testnet.demo_data import DemoDataError, Workload
from protocol.aggregate import dawid_skene, majority
from protocol.records import RULES
from tests.quality.network import (
    Comparison,
    ReplayError,
    by_name,
    early_final,
    free_base_port,
    replay,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "crowd"
SETS = (
    "d_Duck_Identification", "d_jn_product", "d_sentiment", "s4_Dog_data",
    "s4_Face_Sentiment_Identification",
)
NETWORK_SETS = ("d_Duck_Identification",)  # exact; see the module docstring for Face
PUBLISHED = {"d_jn_product": ("0.897", "0.940"), "d_sentiment": ("0.932", "0.960")}
TOLERANCE = 0.005  # issue 9: DS at least the published figure within this
NODES = 4

Ann = tuple[bytes, bytes, str]


def load(folder: Path) -> tuple[list[Ann], dict[bytes, str]]:
    """Answers and gold labels; columns by position (the sets name them differently)."""
    with (folder / "answer.csv").open(newline="") as f:
        answers = [(r[0].encode(), r[1].encode(), r[2]) for r in list(csv.reader(f))[1:] if r]
    with (folder / "truth.csv").open(newline="") as f:
        truth = {r[0].encode(): r[1] for r in list(csv.reader(f))[1:] if r}
    return answers, truth


def run_majority(answers: list[Ann], labels: list[str]) -> dict[bytes, str]:
    by_item: dict[bytes, list[Ann]] = {}
    for a in answers:
        by_item.setdefault(a[0], []).append(a)
    out: dict[bytes, str] = {}
    for item, anns in by_item.items():
        label = majority(anns, labels)
        assert label is not None  # redundancy 1: every listed item has a label
        out[item] = label
    return out


def accuracy(found: dict[bytes, str], truth: dict[bytes, str]) -> float:
    return sum(found.get(item) == label for item, label in truth.items()) / len(truth)


def offline_table(data: Path) -> bool:
    """Print the offline table; False if Dawid-Skene misses a published figure."""
    ok = True
    head = ("data set", "answers", "items", "workers", "K", "MV acc", "MV s", "DS acc", "DS s",
            "pub MV", "pub DS", "DS>=pub")
    print("{:<34} {:>7} {:>6} {:>7} {:>2} {:>7} {:>6} {:>7} {:>6} {:>6} {:>6} {:>7}"
          .format(*head))
    for name in SETS:
        answers, truth = load(data / name)
        labels = sorted({label for _, _, label in answers})
        start = time.perf_counter()
        mv = accuracy(run_majority(answers, labels), truth)
        mv_s = time.perf_counter() - start
        start = time.perf_counter()
        ds = accuracy(dawid_skene(answers, labels), truth)
        ds_s = time.perf_counter() - start
        pub_mv, pub_ds = PUBLISHED.get(name, ("-", "-"))
        verdict = "-"
        if pub_ds != "-":
            good = ds >= float(pub_ds) - TOLERANCE
            ok &= good
            verdict = "yes" if good else "NO"
        print(f"{name:<34} {len(answers):>7} {len({a[0] for a in answers}):>6} "
              f"{len({a[1] for a in answers}):>7} {len(labels):>2} {mv:>7.4f} {mv_s:>6.2f} "
              f"{ds:>7.4f} {ds_s:>6.2f} {pub_mv:>6} {pub_ds:>6} {verdict:>7}")
    return ok


# ------------------------------------------------------------------ network

@dataclass(frozen=True, slots=True)
class NetRow:
    name: str
    cmp: Comparison
    early: int  # differing items explained by finality before their last answers
    csv_equal: int  # network label == `annot aggregate` over the submitted CSV
    net_acc: float
    csv_acc: float
    judged: int  # items with gold
    wall_s: float


def csv_labels(work: Workload, rule: str, folder: Path) -> dict[str, str]:
    """``annot aggregate --rule RULE`` over the answers the demo submitted."""
    path = folder / "submitted.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("item", "worker", "label"))
        for a in work.answers:
            w.writerow((work.items[a.item].name, work.worker_names[a.worker], a.label))
    return dict(aggregate(rule, path))


def _acc(labels: dict[str, str | None], work: Workload) -> tuple[float, int]:
    judged = [(labels.get(i.name), i.truth) for i in work.items if i.truth is not None]
    right = sum(v == t for v, t in judged)
    return (right / len(judged) if judged else float("nan")), len(judged)


def _say(line: str) -> None:
    """The demo's progress and summary, without its ledger and query hints (the
    testnet is removed at the end, so its paths would mislead)."""
    if line.split(" ", 1)[0] in ("demo:", "task", "submitted", "every", "items", "accuracy",
                                 "finality", "wall", "all"):
        print("   ", line, flush=True)


async def _replay_all(root: Path, scratch: Path, data: Path, sets: list[str], rules: list[str],
                      items: int, timeout: float, quiet: bool) -> list[NetRow]:
    rows = []
    for name in sets:
        for rule in rules:
            print(f"-- replaying {name} with rule {rule} through {NODES} validators", flush=True)
            started = time.perf_counter()
            work, report, view, cmp = await replay(
                root, data / name / "answer.csv", items, rule, timeout=timeout,
                say=(lambda _: None) if quiet else _say)
            wall = time.perf_counter() - started
            net = by_name(work, report, cmp.network)
            offline = csv_labels(work, rule, scratch)
            csv_equal = sum(net.get(n) == v for n, v in offline.items())
            net_acc, judged = _acc(net, work)
            csv_acc, _ = _acc(dict(offline), work)
            early = early_final(view, cmp)
            row = NetRow(name, cmp, len(early), csv_equal, net_acc, csv_acc, judged, wall)
            rows.append(row)
            print(f"   network == offline: {cmp.equal}/{cmp.items} (propose over the "
                  f"{cmp.annotations} annotations the network held); "
                  f"network == annot aggregate over the CSV: {csv_equal}/{cmp.items}; "
                  f"nodes agree: {'yes' if cmp.nodes_agree else 'NO'}; {wall:.1f} s", flush=True)
            if early:
                print(f"   {len(early)} of the {cmp.items - cmp.equal} differing items were "
                      f"final on a subset of >= {view.task.redundancy} of their annotations "
                      "(decided before their last answers arrived)")
            for item, value in cmp.offline.items():
                if cmp.network.get(item) != value and item not in early:
                    print(f"   MISMATCH item {item.hex()[:24]}: network {cmp.network.get(item)!r}"
                          f", offline {value!r}")
    return rows


def network_table(data: Path, sets: list[str], rules: list[str], items: int,
                  timeout: float, quiet: bool) -> bool:
    """Replay ``sets`` through a fresh testnet; print the table; False on any mismatch."""
    with tempfile.TemporaryDirectory(prefix="annot-quality-") as tmp:
        root = Path(tmp) / "testnet"
        base = free_base_port(NODES)
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext():
                testnet.up(root, NODES, base)
            up_s = time.perf_counter() - started
            print(f"testnet: {NODES} validators up in {up_s:.1f} s (ports {base}..{base + 31})",
                  flush=True)
            rows = trio.run(_replay_all, root, Path(tmp), data, sets, rules, items, timeout,
                            quiet)
        except (TestnetError, DemoError, DemoDataError, ReplayError, ClientError) as exc:
            print(f"network replay failed: {exc}", file=sys.stderr)
            return False
        finally:
            with contextlib.redirect_stdout(sys.stderr):
                testnet.clean(root)
    print()
    print(f"network: {NODES} validators (real processes); final labels read back from every "
          "node; offline = the same rule over the annotations the network held")
    head = ("data set", "rule", "items", "annots", "expired", "agree", "net==off", "early",
            "net==csv", "net acc", "csv acc", "pub", "wall s")
    fmt = "{:<34} {:<11} {:>5} {:>6} {:>7} {:>5} {:>9} {:>5} {:>9} {:>7} {:>7} {:>5} {:>6}"
    print(fmt.format(*head))
    ok = True
    for r in rows:
        c = r.cmp
        pub = PUBLISHED.get(r.name, ("-", "-"))[0 if c.rule == "majority" else 1]
        ok &= c.nodes_agree and c.equal + r.early == c.items
        print(fmt.format(r.name, c.rule, c.items, c.annotations, c.expired,
                         "yes" if c.nodes_agree else "NO", f"{c.equal}/{c.items}", r.early,
                         f"{r.csv_equal}/{c.items}", f"{r.net_acc:.4f}", f"{r.csv_acc:.4f}", pub,
                         f"{r.wall_s:.1f}"))
    print("net==off: items whose final value equals the rule over every annotation the "
          "network held. early: other items whose final value is the rule over a subset of "
          ">= redundancy of them (majority decides an item once it has `redundancy` "
          "annotations; a final value never changes). The exit status needs "
          "net==off + early == items. net==csv: `annot aggregate` over the CSV "
          "the demo submitted, which names items by CSV id, not CID, so a tie (equal votes "
          "or posteriors) may break the other way; informational.")
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.quality.quality",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA,
                        help="folder of crowd data sets (default tests/data/crowd)")
    parser.add_argument("--network", action="store_true",
                        help="also replay --sets through a 4-validator testnet")
    parser.add_argument("--sets", default=",".join(NETWORK_SETS),
                        help="comma-separated data sets for --network (default %(default)s)")
    parser.add_argument("--rules", default=",".join(RULES),
                        help="comma-separated rules for --network (default %(default)s)")
    parser.add_argument("--items", type=int, default=0,
                        help="--network: replay only the first N items of each set (0 = all)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="--network: seconds to wait for finality per replay")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="--network: send the testnet's and demo's progress to stderr")
    args = parser.parse_args(argv)
    data: Path = args.data
    if not data.is_dir():
        print(f"no crowd data at {data}", file=sys.stderr)
        return 1
    ok = offline_table(data)
    if args.network:
        sets = [s for s in args.sets.split(",") if s]
        rules = [r for r in args.rules.split(",") if r]
        bad = [s for s in sets if not (data / s / "answer.csv").is_file()]
        bad += [r for r in rules if r not in RULES]
        if bad or args.items < 0:
            print(f"unknown data set or rule: {', '.join(bad) or args.items}", file=sys.stderr)
            return 2
        print()
        ok &= network_table(data, sets, rules, args.items, args.timeout, args.quiet)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
