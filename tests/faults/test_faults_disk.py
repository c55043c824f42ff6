"""Disk faults: a full disk, a read-only filesystem, a corrupt block, a corrupt page.

The full and read-only disk run a real node whose home is on a small tmpfs
this test mounts (as root) and always unmounts; without root or mount the
test is skipped with the reason. A refused write must be a clear RPC error,
the node must stay up, every acknowledged record must survive, and once
space is back (or the filesystem writable) writes work again and the store
passes ``integrity_check``.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import ANNOT, ROOT, Cluster

from node.content.blockstore import BlockStore, CorruptBlockError
from node.errors import StoreError
from node.rpc.client import RPCClientError
from node.store.db import open_store
from protocol import cid as cidlib

from .common import HTTPRPC, RPCFailure, make_workload
from .summary import add

MOUNT_SIZE = "6m"


@contextlib.contextmanager
def small_tmpfs(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={MOUNT_SIZE}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], capture_output=True)
        for _ in range(20):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            subprocess.run(["sleep", "0.5"])
        else:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the filesystem is full; return bytes written."""
    n = 0
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                n += f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return n


def submit_each(rpc: HTTPRPC, datas: list[bytes]) -> tuple[list[bytes], list[str]]:
    ok, errors = [], []
    for i in range(0, len(datas), 8):
        chunk = datas[i:i + 8]
        for d, res in zip(chunk, rpc.submit_batch(chunk), strict=True):
            if isinstance(res, RPCFailure):
                errors.append(f"{res.code}: {res.message}")
            else:
                ok.append(d)
    return ok, errors


def test_full_and_read_only_disk(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "mnt") as mnt:
        c = Cluster(mnt / "c", n=1)
        log = tmp_path / "node0.log"  # off the small disk, so it survives the fault
        (c.home(0) / "node.log").symlink_to(log)
        try:
            c.start()
            rpc = HTTPRPC.from_home(c.home(0))
            net = c.genesis.network_id
            works = [make_workload(net, s, 40, tag=b"disk") for s in (1, 2, 3, 4)]
            acked, errors = submit_each(rpc, [works[0].task.data]
                                        + [r.data for r in works[0].annotations])
            assert not errors, errors
            # 1. full disk: refuse with a clear error, stay up, never half-write
            filler = mnt / "filler"
            fill(filler)
            todo = [works[1].task.data] + [r.data for r in works[1].annotations]
            # the daemon must keep serving: background writes that hit the full disk
            # are refused and logged, never allowed to stop its nursery
            ok, errors = submit_each(rpc, todo)
            acked += ok
            assert errors, "a full disk refused nothing"
            print(f"disk full: {len(ok)} accepted, {len(errors)} refused, e.g. {errors[0]}")
            assert all("refuses writes" in e or "full" in e for e in errors), errors[:3]
            blob = base64.b64encode(os.urandom(300_000)).decode()
            with pytest.raises(RPCFailure) as full_block:
                rpc.call("block.put", data=blob)
            print(f"disk full, block.put: {full_block.value}")
            assert "cannot store block" in str(full_block.value), full_block.value
            assert rpc.call("node.status")["peer_id"]  # still up
            filler.unlink()
            ok, errors = submit_each(rpc, todo)
            assert not errors, f"after freeing space: {errors[:3]}"
            acked += [d for d in ok if d not in acked]
            assert rpc.call("block.put", data=blob)["size"] == 300_000
            # 2. a read-only store: the node refuses to start, with a clear error
            # (a filesystem cannot be remounted read-only under a process writing to it)
            rpc.close()
            c.stop(0)
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            try:
                r = subprocess.run([*ANNOT, "run", "--home", str(c.home(0))], cwd=ROOT,
                                   capture_output=True, text=True, timeout=60)
            finally:
                subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
            tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
            print(f"read-only store: exit {r.returncode}: {tail}")
            assert r.returncode != 0 and "Traceback" not in r.stderr, tail
            assert any("read-only" in line.lower() or "readonly" in line for line in tail), tail
            c.start(0)
            rpc = HTTPRPC.from_home(c.home(0))
            todo = [works[2].task.data] + [r.data for r in works[2].annotations]
            ok, errors = submit_each(rpc, todo)
            assert not errors, f"after remounting read-write: {errors[:3]}"
            acked += ok
            rpc.close()
            c.stop(0)
            store = open_store(c.home(0) / "store.db", readonly=True)
            try:
                assert store.integrity_check() == []
                lost = [d for d in acked if store.get(cidlib.cid_bytes(d)) is None]
                assert not lost, f"{len(lost)} acknowledged records lost"
            finally:
                store.close()
            add(disk_faults=2, records_checked=len(acked))
        finally:
            c.close()


def test_corrupt_block_is_detected_and_not_served(cluster_factory: Any) -> None:
    c: Cluster = cluster_factory(2)
    c.start()
    c.wait_connected()
    data = os.urandom(4096)
    cid = c.rpc(0, "block.put", data=base64.b64encode(data).decode())["cid"]
    path = next((c.home(0) / "blocks").rglob(f"{cid}.data"))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    for i in (0, 1):  # node 1 asks node 0 over bitswap: it must not get the bad bytes
        with pytest.raises(RPCClientError) as err:
            c.rpc(i, "block.get", cid=cid)
        print(f"node{i} block.get of a corrupt block: {err.value}")
        assert err.value.code != -32603, err.value  # a named error, not an internal one
    assert not path.exists() and list((c.home(0) / "corrupt").iterdir())
    # and the in-process API says exactly what happened
    bs = BlockStore(c.home(0) / "x")
    good = bs.put(data)
    p = next((c.home(0) / "x" / "blocks").rglob("*.data"))
    p.write_bytes(b"evil" + data[4:])
    with pytest.raises(CorruptBlockError):
        bs.get(good)
    assert bs.get(good) is None
    add(disk_faults=1)


def test_corrupt_database_page_is_detected(tmp_path: Path) -> None:
    net = bytes(32)
    path = tmp_path / "store.db"
    store = open_store(path)
    works = [make_workload(net, s, 100) for s in (1, 2, 3)]
    for w in works:
        store.save_records([w.task, *w.annotations])
    assert store.integrity_check() == []
    store.close()
    size = path.stat().st_size
    assert size > 16 * 4096, size
    with open(path, "r+b") as f:  # overwrite pages in the middle with garbage
        f.seek((size // 2) // 4096 * 4096)
        f.write(os.urandom(3 * 4096))
    problems: list[str] = []
    try:
        s = open_store(path, readonly=True)
        try:
            problems = s.integrity_check()
        finally:
            s.close()
    except StoreError as exc:
        problems = [str(exc)]
    print(f"corrupt page detected: {problems[:2]}")
    assert problems, "a store with garbage pages passed integrity_check"
    add(disk_faults=1)
