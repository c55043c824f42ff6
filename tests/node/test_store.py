"""The SQLite record store: saves, forks, vector clock, own seqs, migrations, crashes."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.errors import ReadOnlyStoreError, SeqError, StoreError
from node.store.db import Saved, Store, open_store
from node.store.migrations import SCHEMA_VERSION, migrate
from protocol.cid import cid_bytes
from protocol.keys import Signer, SigningKey
from protocol.records import (
    Annotation,
    Record,
    TallyVote,
    Vote,
    VoteEntry,
    decode_record,
    sign_record,
)

ROOT = Path(__file__).resolve().parents[2]
NET = hashlib.sha256(b"store test network").digest()
ALICE = Signer(SigningKey(bytes(range(32))))
BOB = Signer(SigningKey(b"\x07" * 32))
CAROL = Signer(SigningKey(b"\x0c" * 32))
TASK = cid_bytes(b"task")


def item(n: int) -> bytes:
    return cid_bytes(n.to_bytes(8, "big"))


def ann(signer: Signer, seq: int, n: int = 0, label: str = "cat", task: bytes = TASK) -> Record:
    return sign_record(NET, signer, seq, Annotation(task=task, item=item(n), label=label))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(tmp_path / "store.db")
    yield s  # type: ignore[misc]
    s.close()


# ------------------------------------------------------------------ saving

def test_save_get_and_idempotence(store: Store) -> None:
    r = ann(ALICE, 1)
    assert store.save_records([r]) == [Saved.NEW]
    assert store.save_records([r]) == [Saved.DUPLICATE]
    assert store.count() == 1 and store.count("annotation") == 1 and store.count("vote") == 0
    assert store.has(r.cid) and store.get(r.cid) == r.data
    assert store.get_by_seq(ALICE.public_key, 1) == r.data
    assert store.get(cid_bytes(b"nothing")) is None
    assert store.get_by_seq(ALICE.public_key, 2) is None
    assert decode_record(store.get(r.cid) or b"", NET) == r


def test_same_record_twice_in_one_batch(store: Store) -> None:
    r = ann(ALICE, 1)
    assert store.save_records([r, r]) == [Saved.NEW, Saved.DUPLICATE]
    assert store.count() == 1


def test_fork_is_kept_as_evidence_not_overwriting(store: Store) -> None:
    first, second = ann(ALICE, 1, label="cat"), ann(ALICE, 1, label="dog")
    third = ann(ALICE, 1, label="fox")
    assert store.save_records([first]) == [Saved.NEW]
    assert store.save_records([second]) == [Saved.FORK]
    assert store.save_records([second]) == [Saved.DUPLICATE]  # the same fork twice
    # one variant proves the fork; further ones are not kept (issue 13, finding 9)
    assert store.save_records([third, first]) == [Saved.DUPLICATE, Saved.DUPLICATE]
    assert store.get_by_seq(ALICE.public_key, 1) == first.data
    assert store.forks() == [(first.data, second.data)]
    assert store.count() == 1
    assert store.clock() == {ALICE.public_key: 1}
    assert [a.label for a in store.annotations(TASK)] == ["cat"]


def test_mixed_batch_reports_per_record(store: Store) -> None:
    store.save_records([ann(ALICE, 1)])
    out = store.save_records([ann(ALICE, 1), ann(ALICE, 1, label="x"), ann(ALICE, 2), ann(BOB, 1)])
    assert out == [Saved.DUPLICATE, Saved.FORK, Saved.NEW, Saved.NEW]


def test_every_kind_is_indexed(store: Store) -> None:
    vote = sign_record(NET, ALICE, 2, Vote(phase=1, round=0,
                                           entries=(VoteEntry(TASK, item(0), "cat"),)))
    tv = sign_record(NET, ALICE, 3, TallyVote(task=TASK, root=bytes(32)))
    store.save_records([ann(ALICE, 1), vote, tv])
    assert store.counts_by_kind() == {"annotation": 1, "vote": 1, "tally_vote": 1}
    assert list(store.records_of_kind("vote")) == [vote.data]
    assert store.records_for_task(TASK, "tally_vote") == [tv.data]
    assert store.records_for_task(TASK, "annotation") == [ann(ALICE, 1).data]


# ------------------------------------------------------------------ vector clock

def test_clock_with_gaps_filled_later(store: Store) -> None:
    a = ALICE.public_key
    store.save_records([ann(ALICE, 3, 3)])
    assert store.clock().get(a, 0) == 0
    store.save_records([ann(ALICE, 1, 1), ann(ALICE, 5, 5)])
    assert store.clock()[a] == 1
    store.save_records([ann(ALICE, 2, 2)])
    assert store.clock()[a] == 3
    store.save_records([ann(ALICE, 4, 4), ann(BOB, 1)])
    assert store.clock() == {a: 5, BOB.public_key: 1}


def test_clock_survives_reopen(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s.db")
    s.save_records([ann(ALICE, i, i) for i in (1, 2, 4)])
    s.close()
    s = open_store(tmp_path / "s.db")
    assert s.clock() == {ALICE.public_key: 2}
    s.save_records([ann(ALICE, 3, 3)])
    assert s.clock() == {ALICE.public_key: 4}
    s.close()


def _contiguous(seqs: set[int]) -> int:
    n = 0
    while n + 1 in seqs:
        n += 1
    return n


RECS = {s: ann(ALICE, s, s) for s in range(1, 25)}


@settings(max_examples=40, deadline=None)
@given(st.permutations(list(range(1, 25))), st.lists(st.integers(1, 6), min_size=24, max_size=24))
def test_clock_is_highest_contiguous_in_any_arrival_order(order: list[int],
                                                          cuts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as d:
        s = open_store(Path(d) / "s.db")
        try:
            saved: set[int] = set()
            i = 0
            for size in cuts:
                batch = order[i:i + size]
                i += size
                if not batch:
                    break
                s.save_records([RECS[q] for q in batch])
                saved |= set(batch)
                assert s.clock().get(ALICE.public_key, 0) == _contiguous(saved)
            assert s.clock()[ALICE.public_key] == 24
        finally:
            s.close()


def test_records_after_in_batches(store: Store) -> None:
    recs = [ann(ALICE, s, s) for s in range(1, 12) if s != 6] + [ann(BOB, 1)]
    store.save_records(recs)
    a = ALICE.public_key
    assert store.records_after(a, 0, 3) == [r.data for r in recs[:3]]
    got, after = [], 0
    while batch := store.records_after(a, after, 4):
        assert len(batch) <= 4
        got += batch
        after = decode_record(batch[-1], NET).seq
    assert got == [r.data for r in recs if r.author == a]  # beyond the gap too, in seq order
    assert store.records_after(a, 11, 10) == []
    assert store.records_after(a, 5, 1) == [recs[5].data]  # seq 7: the gap at 6 is skipped


# ------------------------------------------------------------------ annotations

def test_lowest_seq_annotation_wins(store: Store) -> None:
    store.save_records([ann(ALICE, 5, 1, "dog")])
    assert [(a.label, a.seq) for a in store.annotations(TASK, item(1))] == [("dog", 5)]
    store.save_records([ann(ALICE, 2, 1, "cat")])
    assert [(a.label, a.seq) for a in store.annotations(TASK, item(1))] == [("cat", 2)]
    store.save_records([ann(ALICE, 9, 1, "fox")])
    got = store.annotations(TASK, item(1))
    assert [(a.label, a.seq) for a in got] == [("cat", 2)]
    assert got[0].cid == ann(ALICE, 2, 1, "cat").cid and got[0].author == ALICE.public_key
    assert store.annotation_count(TASK, item(1)) == 1
    assert store.count("annotation") == 3  # all three records are kept


@settings(max_examples=30, deadline=None)
@given(st.permutations([(ALICE, 3, "a"), (ALICE, 7, "b"), (ALICE, 4, "c"), (BOB, 2, "d"),
                        (BOB, 1, "e")]))
def test_annotation_winner_is_order_independent(order: list[tuple[Signer, int, str]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        s = open_store(Path(d) / "s.db")
        try:
            for signer, seq, label in order:
                s.save_records([ann(signer, seq, 1, label)])
            got = {(a.author, a.label, a.seq) for a in s.annotations(TASK)}
            assert got == {(ALICE.public_key, "a", 3), (BOB.public_key, "e", 1)}
        finally:
            s.close()


def test_annotation_queries(store: Store) -> None:
    other = cid_bytes(b"other task")
    store.save_records([ann(ALICE, 1, 1), ann(ALICE, 2, 2), ann(BOB, 1, 1, "dog"),
                        ann(ALICE, 3, 1, task=other)])
    assert len(store.annotations(TASK)) == 3
    assert len(store.annotations(TASK, item(1))) == 2
    assert [a.seq for a in store.annotations_by_author(ALICE.public_key, 0, 10)] == [1, 2, 3]
    assert [a.seq for a in store.annotations_by_author(ALICE.public_key, 1, 1)] == [2]
    assert store.annotation_count(TASK, item(2)) == 1


# ------------------------------------------------------------------ own seq

def test_reserve_seq_is_durable(tmp_path: Path) -> None:
    a = ALICE.public_key
    s = open_store(tmp_path / "s.db")
    assert s.next_seq(a) == 1
    assert s.reserve_seq(a) == 1
    assert s.reserve_seq(a, 3) == 2
    assert s.next_seq(a) == 5
    s.close()
    s = open_store(tmp_path / "s.db")
    assert s.reserve_seq(a) == 5  # nothing reserved before the restart is handed out again
    s.close()


def test_reserve_seq_skips_past_stored_records(store: Store) -> None:
    """Records of our own key that arrive from elsewhere (a restored key) are never re-used."""
    a = ALICE.public_key
    store.save_records([ann(ALICE, s, s) for s in (1, 2, 10)])
    assert store.next_seq(a) == 11
    assert store.reserve_seq(a) == 11
    assert store.reserve_seq(BOB.public_key) == 1


def test_next_seq_reports_a_counter_behind_the_store(store: Store) -> None:
    a = ALICE.public_key
    assert store.reserve_seq(a) == 1  # counter now 2
    store.save_records([ann(ALICE, s, s) for s in (1, 2, 3)])
    with pytest.raises(SeqError):
        store.next_seq(a)
    assert store.reserve_seq(a) == 4  # reserving repairs it
    assert store.next_seq(a) == 5


# ------------------------------------------------------------------ migrations and checks

def test_fresh_store_has_current_schema_and_wal(tmp_path: Path) -> None:
    open_store(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_reopen_keeps_data_and_version(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s.db")
    s.save_records([ann(ALICE, 1)])
    s.close()
    s = open_store(tmp_path / "s.db")
    assert s.count() == 1
    s.close()


def test_migrate_from_empty_and_idempotent(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db")
    try:
        assert migrate(conn) == 0
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert migrate(conn) == SCHEMA_VERSION  # nothing left to do
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"records", "clock", "own_seq", "forks", "annotations"} <= tables
    finally:
        conn.close()


def test_store_from_a_newer_annot_is_refused(tmp_path: Path) -> None:
    open_store(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(tmp_path / "s.db")


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "s.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        open_store(tmp_path / "s.db")


def test_integrity_check(store: Store) -> None:
    store.save_records([ann(ALICE, s, s) for s in range(1, 50)])
    assert store.integrity_check() == []


def test_integrity_check_reports_damage(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s.db")
    s.save_records([ann(ALICE, i, i, label="x" * 100) for i in range(1, 400)])
    s.close()  # last connection: WAL checkpointed into the main file
    path = tmp_path / "s.db"
    raw = bytearray(path.read_bytes())
    page = 4096
    assert len(raw) > 6 * page
    for p in range(2, len(raw) // page):  # scribble over every page but the header page
        raw[p * page + 100:p * page + 140] = b"\xa5" * 40
    path.write_bytes(bytes(raw))
    try:
        s = open_store(path)
    except StoreError:
        return  # refusing to open is an acceptable answer too
    try:
        problems = s.integrity_check()
    except sqlite3.DatabaseError:
        pytest.fail("integrity_check raised instead of reporting")
    finally:
        s.close()
    assert problems


# ------------------------------------------------------------------ read-only stores
#
# Tests run as root in CI containers, and root ignores file modes: chmod 0444 does not
# stop root from writing. So the read-only case is exercised through SQLite itself:
# open_store(readonly=True) opens with ``mode=ro``, which refuses every write in the
# engine regardless of the caller's privileges (like a read-only mount would). The
# chmod variant runs too when the tests do not run as root.

@pytest.fixture
def ro_store(tmp_path: Path) -> Store:
    s = open_store(tmp_path / "s.db")
    s.save_records([ann(ALICE, 1)])
    s.close()
    ro = open_store(tmp_path / "s.db", readonly=True)
    yield ro  # type: ignore[misc]
    ro.close()


def test_read_only_store_reads(ro_store: Store) -> None:
    assert ro_store.count() == 1 and ro_store.clock() == {ALICE.public_key: 1}


def test_read_only_store_refuses_saves(ro_store: Store) -> None:
    with pytest.raises(ReadOnlyStoreError):
        ro_store.save_records([ann(ALICE, 2)])
    assert ro_store.count() == 1


@pytest.mark.parametrize("write", ["reserve_seq", "save_evidence", "save_certificate",
                                   "save_tally"])
def test_read_only_store_refuses_every_write_with_a_store_error(ro_store: Store,
                                                                 write: str) -> None:
    calls = {
        "reserve_seq": lambda: ro_store.reserve_seq(ALICE.public_key),
        "save_evidence": lambda: ro_store.save_evidence("fork", b"a", b"b"),
        "save_certificate": lambda: ro_store.save_certificate(TASK, item(1), "cat", 0,
                                                              [cid_bytes(b"vote")]),
        "save_tally": lambda: ro_store.save_tally(TASK, bytes(32), b"t"),
    }
    with pytest.raises(ReadOnlyStoreError):
        calls[write]()


def test_read_only_open_of_a_missing_store_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        open_store(tmp_path / "missing.db", readonly=True)


READ_ONLY_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from node.errors import ReadOnlyStoreError, StoreError
from node.store.db import open_store
from protocol.cid import cid_bytes
from protocol.keys import Signer, SigningKey
from protocol.records import Annotation, sign_record
record = sign_record(bytes.fromhex(sys.argv[3]), Signer(SigningKey(bytes(range(32)))), 1,
                     Annotation(task=cid_bytes(b"task"), item=cid_bytes(b"item"), label="cat"))
try:
    s = open_store(sys.argv[2])
except StoreError as exc:
    print("open refused:", type(exc).__name__, exc)
    sys.exit(0)
try:
    s.save_records([record])
    print("saved")
except ReadOnlyStoreError as exc:
    print("save refused: ReadOnlyStoreError", exc)
finally:
    s.close()
"""

