"""Crash safety (SPEC §5): kill -9 of the array daemons at any point of a sync, then start them again.

The lab runs as a user runs it (``mirrorctl lab up``: a ``mirrorctl array serve``
process per array and the link relay), one lab for the module. Each scenario mirrors
a fresh volume of its own: a host fills it with random data over NBD, the pair
synchronizes, and at a point of the initial or an interval synchronization both
arrays' daemons are killed with SIGKILL and brought up again (``lab up``). Then it
checks what the daemons report and the bytes on disk: the secondary holds the
previous or the new recovery point byte-for-byte (never a mix), the sync that follows
sends only what was not committed yet (no full sync), and verify agrees afterwards.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.cli.common import lab_fleet_factory
from core.errors import MirrorError
from core.lab.processes import process_alive
from core.runtime import BlockingEngine
from test_replication_support import RS, committed, read_file, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from adversary.lab import Lab, NbdHost  # noqa: E402

pytestmark = pytest.mark.slow

MiB = 1 << 20
ARRAYS = ["SiteA", "SiteB"]


def changes(seed: int, size_mib: int) -> list[tuple[int, bytes]]:
    """The regions a phase rewrites: one in eight, random data."""
    rng = random.Random(seed)
    regions = sorted(rng.sample(range(size_mib * 16), size_mib * 16 // 8))
    return [(r, rng.randbytes(RS)) for r in regions]


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@functools.cache
def initial_image(size_mib: int) -> bytes:
    rng = random.Random(1)
    return b"".join(rng.randbytes(MiB) for _ in range(size_mib))


@functools.cache
def images(size_mib: int) -> tuple[bytes, bytes, bytes]:
    """The primary's image at recovery points 1 and 2, and after the later changes."""
    img = bytearray(initial_image(size_mib))
    out = [bytes(img)]
    for seed in (2, 3):
        for r, data in changes(seed, size_mib):
            img[r * RS:(r + 1) * RS] = data
        out.append(bytes(img))
    return out[0], out[1], out[2]


class CrashLab(Lab):
    """The adversary's lab (``lab up``, REST clients, kill -9), remembering every process it started."""

    def __init__(self, home: Path):
        super().__init__(home, log=lambda *a: None)
        self.pids: set[int] = set()
        self.serial = itertools.count(1)

    def up(self) -> dict:
        status = super().up()
        self.pids |= {a["pid"] for a in status["arrays"] if a.get("pid")}
        self.pids |= {status["link"].get("relayPid")} - {None}
        return status

    def fleet(self) -> BlockingEngine:
        """The daemons' REST APIs as one service API (what mirrorctl uses), not started: ``with lab.fleet() as c``."""
        arrays = self.ctl_json("lab", "status")["arrays"]
        return BlockingEngine(self.home, purpose="pytest crash", engine_factory=lab_fleet_factory(arrays))


@pytest.fixture(scope="module")
def crash_lab(tmp_path_factory, lab_template):
    """One lab of daemon processes for the module; always brought down (every process it started gone)."""
    home = tmp_path_factory.mktemp("crash") / "lab"
    subprocess.run(["cp", "-a", "--sparse=always", str(lab_template), str(home)], check=True)
    lab = CrashLab(home)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()
        left = [pid for pid in lab.pids if process_alive(pid)]
        assert not left, f"lab down left processes running: {left}"


@dataclass(frozen=True)
class Mirror:
    """One scenario's pair: ``SiteA/<volume>`` -> ``SiteB/<volume>`` in ``group``, on a running lab."""

    lab: CrashLab
    volume: str
    group: str

    def committed(self, c) -> list:
        return committed(c, self.group)


@pytest.fixture
def mirror(crash_lab):
    """Names no earlier scenario used, the lab up (whatever an earlier one left); removed afterwards."""
    crash_lab.up()
    n = next(crash_lab.serial)
    m = Mirror(crash_lab, f"crash{n}", f"C{n}")
    yield m
    crash_lab.up()
    with crash_lab.fleet() as c:  # keep the lab small for the next scenario's restart
        for remove in (lambda: c.remove_pair(f"SiteA/{m.volume}"), lambda: c.delete_group(m.group)):
            with contextlib.suppress(MirrorError):
                remove()
        for ref in (f"SiteA/{m.volume}", f"SiteB/{m.volume}"):
            with contextlib.suppress(MirrorError):
                c.delete_volume(ref)


def kill_when(sync_marker: str, seconds: float = 0.0, fraction: float | None = None, marker: str | None = None):
    """A kill point: ``marker`` reached, or ``seconds``/``fraction`` into the sync named ``sync_marker``.

    ``when(step, client, group)`` is asked at each step of the run and, during a sync, again and
    again (``step`` None) with the sync's progress as the primary reports it.
    """
    state = {"in": False}

    def when(step, c, group):
        if marker is not None:
            return step == marker
        if step == sync_marker:
            state["in"], state["t0"] = True, time.monotonic()
        if not state["in"]:
            return False
        if fraction is not None:
            if step is not None:
                return step.startswith("COMMITTED")  # finished before the fraction was seen: kill now
            p = c.group(group).progress
            return p is not None and p.bytes_total > 0 and p.bytes_done >= fraction * p.bytes_total
        return time.monotonic() - state["t0"] >= seconds

    return when


KILL_POINTS = {
    "initial+0.05s": ("initial", kill_when("SYNC initial", 0.05)),
    "initial+half": ("initial", kill_when("SYNC initial", fraction=0.5)),
    "interval+0.05s": ("interval", kill_when("SYNC interval", 0.05)),
    "interval+half": ("interval", kill_when("SYNC interval", fraction=0.5)),
    "interval+0.2s": ("interval", kill_when("SYNC interval", 0.2)),
    "interval+0.5s": ("interval", kill_when("SYNC interval", 0.5)),
    "after-commit": ("interval", kill_when("", marker="WROTE 3")),
}


