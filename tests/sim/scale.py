"""Past one machine: what one final item costs as the validator set grows.

    python -m tests.sim.scale [--sizes 4,16,64,128] [--items 8] [--seeds 2]   (make scale)

Runs the real consensus :class:`~protocol.consensus.Engine` in the simulator with N
equal-weight honest validators on a wide-area network: one-way delay uniform in
20..200 ms per message (so messages also reorder), 1% loss, 5% duplicates;
annotations reach every validator within 0.5 s (gossip); items with redundancy 3..5.
Each run counts, per validator and per final item:

- vote records sent and received (the simulator sends each vote to every other
  validator directly: n - 1 copies; gossipsub's mesh of degree D = 6 puts about D
  copies of every record on the wire per node instead, so on the wire ~ D * n),
- bytes: records times the measured size of a signed one-entry vote record
  (``VOTE_BYTES``; each further entry of a batched vote adds ``ENTRY_BYTES``),
- signature checks: the first receipt of every vote record (duplicates are not
  verified again) plus every annotation, once per validator.

Writes ``docs/scaling.json`` and ``docs/scaling.png`` (matplotlib, the ``scale``
extra) that ``docs/scaling.md`` shows. The counts are exact for the model; the
seconds are this machine's simulation time, not the network's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from protocol.consensus import Engine
from protocol.consensus_events import Finalized, VoteReceived
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey, peer_id_from_public_key
from protocol.records import PRECOMMIT, Vote, VoteEntry, sign_record

from .sim import _VOTE, PARAMS, Node, Sim

ROOT = Path(__file__).resolve().parents[2]
DELAY_MS = (20, 200)
LOSS = 0.01
GOSSIP_DEGREE = 6  # gossipsub mesh degree D in node/p2p/gossip.py


def _vote_sizes() -> tuple[int, int]:
    """(bytes of a signed one-entry vote record, bytes each further entry adds)."""
    key = SigningKey(bytes(32))
    task = hashlib.sha256(b"task").digest()

    def size(n: int) -> int:
        from protocol.cid import cid_bytes
        entries = tuple(VoteEntry(cid_bytes(task), cid_bytes(b"item %d" % i), "cat")
                        for i in range(n))
        return len(sign_record(bytes(32), key, 1, Vote(PRECOMMIT, 0, entries)).data)

    one = size(1)
    return one, size(2) - one


VOTE_BYTES, ENTRY_BYTES = _vote_sizes()


class ScaleSim(Sim):
    """``n`` honest equal-weight validators on a lossy WAN; counts what each sends."""

    def __init__(self, n: int, seed: int, n_items: int) -> None:
        rng = random.Random(seed)
        self.seed, self.rng, self.adversarial = seed, rng, False
        if not 1 <= n <= 255:
            raise ValueError("the simulator names validators by one byte: 1..255 of them")
        self.pks = [bytes([i + 1]) * 32 for i in range(n)]  # Sim maps pk[0] - 1 -> index
        self.genesis = Genesis("scale", tuple(Validator(peer_id_from_public_key(pk), 1)
                                              for pk in self.pks), PARAMS)
        self.make = Engine
        self.nodes = [Node(pk, Engine(self.genesis, pk)) for pk in self.pks]
        self.honest = list(self.nodes)
        self.loss, self.max_delay, self.heal = LOSS, DELAY_MS[1], 0
        self.group, self.camp = [0] * n, [True] * n
        self.items = [self._item(k, rng) for k in range(n_items)]
        for it in self.items:
            it.close = 10**9  # never closes: every item gets its annotations
        self.liveness_ms = 10**9
        self.settled, self.deadline = 0, 2 * 10**9
        self.queue, self.seq, self.now = [], 0, 0
        self.violations, self.lag = [], None
        self.decided, self.casts, self.byz_sent = {}, {}, set()
        self.restart = (-1, 0)
        self.trace, self.events, self.finals = hashlib.sha256(), 0, 0
        self.sent, self.received, self.checks = [0] * n, [0] * n, [0] * n
        self.final_at: dict[bytes, int] = {}
        self.index = {pk: i for i, pk in enumerate(self.pks)}
        self.max_round = 0

    def send(self, frm: int, to: int, ev: VoteReceived) -> None:
        self.sent[frm] += 1
        if self.rng.random() < LOSS:
            return
        if self.rng.random() < 0.05:
            self.at(self.now + self.rng.randint(*DELAY_MS), _VOTE, to, ev)
        self.at(self.now + self.rng.randint(*DELAY_MS), _VOTE, to, ev)

    def step(self, kind: int, to: int, payload: object) -> None:
        if kind == _VOTE and isinstance(payload, VoteReceived):
            self.received[to] += 1
            if payload not in self.nodes[to].store:
                self.checks[to] += 1  # a record is verified once, on first receipt
        super().step(kind, to, payload)

    def apply(self, i: int, actions: Any) -> None:
        for a in actions:
            if isinstance(a, Finalized):
                self.max_round = max(self.max_round, a.round)
                self.final_at[a.key[1]] = self.now
        super().apply(i, actions)


def measure(n: int, seed: int, n_items: int) -> dict[str, Any]:
    sim = ScaleSim(n, seed, n_items)
    t0 = time.perf_counter()
    found = sim.run()
    secs = time.perf_counter() - t0
    annotations = sum(len(it.labels) for it in sim.items)
    checks = [c + annotations for c in sim.checks]  # every validator verifies each once
    items = len(sim.items)
    records = sum(sim.sent) // max(1, n - 1)  # vote records cast (each sent to n - 1)
    return {
        "validators": n, "seed": seed, "items": items, "violations": found,
        "all_final": sim.finals == n * items, "max_round": sim.max_round,
        "last_final_ms": max(sim.final_at.values(), default=None),
        "vote_records_per_item": records / items,
        "annotations_per_item": annotations / items,
        "messages_per_item": sum(sim.sent) / items,
        "messages_per_validator_per_item": sum(sim.sent) / items / n,
        "bytes_per_validator_per_item": VOTE_BYTES * sum(sim.sent) / items / n,
        "gossip_wire_messages_per_item": records * n * GOSSIP_DEGREE / items,
        "sig_checks_per_item": sum(checks) / items,
        "sig_checks_per_validator_per_item": sum(checks) / items / n,
        "events": sim.events, "sim_seconds": round(secs, 2),
    }


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per size: the mean over seeds of each per-item figure, the worst round."""
    out = []
    for n in sorted({r["validators"] for r in runs}):
        rs = [r for r in runs if r["validators"] == n]
        row: dict[str, Any] = {"validators": n, "runs": len(rs),
                               "all_final": all(r["all_final"] for r in rs),
                               "violations": sum(len(r["violations"]) for r in rs),
                               "max_round": max(r["max_round"] for r in rs),
                               "last_final_ms": max(r["last_final_ms"] or 0 for r in rs)}
        for key in ("vote_records_per_item", "messages_per_item",
                    "messages_per_validator_per_item", "bytes_per_validator_per_item",
                    "gossip_wire_messages_per_item", "sig_checks_per_item",
                    "sig_checks_per_validator_per_item", "sim_seconds"):
            row[key] = round(sum(r[key] for r in rs) / len(rs), 1)
        out.append(row)
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["validators"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    ax[0].loglog(ns, [r["messages_per_item"] for r in rows], "o-",
                 label="vote messages, direct (simulated)")
    ax[0].loglog(ns, [r["gossip_wire_messages_per_item"] for r in rows], "s--",
                 label=f"on the wire via gossipsub (D={GOSSIP_DEGREE})")
    ax[0].loglog(ns, [r["sig_checks_per_item"] for r in rows], "^-",
                 label="signature checks, all validators")
    ax[0].set_xlabel("validators")
    ax[0].set_ylabel("per final item")
    ax[0].set_title("network-wide cost of one final item")
    ax[0].legend(fontsize=8)
    ax[1].loglog(ns, [r["sig_checks_per_validator_per_item"] for r in rows], "^-",
                 label="signature checks")
    ax[1].loglog(ns, [r["messages_per_validator_per_item"] for r in rows], "o-",
                 label="vote messages sent")
    ax[1].set_xlabel("validators")
    ax[1].set_ylabel("per validator, per final item")
    ax[1].set_title("one validator's cost of one final item")
    ax[1].legend(fontsize=8)
    for a in ax:
        a.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sim.scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="4,16,64,128", help="validator counts")
    ap.add_argument("--items", type=int, default=8, help="items per run")
    ap.add_argument("--seeds", type=int, default=2, help="runs per size")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "scaling.json")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "scaling.png")
    args = ap.parse_args(argv)
    runs = []
    for n in (int(x) for x in args.sizes.split(",")):
        for seed in range(args.seeds):
            r = measure(n, seed, args.items)
            runs.append(r)
            print(f"n={n:>4} seed {seed}: {'all final' if r['all_final'] else 'NOT ALL FINAL'} "
                  f"by {r['last_final_ms']} ms (round <= {r['max_round']}), "
                  f"{r['messages_per_item']:,.0f} msgs/item, "
                  f"{r['sig_checks_per_validator_per_item']:,.0f} sig checks/validator/item, "
                  f"{len(r['violations'])} violations; {r['sim_seconds']} s", flush=True)
    rows = summarize(runs)
    report = {"model": {"delay_ms": DELAY_MS, "loss": LOSS, "duplicates": 0.05,
                        "vote_bytes": VOTE_BYTES, "entry_bytes": ENTRY_BYTES,
                        "gossip_degree": GOSSIP_DEGREE, "round_timeout_ms":
                        PARAMS.round_timeout_ms},
              "rows": rows, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    plot(rows, args.plot)
    print(f"wrote {args.out} and {args.plot}")
    ok = all(r["all_final"] and not r["violations"] for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
