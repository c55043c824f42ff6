"""A private network lab for multi-node tests: namespaces, bridges, cuts, bad links.

Topology (every name is private to the test; nothing touches the host's network)::

    node ns <prefix>-n0   eth0 ──veth── v0 ┐
    node ns <prefix>-n1   eth0 ──veth── v1 ├─ brA ── xa ══ xb ── brB   (switch ns <prefix>-sw)
    ...                                    ┘                    └ ports of side B

Each node has one veth pair into the switch namespace. A node's switch port
sits on bridge ``brA`` or ``brB``; the two bridges are joined by the trunk
``xa``/``xb``. ``split(side_b)`` moves ports and takes the trunk down, which
cuts every link between the sides and nothing else (TCP connections stay open
and carry nothing, like a real cut); ``heal()`` puts every port back on
``brA`` and the trunk up.

``impair(Impairment(...))`` makes every node's link bad in both directions
(the egress of ``eth0`` and of its switch port). With the kernel's ``netem``
qdisc it is delay with jitter, loss and reordering. Kernels built without
netem (``sch_netem``) get an emulation from what they usually do have (htb,
pfifo, a classic-BPF classifier reading a random number): a random share of
packets is dropped, another is sent through a slow, rate-limited class, so
those packets are delayed behind their neighbours (queueing delay) and
arrive out of order. ``netem_available()`` says which one a test gets.

Names start with ``annotnet-<pid>-``: ``clean_stale()`` removes what a crashed
earlier run left behind (its node processes by pid, then its namespaces).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

PREFIX = "annotnet-"
SUBNET = "192.168.213"
TIMEOUT = 10


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True,
                          timeout=TIMEOUT)


def namespaces() -> list[str]:
    out = run("ip", "netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale() -> list[str]:
    """Delete namespaces of earlier runs whose test process is gone (killing the
    processes still running inside them first); return their names."""
    removed = []
    for ns in namespaces():
        if not ns.startswith(PREFIX):
            continue
        try:
            owner = int(ns[len(PREFIX):].split("-")[0])
        except ValueError:
            continue
        if owner == os.getpid() or _alive(owner):
            continue
        pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run("ip", "netns", "del", ns, check=False)
        removed.append(ns)
    return removed


def probe() -> str | None:
    """Why this machine cannot run the lab (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"{PREFIX}{os.getpid()}-probe"
    try:
        run("ip", "netns", "add", name)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot create a network namespace here: {_why(exc)}"
    try:
        run("ip", "-n", name, "link", "add", "pa", "type", "veth", "peer", "name", "pb")
        run("ip", "-n", name, "link", "set", "pa", "up")
        run("tc", "-n", name, "qdisc", "add", "dev", "pa", "root", "handle", "1:", "htb")
    except FileNotFoundError as exc:
        return f"{exc.filename} is missing (package iproute2)"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot make veth links or tc qdiscs in a namespace: {_why(exc)}"
    finally:
        run("ip", "netns", "del", name, check=False)
    return None


_NETEM: bool | None = None


def netem_available() -> bool:
    """Whether the kernel has the netem qdisc (probed once, in a scratch namespace)."""
    global _NETEM
    if _NETEM is None:
        name = f"{PREFIX}{os.getpid()}-netem"
        try:
            run("ip", "netns", "add", name)
            run("ip", "-n", name, "link", "add", "pa", "type", "veth", "peer", "name", "pb")
            _NETEM = run("tc", "-n", name, "qdisc", "add", "dev", "pa", "root", "netem",
                         "delay", "1ms", check=False).returncode == 0
        except (OSError, subprocess.SubprocessError):
            _NETEM = False
        finally:
            run("ip", "netns", "del", name, check=False)
    return _NETEM


def _why(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return (exc.stderr or "").strip() or str(exc)
    return str(exc)


@dataclass(frozen=True, slots=True)
class Impairment:
    """A bad path, per direction: mean delay, jitter, loss and reordering."""

    delay_ms: int = 0
    jitter_ms: int = 0
    loss_pct: float = 0.0
    reorder_pct: float = 0.0

    def per_hop(self) -> Impairment:
        """Half of this path over each of two hops (loss and reordering compound)."""
        def share(pct: float) -> float:
            return round(100 * (1 - (1 - pct / 100) ** 0.5), 2)

        return Impairment(self.delay_ms // 2, self.jitter_ms // 2, share(self.loss_pct),
                          share(self.reorder_pct))

    def describe(self) -> str:
        return (f"delay {self.delay_ms}±{self.jitter_ms} ms, loss {self.loss_pct:g}%, "
                f"reorder {self.reorder_pct:g}%")


U32 = 2**32
SKF_AD_RANDOM = 0xFFFFF000 + 56  # classic BPF ancillary load: a random u32


def _random_classifier(drop_pct: float, slow_pct: float, drop: int, slow: int) -> str:
    """Classic BPF for cls_bpf: a random u32 picks class ``drop`` with probability
    ``drop_pct``, ``slow`` with ``slow_pct``, else no match (htb's default class)."""
    t1 = min(U32 - 1, int(U32 * drop_pct / 100))
    t2 = min(U32 - 1, int(U32 * (drop_pct + slow_pct) / 100))
    prog = [(0x20, 0, 0, SKF_AD_RANDOM),  # A = random
            (0x35, 1, 0, t1), (0x06, 0, 0, drop),  # A < t1: drop class
            (0x35, 1, 0, t2), (0x06, 0, 0, slow),  # A < t2: slow class
            (0x06, 0, 0, 0)]  # no match
    return ",".join([str(len(prog)), *(f"{c} {jt} {jf} {k}" for c, jt, jf, k in prog)])


def tc_impair(ns: str, dev: str, imp: Impairment, netem: bool) -> None:
    """Make the egress of ``dev`` in ``ns`` a bad link (replacing any earlier setting)."""
    tc_clear(ns, dev)
    tc = ["tc", "-n", ns, "qdisc", "add", "dev", dev, "root"]
    if netem:
        args = [*tc, "netem", "limit", "10000"]
        if imp.delay_ms:
            args += ["delay", f"{imp.delay_ms}ms", f"{imp.jitter_ms}ms"]
        if imp.loss_pct:
            args += ["loss", f"{imp.loss_pct:g}%"]
        if imp.reorder_pct and imp.delay_ms:
            args += ["reorder", f"{imp.reorder_pct:g}%", "50%"]
        run(*args)
        return
    # emulation: default class 1:10 passes, 1:20 is slow (delay, reordering), 1:30 drops
    slow_bit = max(8_000, 1500 * 8 * 1000 // max(1, imp.delay_ms + imp.jitter_ms))
    slow_pct = max(imp.reorder_pct, 25.0 if imp.delay_ms else 0.0)
    cls = ["tc", "-n", ns, "class", "add", "dev", dev, "parent", "1:"]
    run(*tc, "handle", "1:", "htb", "default", "10")
    run(*cls, "classid", "1:10", "htb", "rate", "1gbit", "quantum", "1514")
    run(*cls, "classid", "1:20", "htb", "rate", f"{slow_bit}bit", "burst", "1600",
        "quantum", "1514")
    run(*cls, "classid", "1:30", "htb", "rate", "1gbit", "quantum", "1514")
    run("tc", "-n", ns, "qdisc", "add", "dev", dev, "parent", "1:20", "pfifo", "limit", "1000")
    run("tc", "-n", ns, "qdisc", "add", "dev", dev, "parent", "1:30", "pfifo", "limit", "0")
    run("tc", "-n", ns, "filter", "add", "dev", dev, "parent", "1:", "prio", "1", "bpf",
        "bytecode", _random_classifier(imp.loss_pct, slow_pct, 0x10030, 0x10020))


def tc_clear(ns: str, dev: str) -> None:
    run("tc", "-n", ns, "qdisc", "del", "dev", dev, "root", check=False)


def tc_stats(ns: str, dev: str) -> str:
    return run("tc", "-n", ns, "-s", "qdisc", "show", "dev", dev, check=False).stdout


class NetLab:
    """The namespaces a test owns (see the module docstring). ``with NetLab(4) as lab``
    builds it and always removes it; nodes listen on ``lab.hosts[i]`` in ``lab.nodes[i]``."""

    SUBNET = SUBNET

    def __init__(self, n: int, side_b: Iterable[int] = ()) -> None:
        tag = f"{PREFIX}{os.getpid()}"
        self.switch = f"{tag}-sw"
        self.nodes = [f"{tag}-n{i}" for i in range(n)]
        self.hosts = [f"{SUBNET}.{i + 1}" for i in range(n)]
        self.side_b = sorted(set(side_b))
        self.made: list[str] = []
        self.impairment: Impairment | None = None

    def ip(self, *args: str) -> None:
        run("ip", *args)

    def up(self) -> NetLab:
        clean_stale()
        for ns in [self.switch, *self.nodes]:
            run("ip", "netns", "del", ns, check=False)  # a leftover of this very pid
            self.ip("netns", "add", ns)
            self.made.append(ns)
        sw = ["-n", self.switch]
        for br in ("brA", "brB"):
            self.ip(*sw, "link", "add", br, "type", "bridge")
        self.ip(*sw, "link", "add", "xa", "type", "veth", "peer", "name", "xb")
        self.ip(*sw, "link", "set", "xa", "master", "brA")
        self.ip(*sw, "link", "set", "xb", "master", "brB")
        for link in ("brA", "brB", "xa", "xb"):
            self.ip(*sw, "link", "set", link, "up")
        for i, ns in enumerate(self.nodes):
            self.ip("link", "add", f"v{i}", "netns", self.switch, "type", "veth",
                    "peer", "name", "eth0", "netns", ns)
            self.ip("-n", ns, "addr", "add", f"{self.hosts[i]}/24", "dev", "eth0")
            self.ip("-n", ns, "link", "set", "eth0", "up")
            self.ip("-n", ns, "link", "set", "lo", "up")
            self.ip(*sw, "link", "set", f"v{i}", "master", self._bridge(i), "up")
        return self

    def _bridge(self, i: int) -> str:
        return "brB" if i in self.side_b else "brA"

    # ------------------------------------------------------------ cuts
    def cut(self) -> None:
        """Cut every link between side A and side B (the trunk goes down)."""
        self.ip("-n", self.switch, "link", "set", "xa", "down")

    def heal(self) -> None:
        """Every port back on one network: side B's ports join brA, the trunk comes up."""
        self.assign(())
        self.ip("-n", self.switch, "link", "set", "xa", "up")

    def assign(self, side_b: Iterable[int]) -> None:
        """Put the ports of ``side_b`` on brB, every other port on brA."""
        self.side_b = sorted(set(side_b))
        for i in range(len(self.nodes)):
            self.ip("-n", self.switch, "link", "set", f"v{i}", "master", self._bridge(i))

    def split(self, side_b: Iterable[int]) -> None:
        """Partition: ``side_b`` on one side, every other node on the other."""
        self.cut()
        self.assign(side_b)

    # ------------------------------------------------------------ bad links
    def impair(self, imp: Impairment) -> None:
        """Every path between two nodes becomes ``imp`` (netem, or its emulation): a
        packet crosses two shaped hops, the sender's ``eth0`` and the receiver's switch
        port, so each hop gets half the delay and the per-hop share of loss/reordering."""
        netem = netem_available()
        hop = imp.per_hop()
        for i, ns in enumerate(self.nodes):
            tc_impair(ns, "eth0", hop, netem)
            tc_impair(self.switch, f"v{i}", hop, netem)
        self.impairment = imp

    def clear(self) -> None:
        for i, ns in enumerate(self.nodes):
            tc_clear(ns, "eth0")
            tc_clear(self.switch, f"v{i}")
        self.impairment = None

    def drops(self) -> int:
        """Packets the impairments dropped so far, over every link and direction."""
        total = 0
        for i, ns in enumerate(self.nodes):
            for where, dev in ((ns, "eth0"), (self.switch, f"v{i}")):
                m = re.search(r"dropped (\d+)", tc_stats(where, dev))  # the root qdisc's
                total += int(m[1]) if m else 0
        return total

    # ------------------------------------------------------------ teardown
    def down(self) -> None:
        for ns in reversed(self.made):
            pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:  # processes this test started in the namespace
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "del", ns, check=False)
        self.made.clear()

    def __enter__(self) -> NetLab:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc: object) -> None:
        self.down()
