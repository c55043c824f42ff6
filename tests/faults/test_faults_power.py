"""Power loss: what a node signs, sends or acknowledges is on disk first (issue 13, 12).

A power cut loses every write the kernel has not been told to sync. The store
ran ``synchronous=NORMAL``: commits were written to the WAL but fsynced only at
checkpoints, so after a power cut a node could lose its last seq reservations
and sign a second record with a used seq (a self-fork), or a second, different
vote in a round.

The scenario runs the node's own write paths in a child process under
``strace`` — the seq reservation then signing (``Node.sign_own``'s order:
reserve, sign, save, publish), a vote batch saved before it is sent, and a
client's record acknowledged by ``Ingest.submit``, and one acknowledged by group
commit (the daemon's path: committed without an fsync, then the WAL fsynced in
a worker thread before the answer) — and prints a marker (one
``write`` to stdout) at each point where the record leaves the process's
control: ``SIGN`` (a reserved seq is about to be signed), ``SEND`` (a saved
record is about to be gossiped) and ``ACK`` (the client is about to get its
answer). The check: before every marker, each WAL write since the previous
marker is followed by an ``fdatasync``/``fsync`` of the WAL. Then whatever a
power cut keeps, every seq handed out is durably reserved: no self-fork.

The same child on ``synchronous=NORMAL`` (the old setting) breaks the check,
so the check is known to catch the bug.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .summary import add, note

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 25

CHILD = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from node.core.ingest import Ingest
from node.core.metrics import Metrics
from node.store.db import open_store
from protocol import cid as cidlib
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.records import Annotation, Task, Vote, VoteEntry, PREVOTE, sign_record

durable = sys.argv[3] == "1"
me, req, ann = (SigningKey(bytes([b]) * 32) for b in (0x61, 0x62, 0x63))
g = Genesis(name="power", validators=(Validator(me.peer_id, 1),))
store = open_store(Path(sys.argv[2]), durable=durable)
ing = Ingest(store, g, Metrics(), publish=lambda d: os.write(1, b"SEND\n"))
items = tuple(cidlib.cid_bytes(b"p%d" % k) for k in range(64))
task = sign_record(g.network_id, req, 1, Task("t", ("cat", "dog"), items, 1, 1, 0))
ing.submit(task.data)
os.write(1, b"ACK\n")
for k in range(int(sys.argv[4])):
    seq = store.reserve_seq(me.public_key)      # Node.sign_own: reserve ...
    os.write(1, b"SIGN %d\n" % seq)              # ... sign ...
    entry = VoteEntry(task.cid, items[k % 64], "cat")
    vote = sign_record(g.network_id, me, seq, Vote(PREVOTE, k, (entry,)))
    ing.accept([vote], source="self")            # ... save ...
    ing.publish(vote.data)                       # ... publish (SEND)
    rec = sign_record(g.network_id, ann, k + 1, Annotation(task.cid, items[k % 64], "dog"))
    ing.submit(rec.data)                          # a client's record ...
    os.write(1, b"ACK\n")                         # ... acknowledged
import trio
for k in range(int(sys.argv[4])):                 # the daemon's path: group commit, ...
    rec = sign_record(g.network_id, ann, int(sys.argv[4]) + k + 1,
                      Annotation(task.cid, items[k % 64], "cat"))
    trio.run(ing.submit_async, rec.data)          # ... its fsync in a worker thread
    os.write(1, b"ACK\n")
"""

LINE = re.compile(r"^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
MARKER = re.compile(r'\s*"(SIGN|SEND|ACK)\b')


def _violations(trace: str, wal_name: str) -> tuple[int, int, list[str]]:
    """(markers, WAL syncs, markers reached with unsynced WAL writes)."""
    wal_fds: set[int] = set()
    dirty = False
    markers = syncs = 0
    bad: list[str] = []
    for raw in trace.splitlines():
        m = LINE.match(raw)
        if not m:
            continue
        call, args, ret = m.group(1), m.group(2), int(m.group(3))
        first = args.split(",", 1)[0]
        if call == "openat" and wal_name in args and ret >= 0:
            wal_fds.add(ret)
        elif call in ("pwrite64", "write") and first.isdigit() and int(first) in wal_fds:
            dirty = True
        elif call in ("fdatasync", "fsync") and first.isdigit() and int(first) in wal_fds:
            dirty = False
            syncs += 1
        elif call == "write" and first == "1" and MARKER.match(args.split(",", 1)[1]):
            # (only the markers: imports may run helpers, e.g. ldconfig, that print)
            markers += 1
            if dirty:
                bad.append(args[:40])
    return markers, syncs, bad


def _run(tmp: Path, durable: bool) -> tuple[int, int, list[str]]:
    db = tmp / ("durable.db" if durable else "normal.db")
    log = tmp / ("durable.trace" if durable else "normal.trace")
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-s", "32", "-e", "trace=openat,pwrite64,write,fsync,fdatasync",
         "-o", str(log), sys.executable, "-c", CHILD, str(ROOT), str(db),
         "1" if durable else "0", str(ROUNDS)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("SIGN") == ROUNDS and proc.stdout.count("ACK") == 2 * ROUNDS + 1
    return _violations(log.read_text(), db.name + "-wal")


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_power_loss_no_self_fork(tmp_path: Path) -> None:
    markers, syncs, bad = _run(tmp_path, durable=True)
    # per round SIGN, SEND (vote), SEND + ACK (client), SEND + ACK (group commit)
    assert markers == 6 * ROUNDS + 2
    assert syncs >= 4 * ROUNDS  # reservation, vote, client record, group: each its own
    assert bad == [], f"records left the process before their WAL writes were synced: {bad}"
    # the old setting: WAL writes reach the disk only at checkpoints, so markers pass
    # unsynced writes — the check sees it
    markers_n, syncs_n, bad_n = _run(tmp_path, durable=False)
    assert markers_n == markers and len(bad_n) >= 2 * ROUNDS, (syncs_n, len(bad_n))
    add(power_markers_checked=markers)
    note(power_loss=f"{markers} sign/send/ack points, each after an fsync of its WAL "
         f"writes ({syncs} syncs); synchronous=NORMAL left {len(bad_n)} unsynced")
