"""Hidden gold from the command line, on one real running node (a subprocess daemon).

``annot task create --gold FILE`` keeps the salts and answers in a 0600 file and
publishes a task whose commitments open with exactly them; ``annot task reveal``
is refused while the task is open, refused with a tampered answer, and accepted
after the requester's early ``annot task close`` (well before the close time);
then the tally scores each annotator on the gold items and, below
``--min-gold-bps``, does not pay the one who missed them.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

from harness import ANNOT, ROOT, Cluster

from node.core.home import write_key
from node.store.db import open_store
from protocol.cid import cid_bytes, cid_from_str, cid_to_str
from protocol.gold import gold_commitment
from protocol.keys import SigningKey
from protocol.records import Annotation, Task, decode_record, sign_record
from protocol.tally import decode_tally

REQUESTER = SigningKey(b"\x40" * 32)
HONEST, SLOPPY = SigningKey(b"\x41" * 32), SigningKey(b"\x42" * 32)


def annot(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANNOT_HOME", "ANNOT_DEBUG")}
    out = subprocess.run([*ANNOT, *args[:2], "--home", str(home), *args[2:]], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env=env)
    assert (out.returncode == 0) == ok, out.stderr or out.stdout
    return out


def _stored_task(home: Path, nid: bytes, task: str) -> Task:
    store = open_store(home / "store.db", readonly=True)
    try:
        data = store.get(cid_from_str(task))
    finally:
        store.close()
    assert data is not None
    body = decode_record(data, nid, verify=False).body
    assert isinstance(body, Task)
    return body


def test_gold_create_close_early_and_reveal_from_the_cli(tmp_path: Path) -> None:
    with Cluster(tmp_path / "cluster", n=1) as c:
        c.start()
        home = c.home(0)
        nid = bytes.fromhex(c.status(0)["network_id"])
        items = [cid_to_str(cid_bytes(f"gold cli item {k}".encode())) for k in range(4)]
        key = tmp_path / "requester.key"
        write_key(key, REQUESTER)
        gold_csv = tmp_path / "gold.csv"
        gold_csv.write_text(f"item,answer\n{items[0]},a\n{items[2]},b\n")
        close = int(time.time()) + 3600  # an hour away: only the early close opens it
        created = json.loads(annot(
            home, "task", "create", "--json", "--title", "gold cli", "--label", "a",
            "--label", "b", *(x for i in items for x in ("--item", i)), "--redundancy", "2",
            "--reward", "1000", "--close-time", str(close), "--gold", str(gold_csv),
            "--min-gold-bps", "5000", "--reveal-window", "600", "--key", str(key)).stdout)
        task, secrets_file = created["task"], Path(created["gold_secrets"])
        assert created["gold_items"] == 2
        assert secrets_file == home / "gold" / f"{task}.json"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        kept = json.loads(secrets_file.read_text())
        assert kept["requester"] == REQUESTER.peer_id and kept["key"] == str(key.resolve())
        # the task on the node carries exactly the commitments the kept salts open
        body = _stored_task(home, nid, task)
        assert (body.min_gold_bps, body.reveal_window, body.close_time) == (5000, 600, close)
        assert sorted(body.gold) == sorted(
            gold_commitment(bytes.fromhex(e["salt"]), cid_from_str(e["item"]), e["label"])
            for e in kept["entries"])
        assert {e["item"]: e["label"] for e in kept["entries"]} == {items[0]: "a",
                                                                    items[2]: "b"}

        # the honest annotator gets both gold items right; the sloppy one misses both
        for who, labels in ((HONEST, "abba"), (SLOPPY, "bbaa")):
            seq = c.rpc(0, "account.get", author=who.peer_id)["next_seq"]
            recs = [sign_record(nid, who, seq + k, Annotation(cid_from_str(task),
                                                              cid_from_str(i), lab)).data
                    for k, (i, lab) in enumerate(zip(items, labels, strict=True))]
            c.submit_many(0, recs)
        # open task: a reveal would show the answers to annotators still labelling
        early = annot(home, "task", "reveal", task, ok=False)
        assert "before the task closes" in early.stderr
        annot(home, "task", "close", task, "--key", str(key))
        # a tampered answer opens no commitment: refused, saying so
        bad = json.loads(secrets_file.read_text())
        bad["entries"][0]["label"] = "b" if bad["entries"][0]["label"] == "a" else "a"
        tampered = tmp_path / "tampered.json"
        tampered.write_text(json.dumps(bad))
        refused = annot(home, "task", "reveal", task, "--gold-secrets", str(tampered), ok=False)
        assert "opens none of the task's commitments" in refused.stderr
        assert time.time() < close
        # the true one, signed by the key the secrets file names
        revealed = json.loads(annot(home, "task", "reveal", "--json", task).stdout)
        assert revealed["cid"]

        def tally() -> tuple[bytes, bytes] | None:
            store = open_store(home / "store.db", readonly=True)
            try:
                return store.tally(cid_from_str(task))
            finally:
                store.close()

        c.wait(lambda: tally() is not None, 60, "the tally after the reveal")
        found = tally()
        assert found is not None
        scored = decode_tally(found[1])
        scores = {g.account: (g.correct, g.total) for g in scored.gold}
        assert scores == {HONEST.public_key: (2, 2), SLOPPY.public_key: (0, 2)}
        paid = {e.account for e in scored.entries if e.amount}
        assert HONEST.public_key in paid and SLOPPY.public_key not in paid
