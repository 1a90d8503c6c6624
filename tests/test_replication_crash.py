"""Crash safety (SPEC §5): kill -9 of the engine at any point, then restart.

A child Python process runs the lab (both arrays, as the console's engine would),
fills a primary volume with random data and synchronizes; the test kills it with
SIGKILL at several points of the initial or an interval synchronization, opens the
same lab in this process and checks: the secondary holds the previous or the new
recovery point byte-for-byte (never a mix), the sync that follows sends only what
was not committed yet (no full sync), and verify() agrees afterwards.
"""
from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import inspect
import queue
import textwrap
import threading
import time
from pathlib import Path

import pytest

from core.lab import init_lab
from test_replication_support import RS, committed, open_engine, read_file, wait_for

pytestmark = pytest.mark.slow

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import random, sys, time
    sys.path.insert(0, {root!r})
    from core.runtime import BlockingEngine

    home, size_mib, phase = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    RS = 65536

    def say(*words):
        print(*words, flush=True)

    def watch_until_committed(c, count):
        while len([s for s in c.sync_history("G") if s.outcome == "committed"]) < count:
            p = c.group("G").progress
            say("P", p.bytes_done if p else 0, p.bytes_total if p else 0)
            time.sleep(0.002)

    with BlockingEngine(home, purpose="crash-child") as c:
        c.create_volume("SiteA/v", f"{{size_mib}}MiB")
        c.create_volume("SiteB/v", f"{{size_mib}}MiB")
        rng = random.Random(1)
        for i in range(size_mib):
            c.host_write("SiteA/v", i << 20, rng.randbytes(1 << 20))
        c.create_group("G", "SiteA", "SiteB", sync_mode="manual")
        c.add_pair("G", "SiteA/v", "SiteB/v", reserved_percent=50)
        say("SYNC initial")
        watch_until_committed(c, 1)
        say("COMMITTED 1")
        if phase != "initial":
            for r, data in changes(2, size_mib):
                c.host_write("SiteA/v", r * RS, data)
            c.sync_now("G")
            say("SYNC interval")
            watch_until_committed(c, 2)
            say("COMMITTED 2")
            for r, data in changes(3, size_mib):
                c.host_write("SiteA/v", r * RS, data)
            c.host_flush("SiteA/v")
            say("WROTE 3")
        while True:
            time.sleep(1)
""")

def changes(seed: int, size_mib: int) -> list[tuple[int, bytes]]:
    """The regions a phase rewrites: one in eight, random data (the child runs this same code)."""
    rng = random.Random(seed)
    regions = sorted(rng.sample(range(size_mib * 16), size_mib * 16 // 8))
    return [(r, rng.randbytes(65536)) for r in regions]


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def initial_image(size_mib: int) -> bytes:
    rng = random.Random(1)
    return b"".join(rng.randbytes(MiB) for _ in range(size_mib))


def images(size_mib: int) -> tuple[bytes, bytes, bytes]:
    """The primary's image at recovery points 1 and 2, and after the later changes."""
    img = bytearray(initial_image(size_mib))
    out = [bytes(img)]
    for seed in (2, 3):
        for r, data in changes(seed, size_mib):
            img[r * RS:(r + 1) * RS] = data
        out.append(bytes(img))
    return out[0], out[1], out[2]


def run_child_and_kill(tmp_path: Path, home: Path, size_mib: int, phase: str, when) -> list[str]:
    """Run the child until ``when(line)`` says so (``line`` None when it is quiet), then SIGKILL it."""
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)).replace("with BlockingEngine",
                                                             inspect.getsource(changes) + "\n\nwith BlockingEngine"))
    proc = subprocess.Popen([sys.executable, str(script), str(home), str(size_mib), phase],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x.strip()) for x in proc.stdout] + [lines.put(EOF)],
                              daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                line = lines.get(timeout=0.005)
            except queue.Empty:
                line = None
            if line is EOF:
                raise AssertionError(f"child ended early: {seen}")
            if line is not None and not line.startswith("P"):
                seen.append(line)
            if when(line):
                break
            assert time.monotonic() < deadline, f"child did not reach the kill point: {seen}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join(5)
        proc.stdout.close()
    return seen


EOF = object()


def kill_when(sync_marker: str, seconds: float = 0.0, fraction: float | None = None, marker: str | None = None):
    """A kill point: ``marker`` seen, or ``seconds``/``fraction`` into the sync named ``sync_marker``."""
    state = {"in": False}

    def when(line):
        if marker is not None:
            return line == marker
        if line == sync_marker:
            state["in"] = True
            state["t0"] = time.monotonic()
        if not state["in"]:
            return False
        if fraction is not None:
            if line is not None and line.startswith("P"):
                _, done, total = line.split()
                return int(total) > 0 and int(done) >= fraction * int(total)
            return line is not None and line.startswith("COMMITTED")  # finished before we saw the fraction: kill now
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


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_during_sync_then_restart(tmp_path, point):
    size_mib = 64
    phase, when = KILL_POINTS[point]
    home = tmp_path / "lab"
    init_lab(home)
    run_child_and_kill(tmp_path, home, size_mib, phase, when)
    rp1, rp2, later = images(size_mib)
    n_changed = len(changes(2, size_mib))
    c = open_engine(home)
    try:
        done = committed(c)
        secondary = read_file(c.volume("SiteB/v").path)
        primary = read_file(c.volume("SiteA/v").path)
        if phase == "initial":
            assert primary == rp1
            if done:
                assert _digest(secondary) == _digest(rp1)
            stats = wait_for(lambda: committed(c), 60, "the initial sync to finish after the restart")[-1]
            assert stats.bytes_payload <= size_mib * MiB
            assert _digest(read_file(c.volume("SiteB/v").path)) == _digest(rp1)
        else:
            assert len(done) >= 1
            # never a mix: the previous or the new recovery point, byte for byte
            assert _digest(secondary) in (_digest(rp1), _digest(rp2)), f"secondary holds a mix after {point}"
            # (the primary may hold part of the later changes: the child may die while writing them)
            wait_for(lambda: c.group("G").status == "optimal", 10, "the group to be idle")
            stats = c.sync_now("G", wait=True)
            assert stats.outcome == "committed"
            if len(done) >= 2:  # recovery point 2 was committed: only the later changes are sent
                expected = len(changes(3, size_mib)) * RS if primary != rp2 else 0
                assert stats.bytes_payload <= expected
            else:  # only what changed since recovery point 1, never a full copy
                assert stats.bytes_payload <= n_changed * RS
            assert _digest(read_file(c.volume("SiteB/v").path)) == _digest(primary)
        assert c.verify("G")["identical"]
        assert c.group("G").status == "optimal"
    finally:
        c.close()


def test_initial_sync_resumes_after_kill_9(tmp_path):
    size_mib = 160  # more than DIRECT_FLUSH_BYTES (64 MiB) is durable on the secondary before the kill
    home = tmp_path / "lab"
    init_lab(home)
    run_child_and_kill(tmp_path, home, size_mib, "initial", kill_when("SYNC initial", fraction=0.75))
    c = open_engine(home)
    try:
        stats = wait_for(lambda: committed(c), 60, "the initial sync to finish after the restart")[-1]
        assert _digest(read_file(c.volume("SiteB/v").path)) == _digest(initial_image(size_mib))
        assert stats.bytes_payload <= (size_mib - 64) * MiB
    finally:
        c.close()