# As root, file modes bind a process only without CAP_DAC_OVERRIDE (and its read
# twin and CAP_FOWNER, which would let it chmod back): the check then runs in a child
# that keeps uid 0 but has those capabilities dropped from its bounding set (setpriv),
# so it obeys modes like any user. Switching to an unprivileged uid is not possible
# here: the venv's interpreter lives under /root (mode 0700). Not root: a plain child.
DROP_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]


def test_read_only_file_refuses_saves(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s.db")
    s.close()
    for p in tmp_path.iterdir():
        p.chmod(0o444)
    prefix = DROP_DAC if os.geteuid() == 0 else []
    out = subprocess.run([*prefix, sys.executable, "-c", READ_ONLY_CHILD, str(ROOT),
                          str(tmp_path / "s.db"), NET.hex()],
                         capture_output=True, text=True, timeout=60)
    print(f"read-only store file ({'root without DAC override' if prefix else 'user'}): "
          f"{out.stdout.strip()}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("save refused: ReadOnlyStoreError"), out.stdout + out.stderr


# ------------------------------------------------------------------ other writes

def test_evidence_and_tallies(store: Store) -> None:
    assert store.save_evidence("vote", b"b", b"a") is True
    assert store.save_evidence("vote", b"a", b"b") is False  # same pair, either order
    assert store.evidence() == [(1, "vote", b"a", b"b")]
    store.save_tally(TASK, bytes(32), b"tally")
    assert store.tally(TASK) == (bytes(32), b"tally")
    assert store.tallies() == [(TASK, bytes(32), b"tally")]


# ------------------------------------------------------------------ kill -9

CHILD = r"""
import random, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from node.store.db import open_store
from protocol.cid import cid_bytes
from protocol.keys import Signer, SigningKey
from protocol.records import Annotation, sign_record

path, cycle = Path(sys.argv[2]), int(sys.argv[5])
seed, net = bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4])
rnd = random.Random(cycle)
# a SIGKILL needs no fsync (the OS keeps what was written); with one per commit the
# child rarely commits inside the kill window. Power loss: tests/faults/test_faults_power.py
store = open_store(path, durable=False)
signer = Signer(SigningKey(seed))
task = cid_bytes(b"crash task")
print("ready", flush=True)
n = 0
while True:
    count = rnd.randint(1, 24)
    first = store.reserve_seq(signer.public_key, count)  # durable before anything is signed
    print("R", first, count, flush=True)
    # the label names the cycle: a re-used seq would make a different record (a fork)
    batch = [sign_record(net, signer, s, Annotation(task, cid_bytes(s.to_bytes(8, "big")),
                                                    f"c{cycle}-{n}"))
             for s in range(first, first + count)]
    n += 1
    store.save_records(batch)
    print("A", *range(first, first + count), flush=True)
"""


def _run_and_kill(path: Path, signer_seed: bytes, cycle: int, delay: float
                  ) -> tuple[list[tuple[int, int]], list[int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ROOT), str(path), signer_seed.hex(), NET.hex(),
         str(cycle)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == "ready\n", first + (proc.stderr.read() if proc.stderr else "")
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, err
    reserved, acked = [], []
    for line in out.splitlines(keepends=True):
        if not line.endswith("\n"):
            continue  # cut off by the kill: not acknowledged
        tag, *nums = line.split()
        if tag == "R":
            reserved.append((int(nums[0]), int(nums[1])))
        elif tag == "A":
            acked += [int(x) for x in nums]
    return reserved, acked


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_record_and_never_forks(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    seed = bytes(range(32))
    author = SigningKey(seed).public_key
    rnd = random.Random(20261125)
    acked_all: set[int] = set()
    max_used = 0  # highest seq ever reserved (as reported) or stored
    stored_cids: dict[int, bytes] = {}
    cycles = with_acks = 0
    start = time.monotonic()
    while cycles < 30 or (time.monotonic() - start < 12 and cycles < 40):
        delay = rnd.choice([0.0, 0.001, 0.003]) if rnd.random() < 0.2 else rnd.uniform(0, 0.06)
        reserved, acked = _run_and_kill(path, seed, cycles, delay)
        cycles += 1
        with_acks += bool(acked)
        # seqs are reserved in increasing order, each above everything used before
        for first, count in reserved:
            assert first > max_used, f"cycle {cycles}: reserve_seq gave {first} <= {max_used}"
            max_used = first + count - 1
        acked_all |= set(acked)

        s = open_store(path)
        try:
            assert s.integrity_check() == []
            rows = s.records_after(author, 0, 1_000_000)
            # verify each stored record's signature once, when it first appears
            recs = [decode_record(d, NET, verify=False) for d in rows]
            for r in recs:
                if r.seq not in stored_cids:
                    decode_record(r.data, NET)
            seqs = [r.seq for r in recs]
            assert len(seqs) == len(set(seqs)) == s.count()
            missing = acked_all - set(seqs)
            assert not missing, f"cycle {cycles}: acknowledged seqs lost: {sorted(missing)[:10]}"
            for r in recs:  # a stored record never changes, and a seq is never signed twice
                assert stored_cids.setdefault(r.seq, r.cid) == r.cid
            assert s.forks() == []
            assert s.clock().get(author, 0) == _contiguous(set(seqs))
            if seqs:
                max_used = max(max_used, max(seqs))
            # the next reservation is above every seq ever used, even unacknowledged ones
            assert s.next_seq(author) > max_used
        finally:
            s.close()
    assert cycles >= 30
    assert with_acks >= cycles // 3, "the child rarely got to commit: the test proves little"
    assert len(acked_all) > 100


@pytest.mark.slow
def test_ingest_bench_runs_as_a_module() -> None:
    out = subprocess.run([sys.executable, "-m", "tests.bench.ingest_quick", "--records", "300"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert "decode + verify + save:" in out.stdout and "raw PyNaCl verify:" in out.stdout


def test_records_stored_after_a_high_water_mark(store: Store) -> None:
    assert store.high_water() == 0
    first = [ann(ALICE, s, s) for s in (1, 2, 5)]
    store.save_records(first)
    mark = store.high_water()
    assert mark > 0
    later = [ann(ALICE, s, s) for s in (3, 4)] + [ann(BOB, 1)]
    store.save_records(later)
    assert store.high_water() > mark
    # what came after the mark, in storage order, paged by the last mark
    got = store.stored_after(mark, 2)
    assert [(a, q, d) for _, a, q, d in got] == [
        (r.author, r.seq, r.data) for r in later[:2]]
    rest = store.stored_after(got[-1][0], 2)
    assert [d for *_, d in rest] == [later[2].data]
    assert store.stored_after(rest[-1][0], 2) == []
    assert store.stored_after(store.high_water(), 10) == []
    assert [d for *_, d in store.stored_after(0, 10)] == [r.data for r in first + later]


def test_held_above_clock_lists_records_past_a_gap(store: Store) -> None:
    store.save_records([ann(ALICE, s, s) for s in (1, 2, 4, 5, 9)]
                       + [ann(BOB, s, s) for s in (2, 3)] + [ann(CAROL, 1)])
    want = {ALICE.public_key: [4, 5, 9], BOB.public_key: [2, 3]}
    assert store.held_above_clock(100) == want
    first = min(want)  # lowest authors first, and at most ``limit`` pairs
    assert store.held_above_clock(2) == {first: want[first][:2]}
    store.save_records([ann(ALICE, 3, 3)])  # the gap filled: 4 and 5 are contiguous now
    assert store.held_above_clock(100) == {ALICE.public_key: [9], BOB.public_key: [2, 3]}


def test_held_above_clock_probes_per_author_and_never_scans_records(store: Store) -> None:
    # every sync session asks; a scan of every record grew with the store (16 ms at
    # 40,000 records, on the event loop)
    store.save_records([ann(ALICE, s, s) for s in (1, 3)])
    sql: list[str] = []
    store._db.set_trace_callback(sql.append)
    try:
        store.held_above_clock(100)
    finally:
        store._db.set_trace_callback(None)
    (query,) = [q for q in sql if q.startswith("SELECT")]
    plan = " ".join(str(row[3]) for row in store._db.execute("EXPLAIN QUERY PLAN " + query))
    assert "SEARCH r USING COVERING INDEX" in plan and "SCAN r" not in plan, plan