class Killed(Exception):
    """The kill point was reached and both daemons are gone."""


def fill(m: Mirror, size_mib: int) -> None:
    """A host writes the initial image to the primary volume over NBD, 1 MiB at a time."""
    host = NbdHost(m.lab.daemon("SiteA")["nbdAddress"], m.volume)
    try:
        rng = random.Random(1)
        for i in range(size_mib):
            host.write(i << 20, rng.randbytes(MiB))
    finally:
        host.close()


def rewrite(m: Mirror, seed: int, size_mib: int) -> None:
    """A host rewrites the regions of ``changes(seed)`` over NBD."""
    host = NbdHost(m.lab.daemon("SiteA")["nbdAddress"], m.volume)
    try:
        for r, data in changes(seed, size_mib):
            host.write(r * RS, data)
    finally:
        host.close()


def run_and_kill(m: Mirror, size_mib: int, phase: str, when) -> list[str]:
    """Create, fill and mirror the volume, sync (``phase``), and SIGKILL both daemons when ``when`` says so."""
    seen: list[str] = []
    c = m.lab.fleet().start()

    def step(name: str | None) -> None:
        if name is not None:
            seen.append(name)
        if when(name, c, m.group):
            m.lab.kill9_together(ARRAYS)
            raise Killed

    def watch_until_committed(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(m.committed(c)) < count:
            step(None)
            assert time.monotonic() < deadline, f"sync {count} did not commit: {seen}"
            time.sleep(0.002)

    try:
        c.create_volume(f"SiteA/{m.volume}", f"{size_mib}MiB")
        c.create_volume(f"SiteB/{m.volume}", f"{size_mib}MiB")
        fill(m, size_mib)
        c.create_group(m.group, "SiteA", "SiteB", sync_mode="manual")
        c.add_pair(m.group, f"SiteA/{m.volume}", f"SiteB/{m.volume}", reserved_percent=50)
        step("SYNC initial")
        watch_until_committed(1)
        step("COMMITTED 1")
        if phase != "initial":
            rewrite(m, 2, size_mib)
            c.sync_now(m.group)
            step("SYNC interval")
            watch_until_committed(2)
            step("COMMITTED 2")
            rewrite(m, 3, size_mib)
            c.host_flush(f"SiteA/{m.volume}")
            step("WROTE 3")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the arrays idle on until the kill point (a time into the sync)
            step(None)
            time.sleep(0.005)
        raise AssertionError(f"the run did not reach the kill point: {seen}")
    except Killed:
        return seen
    finally:
        c.close()


def restarted(m: Mirror) -> BlockingEngine:
    """``lab up`` again (the killed daemons start, the relay still runs); the fleet over them."""
    m.lab.up()
    return m.lab.fleet().start()


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_during_sync_then_restart(mirror, point):
    size_mib = 64
    phase, when = KILL_POINTS[point]
    run_and_kill(mirror, size_mib, phase, when)
    rp1, rp2, later = images(size_mib)
    n_changed = len(changes(2, size_mib))
    g, primary_ref, secondary_ref = mirror.group, f"SiteA/{mirror.volume}", f"SiteB/{mirror.volume}"
    c = restarted(mirror)
    try:
        done = mirror.committed(c)
        secondary = read_file(c.volume(secondary_ref).path)
        primary = read_file(c.volume(primary_ref).path)
        if phase == "initial":
            assert primary == rp1
            if done:
                assert _digest(secondary) == _digest(rp1)
            stats = wait_for(lambda: mirror.committed(c), 60, "the initial sync to finish after the restart")[-1]
            assert stats.bytes_payload <= size_mib * MiB
            assert _digest(read_file(c.volume(secondary_ref).path)) == _digest(rp1)
        else:
            assert len(done) >= 1
            # never a mix: the previous or the new recovery point, byte for byte
            assert _digest(secondary) in (_digest(rp1), _digest(rp2)), f"secondary holds a mix after {point}"
            # (the primary may hold part of the later changes: the daemon may die while taking them)
            wait_for(lambda: c.group(g).status == "optimal", 10, "the group to be idle")
            stats = c.sync_now(g, wait=True)
            assert stats.outcome == "committed"
            if len(done) >= 2:  # recovery point 2 was committed: only the later changes are sent
                expected = len(changes(3, size_mib)) * RS if primary != rp2 else 0
                assert stats.bytes_payload <= expected
            else:  # only what changed since recovery point 1, never a full copy
                assert stats.bytes_payload <= n_changed * RS
            assert _digest(read_file(c.volume(secondary_ref).path)) == _digest(primary)
        assert c.verify(g)["identical"]
        assert c.group(g).status == "optimal"
    finally:
        c.close()


def test_initial_sync_resumes_after_kill_9(mirror):
    size_mib = 160  # more than DIRECT_FLUSH_BYTES (64 MiB) is durable on the secondary before the kill
    run_and_kill(mirror, size_mib, "initial", kill_when("SYNC initial", fraction=0.75))
    c = restarted(mirror)
    try:
        stats = wait_for(lambda: mirror.committed(c), 60, "the initial sync to finish after the restart")[-1]
        assert _digest(read_file(c.volume(f"SiteB/{mirror.volume}").path)) == _digest(initial_image(size_mib))
        assert stats.bytes_payload <= (size_mib - 64) * MiB
    finally:
        c.close()
