"""Replay the public crowd data sets through both aggregation rules, offline and on a testnet.

Run from the repository root::

    .venv/bin/python -m tests.quality.quality [DATA_DIR] [--crowdkit] [--network]
        [--sets A,B] [--items N]

``DATA_DIR`` defaults to ``tests/data/crowd`` (every folder in it with an
``answer.csv`` and a ``truth.csv``).

Offline (always): for each data set, the accuracy against gold of annot's
``majority`` and ``dawid-skene`` (the exact code validators run, fed the first
answer per (worker, item) as ``(item, worker, label)`` with ids as UTF-8
bytes; :mod:`tests.quality.offline`) beside crowd-kit's MV, Wawa, DS,
OneCoinDS, GLAD and MACE on the same answers (:mod:`tests.quality.crowdkit`),
the best of those, and whether annot reaches it. ``--crowdkit`` (what ``make
quality`` passes) runs crowd-kit in the same run, in two worker processes, and
rewrites ``tests/data/crowd/crowdkit_accuracy.json``; without it the table
compares with that file. Dawid-Skene must also reach the published figures of
the data sets' README within 0.005.

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
annot is below crowd-kit's best on a set, any network label differs from
offline, nodes disagree, or Dawid-Skene falls short of a published figure.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import trio

from node.cli.aggregate_csv import aggregate
from node.rpc.client import ClientError
from node.testnet import cluster as testnet
from node.testnet.cluster import TestnetError
from node.testnet.demo import DemoError
from node.testnet.demo_data import DemoDataError, Workload
from protocol.records import RULES
from tests.quality.crowdkit import (
    ACCURACY_FILE,
    CROWDKIT_VERSION,
    METHODS,
    load_accuracies,
    load_set,
    run_crowdkit,
    save_accuracies,
    set_names,
)
from tests.quality.network import (
    Comparison,
    ReplayError,
    by_name,
    early_final,
    free_base_port,
    replay,
)
from tests.quality.offline import annot_accuracies, table

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data" / "crowd"
NETWORK_SETS = ("d_Duck_Identification",)  # exact; see the module docstring for Face
PUBLISHED = {"d_jn_product": ("0.897", "0.940"), "d_sentiment": ("0.932", "0.960")}
TOLERANCE = 0.005  # issue 9: DS at least the published figure within this
NODES = 4

def _crowdkit_one(args: tuple[str, Path]) -> tuple[str, dict[str, float], dict[str, float]]:
    name, data = args
    acc, secs = run_crowdkit(load_set(name, data))
    return name, acc, secs


def offline_table(data: Path, with_crowdkit: bool, write: bool) -> bool:
    """annot's rules (and crowd-kit's methods, in 2 worker processes) on every set of
    ``data``; print the side-by-side table; False if annot's best rule is below
    crowd-kit's best on a set, annot's majority below crowd-kit's MV, or Dawid-Skene
    below a published figure. ``write``: save crowd-kit's figures for the CI test."""
    names = set_names(data)
    sets = {name: load_set(name, data) for name in names}
    ck: dict[str, dict[str, float | None]] = {}
    with contextlib.ExitStack() as stack:
        pending = []
        if with_crowdkit:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=2))
            pending = [pool.submit(_crowdkit_one, (name, data)) for name in names]
            print(f"crowd-kit {CROWDKIT_VERSION}: {', '.join(METHODS)} on {len(names)} sets "
                  "in 2 worker processes (GLAD and MACE take minutes)", flush=True)
        annot: dict[str, dict[str, float]] = {}
        for name in names:
            acc, secs = annot_accuracies(sets[name])
            annot[name] = acc
            print(f"   annot {name}: " + ", ".join(
                f"{r} {acc[r]:.4f} in {secs[r]:.1f} s" for r in acc), flush=True)
        for fut in pending:
            name, measured, secs = fut.result()
            ck[name] = dict(measured)
            print(f"   crowd-kit {name}: " + ", ".join(
                f"{m} {measured[m]:.4f} in {secs[m]:.0f} s" for m in METHODS), flush=True)
    if not with_crowdkit:  # compare with the figures of the last `make quality` run
        saved = load_accuracies()["sets"]
        ck = {name: saved[name]["accuracy"] for name in names if name in saved}
        print(f"crowd-kit figures from {ACCURACY_FILE.name} (the last make quality run)")
    elif write:
        save_accuracies(ck, data)
        print(f"wrote {ACCURACY_FILE}")
    print()
    text, ok = table([(sets[n], annot[n], ck[n]) for n in names if n in ck])
    print(text)
    for name, (_, pub_ds) in PUBLISHED.items():
        if name in annot and annot[name]["dawid-skene"] < float(pub_ds) - TOLERANCE:
            print(f"{name}: annot dawid-skene {annot[name]['dawid-skene']:.4f} is below "
                  f"the published {pub_ds}")
            ok = False
    missing = [n for n in names if n not in ck]
    if missing:
        print(f"no crowd-kit figures for {', '.join(missing)}: run make quality")
        ok = False
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
    parser.add_argument("--crowdkit", action="store_true",
                        help="run crowd-kit's methods too (the quality extra) and write "
                             "tests/data/crowd/crowdkit_accuracy.json; without it, compare "
                             "with that file")
    args = parser.parse_args(argv)
    data: Path = args.data
    if not data.is_dir():
        print(f"no crowd data at {data}", file=sys.stderr)
        return 1
    ok = offline_table(data, args.crowdkit, write=args.crowdkit and data == DEFAULT_DATA)
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
