"""``annot backup`` of a running node while records are written, and ``annot restore``.

A writer submits annotations (one record per RPC call, so one transaction each)
while ``annot backup`` runs as its own process. The backup holds a consistent
cut: the writer's records are exactly seqs 1..k, its vector clock says k, and the
derived annotations table has the same k rows (never half a transaction). The
restore refuses a running home, then a restored node starts and serves those k
records.
"""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import tarfile
import threading
from pathlib import Path

from harness import ANNOT, ROOT, Cluster

from node.rpc.client import SyncRPCClient
from protocol.cid import cid_bytes, cid_from_str
from protocol.keys import SigningKey
from protocol.records import Annotation, Task, sign_record

WRITER = SigningKey(b"\x51" * 32)
N_ITEMS = 600


def annot(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANNOT_HOME", "ANNOT_DEBUG")}
    out = subprocess.run([*ANNOT, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=env)
    if ok:
        assert out.returncode == 0, out.stderr
    return out


def test_backup_while_writing_and_restore(tmp_path: Path) -> None:
    c = Cluster(tmp_path / "c", n=1)
    restored: subprocess.Popen[bytes] | None = None
    try:
        c.start()
        nid = bytes.fromhex(c.status(0)["network_id"])
        items = tuple(cid_bytes(f"backup item {k}".encode()) for k in range(N_ITEMS))
        task = c.submit(0, sign_record(nid, SigningKey(b"\x50" * 32), 1, Task(
            title="backup", labels=("a", "b"), items=items, redundancy=3,
            reward_per_item=0, validator_share_bps=0)).data)["cid"]
        stop = threading.Event()
        written: list[int] = []

        def write() -> None:
            client = SyncRPCClient.from_home(c.home(0))
            for k in range(N_ITEMS):  # bounded: at most one record per item
                if stop.is_set():
                    return
                rec = sign_record(nid, WRITER, k + 1,
                                  Annotation(cid_from_str(task), items[k], "a"))
                client.call("record.submit", record=base64.b64encode(rec.data).decode())
                written.append(k + 1)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            c.wait(lambda: len(written) >= 20, 30, "the writer under way")
            out = annot("backup", "--home", c.home(0), "-o", tmp_path / "b.tar")
            during = len(written)
        finally:
            stop.set()
            writer.join(60)
        assert "backed up" in out.stdout
        assert (tmp_path / "b.tar").stat().st_mode & 0o777 == 0o600
        with tarfile.open(tmp_path / "b.tar") as tar:
            tar.extract("store.db", tmp_path / "x", filter="data")
        db = sqlite3.connect(tmp_path / "x" / "store.db")
        seqs = [s for (s,) in db.execute(
            "SELECT seq FROM records WHERE author=? ORDER BY seq", (WRITER.public_key,))]
        k = len(seqs)
        assert 20 <= k and seqs == list(range(1, k + 1)), "a gap: not one consistent cut"
        (clock,) = db.execute("SELECT seq FROM clock WHERE author=?",
                              (WRITER.public_key,)).fetchone()
        (anns,) = db.execute("SELECT count(*) FROM annotations WHERE author=?",
                             (WRITER.public_key,)).fetchone()
        assert clock == anns == k
        assert k <= during + 1  # nothing from after the backup finished (one in flight)
        db.close()

        # restoring over the running home is refused; into a new one it works
        busy = annot("restore", "--home", c.home(0), "--force", tmp_path / "b.tar", ok=False)
        assert busy.returncode != 0 and "Traceback" not in busy.stderr
        assert busy.stderr.strip().splitlines() == [
            f"Error: another annot daemon is already running on {c.home(0)} (lock held)"]
        home2 = tmp_path / "restored"
        annot("restore", "--home", home2, tmp_path / "b.tar")
        assert (home2 / "node.key").stat().st_mode & 0o777 == 0o600
        c.stop(0)  # the restored node has the same key and ports
        log = open(tmp_path / "restored.log", "wb")
        restored = subprocess.Popen([*ANNOT, "run", "--home", str(home2)], cwd=ROOT,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        c.wait(lambda: (home2 / "rpc.url").exists(), 60, "the restored node's RPC")
        client = SyncRPCClient.from_home(home2)
        got = client.call("account.get", author=WRITER.peer_id)
        assert got["clock"] == k
        assert client.call("task.get", task=task)["task"] == task
    finally:
        if restored is not None and restored.poll() is None:
            os.killpg(restored.pid, signal.SIGTERM)
            try:
                restored.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(restored.pid, signal.SIGKILL)
                restored.wait()
        c.close()
