"""Issue 13, findings 5 and 12: honest clients never fork, and commits are fsynced.

5. ``annot label --key`` took its seq from whichever node it asked, so two labels
   at once (or one through a lagging node) shared a seq: the second became fork
   evidence against an honest annotator and was lost with exit code 0. Now the
   seq comes from a locked, fsynced counter beside the key file; a node refuses
   an RPC submission that reuses a seq it holds, naming the next free seq; and
   the CLI says what happened to the label.
12. The store ran ``synchronous=NORMAL`` (no fsync per commit).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.cli.offline import label_outcome
from node.core.admission import AdmissionError
from node.core.ingest import Ingest, SeqReuseError
from node.core.keyseq import next_key_seq, reserve_key_seq, seq_path
from node.core.metrics import Metrics
from node.errors import HomeError
from node.store.db import open_store
from protocol import cid as cidlib
from protocol.genesis import Genesis, Validator
from protocol.keys import SigningKey
from protocol.records import Annotation, Task, sign_record

ROOT = Path(__file__).resolve().parents[2]
KEY = SigningKey(b"\x33" * 32)
REQ = SigningKey(b"\x34" * 32)
G = Genesis(name="durable", validators=(Validator(SigningKey(b"\x35" * 32).peer_id, 1),))

RESERVER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from node.core.keyseq import reserve_key_seq
print(" ".join(str(reserve_key_seq(Path(sys.argv[2]))) for _ in range(int(sys.argv[3]))))
"""


def test_concurrent_processes_never_share_a_seq(tmp_path: Path) -> None:
    key = tmp_path / "me.key"
    key.write_bytes(KEY.seed)
    procs = [subprocess.Popen([sys.executable, "-c", RESERVER, str(ROOT), str(key), "40"],
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    seqs: list[int] = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=60)
        finally:
            p.kill()
        assert p.returncode == 0
        seqs += [int(x) for x in out.split()]
    assert sorted(seqs) == list(range(1, 161))  # 160 reservations, no seq twice
    assert next_key_seq(key) == 161
    assert seq_path(key).stat().st_mode & 0o077 == 0


def test_counter_never_falls_behind_the_network(tmp_path: Path) -> None:
    key = tmp_path / "me.key"
    assert reserve_key_seq(key, floor=1) == 1
    assert reserve_key_seq(key, floor=7) == 7  # the node already holds seqs 1..6
    assert reserve_key_seq(key, floor=1) == 8  # and never goes back
    seq_path(key).write_text("garbage\n")
    with pytest.raises(HomeError, match="corrupt"):
        reserve_key_seq(key)


def _ingest(tmp_path: Path) -> tuple[Ingest, Task, bytes]:
    store = open_store(tmp_path / "s.db")
    ing = Ingest(store, G, Metrics(), publish=lambda d: None)
    items = tuple(cidlib.cid_bytes(f"i{k}".encode()) for k in range(3))
    task = sign_record(G.network_id, REQ, 1, Task("t", ("cat", "dog"), items, 3, 10, 0))
    ing.submit(task.data)
    return ing, task.body, task.cid  # type: ignore[return-value]


def test_node_refuses_a_reused_seq_naming_the_next_free_one(tmp_path: Path) -> None:
    ing, task, tid = _ingest(tmp_path)
    first = sign_record(G.network_id, KEY, 1, Annotation(tid, task.items[0], "cat"))
    second = sign_record(G.network_id, KEY, 1, Annotation(tid, task.items[1], "dog"))
    ing.submit(first.data)
    ing.submit(first.data)  # the same record again is fine (idempotent)
    with pytest.raises(SeqReuseError, match=r"seq 1 of .* already used.*next free seq is 2"):
        ing.submit(second.data)
    assert ing.store.forks() == []  # an honest client's mistake is not fork evidence
    bad = sign_record(G.network_id, KEY, 2, Annotation(tid, task.items[1], "bird"))
    with pytest.raises(AdmissionError, match="label_not_in_schema"):
        ing.submit(bad.data)


def test_the_cli_reports_what_happened_to_a_label() -> None:
    me, other = "12D3me", "12D3other"
    info = {"redundancy": 3, "final": None, "annotations": [
        {"author": other, "label": "dog", "cid": "b1", "seq": 4},
        {"author": me, "label": "cat", "cid": "b2", "seq": 9}]}
    assert label_outcome({"cid": "b2"}, info, me, "cat") == (True, "recorded, 2/3 labels")
    counted, line = label_outcome({"cid": "b3"}, info, me, "dog")
    assert not counted
    assert line.startswith("ignored: you already labelled this item with 'cat'")
    assert label_outcome({"cid": "b4"}, {"annotations": []}, me, "dog")[0] is False


def test_store_fsyncs_every_commit(tmp_path: Path) -> None:
    s = open_store(tmp_path / "f.db")
    assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.close()
    s = open_store(tmp_path / "f.db", durable=False)
    assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL, benchmarks only
    s.close()


def test_certificates_are_written_without_an_fsync(tmp_path: Path) -> None:
    """A certificate is derived from stored precommits (a restarted node finalizes the
    item again from them), so its write skips the fsync: two per final item, on the
    event loop, were 15% of a validator's samples. The next durable commit is FULL."""
    s = open_store(tmp_path / "c.db")
    sql: list[str] = []
    s._db.set_trace_callback(sql.append)
    try:
        task, item = b"t" * 34, b"i" * 34
        s.save_certificate(task, item, "cat", 0, [b"a" * 34])
        s.add_certificate_vote(task, item, b"b" * 34)
        writes = [q for q in sql if q.startswith(("INSERT", "UPDATE", "PRAGMA"))]
        assert writes == ["PRAGMA synchronous=NORMAL",
                          writes[1], "PRAGMA synchronous=FULL",
                          "PRAGMA synchronous=NORMAL",
                          writes[4], "PRAGMA synchronous=FULL"], writes
        assert writes[1].startswith("INSERT OR IGNORE INTO certificates")
        assert writes[4].startswith("UPDATE certificates")
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
        assert s.certificate(task, item) == ("cat", 0, sorted([b"a" * 34, b"b" * 34]))
    finally:
        s._db.set_trace_callback(None)
        s.close()
