"""Console responsiveness (SPEC section 5), measured offscreen: ``python bench/gui_responsiveness.py``.

The console manages the lab's array daemons over REST, as ``mirror-console`` does: each
part brings a lab up on a temp home (``mirrorctl lab up``) and builds the console with
``lab_fleet_factory`` (the Fleet); ``lab down`` at the end.
1. Time to first window: a fresh ``python`` process builds the console on the running
   lab and reports when the main window has been shown *and painted*; measured from the
   moment the parent spawned the process and from QApplication creation. ``--rounds``
   runs (default 3), median and range. Target <= 1.5 s.
2. UI stalls while 64 pairs sync under a host workload: 64 volume pairs (64 MiB each)
   in 4 scheduled groups, the daemons' workload on every primary, ``sync_now`` on every
   group each second; a 5 ms QTimer on the GUI thread records the gaps between its ticks
   for ``--seconds``. Worst gap and percentiles. Target worst <= 50 ms.
3. Tree of 1,000 pairs: the tree panel is fed synthetic snapshots of 1,000 pairs (made
   from a real pair read from the daemons); the update call (every pair's status changed)
   is timed over 5 rounds. Target <= 100 ms.
The page cache is not dropped: these are warm starts and GUI-thread figures.

Options: ``--seconds N`` (stall window), ``--profile FILE`` (cProfile of the GUI thread
during the stall window, written to FILE), ``--only first|stalls|tree``, ``--json``.
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.figures import Log, PageCache, finish, machine, spread, target  # noqa: E402
from harness.lab import DaemonLab  # noqa: E402

from core.cli.common import lab_fleet_factory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20

# The child of (1): everything it imports counts, like `mirror-console` started from a shell.
FIRST_WINDOW_CHILD = r"""
import os, sys, time, json
t_start = float(sys.argv[2])
from PySide6.QtCore import QEvent, QObject, QTimer
from gui.app import make_app, build_console
from core.cli.common import lab_fleet_factory
t_import = time.time()
app = make_app()
t_app = time.time()
bridge, window = build_console(sys.argv[1], purpose="bench-first-window",
                               engine_factory=lab_fleet_factory(json.loads(sys.argv[3])))

class Painted(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Paint and "t" not in marks:
            marks["t"] = time.time()
            QTimer.singleShot(0, app.quit)
        return False
marks = {}
watch = Painted()
window.installEventFilter(watch)
window.show()
bridge.start()
app.exec()
painted = marks.get("t", time.time())
bridge.stop()
print(json.dumps({"imports": t_import - t_start, "from_spawn": painted - t_start, "from_qapp": painted - t_app}))
"""


def running_arrays(lab: DaemonLab) -> list[dict]:
    return [a for a in lab.status["arrays"] if a["running"]]


def first_window(runs: int = 3) -> dict:
    with DaemonLab("bench-gui-") as lab:
        home, arrays = lab.home, json.dumps(running_arrays(lab))
        results = []
        for _ in range(runs):
            t0 = time.time()
            out = subprocess.run([sys.executable, "-c", FIRST_WINDOW_CHILD, str(home), repr(t0), arrays], cwd=ROOT,
                                 capture_output=True, text=True, timeout=60,
                                 env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
            if out.returncode != 0:
                raise SystemExit(f"first-window child failed:\n{out.stderr}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(results, key=lambda r: r["from_spawn"])
    return {"runs": results, "best": best, "from_spawn": spread([r["from_spawn"] for r in results]),
            "from_qapp": spread([r["from_qapp"] for r in results]), "imports": spread([r["imports"] for r in results])}


def _prepare_64_pairs(lab: DaemonLab, groups: int = 4, pairs: int = 64, size_mib: int = 64) -> list[str]:
    """64 pairs in ``groups`` scheduled groups, each primary with 4 MiB written, initially synchronized."""
    primaries = []
    with lab.client("bench-setup") as c:
        for gi in range(groups):
            c.create_group(f"bench{gi}", "SiteA", "SiteB", sync_interval_minutes=1)
        for i in range(pairs):
            c.create_volume(f"SiteA/v{i:02d}", f"{size_mib}MiB")
            c.create_volume(f"SiteB/v{i:02d}_dr", f"{size_mib}MiB")
            c.host_write(f"SiteA/v{i:02d}", 0, os.urandom(4 * MIB))
            c.add_pair(f"bench{i % groups}", f"SiteA/v{i:02d}", f"SiteB/v{i:02d}_dr", reserved_percent=20)
            primaries.append(f"SiteA/v{i:02d}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            gs = [g for g in c.groups("SiteA") if g.name.startswith("bench")]
            if all(g.status == "optimal" and all(p.recovery_point_available for p in g.pairs) for g in gs):
                break
            time.sleep(0.2)
    return primaries


def stalls(seconds: float = 10.0, profile: str | None = None, rate_mib: int = 64) -> dict:
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from gui.app import build_console, make_app

    with DaemonLab("bench-gui-") as lab:
        t0 = time.monotonic()
        primaries = _prepare_64_pairs(lab)
        setup = time.monotonic() - t0
        app = make_app()
        bridge, window = build_console(lab.home, purpose="bench-stalls", poll_hz=5, restore_layout=False,
                                       engine_factory=lab_fleet_factory(running_arrays(lab)))
        window.show()
        bridge.start()

        def wait(pred, timeout=60.0):
            end = time.monotonic() + timeout
            while time.monotonic() < end and not pred():
                app.processEvents()
                time.sleep(0.005)
            return pred()

        def call(method, *args, **kwargs):
            done = {}
            bridge.call(method, *args, on_done=lambda r: done.setdefault("ok", r),
                        on_error=lambda e: done.setdefault("err", e), **kwargs)
            wait(lambda: bool(done))
            if "err" in done:
                raise done["err"]
            return done.get("ok")

        try:
            if not wait(lambda: bridge.ready and window.tree.has(("pair", "SiteA", "v63"))):
                raise SystemExit("the console did not show the 64 pairs")
            window.tree.select(("group", "SiteA", "bench0"))
            call("start_workload", primaries, rate_mib)
            gaps: list[float] = []
            clock = QElapsedTimer()
            ticker = QTimer(interval=5)
            last = [0]

            def tick():
                now = clock.nsecsElapsed()
                gaps.append((now - last[0]) / 1e6)
                last[0] = now
            ticker.timeout.connect(tick)
            syncer = QTimer(interval=1000)
            syncs = {"n": 0}

            def sync_all():
                for gi in range(4):
                    bridge.call("sync_now", f"bench{gi}", on_done=lambda _r: syncs.__setitem__("n", syncs["n"] + 1),
                                on_error=lambda _e: None)
            syncer.timeout.connect(sync_all)
            sync_all()
            syncer.start()
            clock.start()
            last[0] = clock.nsecsElapsed()
            ticker.start()
            prof = cProfile.Profile() if profile else None
            if prof:
                prof.enable()
            end = QTimer(singleShot=True, interval=int(seconds * 1000))
            end.timeout.connect(lambda: app.exit(0))  # quit() would close the window: "close during a sync?"
            end.start()
            app.exec()
            if prof:
                prof.disable()
                prof.dump_stats(profile)
                pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
            ticker.stop()
            syncer.stop()
            work = call("workload") or {}
            call("stop_workload")
            syncing = sum(1 for g in window.state.groups for p in g.pairs if p.progress is not None)
        finally:
            bridge.stop()
            window.close()
            for w in QApplication.topLevelWidgets():
                w.close()
            app.processEvents()
    gaps = sorted(gaps[1:])
    p99 = gaps[int(0.99 * (len(gaps) - 1))] if gaps else float("nan")
    written = sum(int(v.get("bytesWritten", 0)) for v in work.values() if isinstance(v, dict))
    return {"setup_s": setup, "ticks": len(gaps), "worst_ms": gaps[-1] if gaps else float("nan"), "p99_ms": p99,
            "median_ms": gaps[len(gaps) // 2] if gaps else float("nan"), "sync_calls_answered": syncs["n"],
            "workload_mib_written": written / MIB, "pairs_syncing_at_end": syncing}


def tree_1000() -> dict:
    from gui.app import make_app
    from gui.bridge import EngineBridge
    from gui.console_state import ConsoleState
    from gui.tree_panel import TreePanel

    app = make_app()
    with DaemonLab("bench-gui-") as lab:
        with lab.client("bench-fabricate") as c:
            arrays, volumes = c.arrays_list(), c.volumes()
            c.create_group("big", "SiteA", "SiteB", sync_mode="manual")
            c.add_pair("big", "SiteA/db", "SiteB/db_dr")
            g = c.group("big", "SiteA")
        p0 = g.pairs[0]
        pairs = tuple(dataclasses.replace(p0, local_volume=f"vol{i:04d}", remote_volume=f"vol{i:04d}_dr")
                      for i in range(1000))
        # Never started: the tree only needs the state.
        bridge = EngineBridge(lab.home, purpose="unused", engine_factory=lab_fleet_factory(running_arrays(lab)))
        state = ConsoleState(bridge)
        tree = TreePanel(state)
        tree.resize(420, 800)
        tree.show()
        app.processEvents()
        t0 = time.perf_counter()
        state.apply(arrays=arrays, volumes=volumes, groups=(dataclasses.replace(g, pairs=pairs),))
        build = time.perf_counter() - t0
        app.processEvents()
        times = []
        for round_ in range(5):
            changed = tuple(dataclasses.replace(p, status=("failed" if (i + round_) % 2 else "optimal"),
                                                unsynchronized_bytes=i * 4096 + round_) for i, p in enumerate(pairs))
            t0 = time.perf_counter()
            state.apply(groups=(dataclasses.replace(g, pairs=changed, status="system_suspended"),))
            times.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            app.processEvents()  # the repaint that follows, reported apart
            times[-1] = (times[-1], time.perf_counter() - t1)
        tree.close()
        bridge.stop()
    updates = [t for t, _ in times]
    return {"build_ms": build * 1000, "update_ms_best": min(updates) * 1000, "update_ms_worst": max(updates) * 1000,
            "repaint_ms_worst": max(r for _, r in times) * 1000}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="stall window (default 10)")
    ap.add_argument("--rounds", type=int, default=3, help="first-window runs (default 3)")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--only", choices=("first", "stalls", "tree"), default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object with every figure")
    args = ap.parse_args(argv)
    started, meta = time.monotonic(), machine()
    log = Log(args.json)
    cache = PageCache(False, "not dropped: warm starts and GUI-thread figures")
    report: dict = {"bench": "gui_responsiveness", "machine": meta, "figures": {}, "targets": {},
                    "config": {"seconds": args.seconds, "rounds": args.rounds,
                               "shape": "console on the lab's array daemons (lab_fleet_factory), offscreen"}}
    if args.only in (None, "first"):
        r = first_window(args.rounds)
        report["figures"]["first_window_s"] = r
        report["targets"]["first_window_painted_s"] = target(r["from_spawn"]["median"], 1.5, at_least=False)
        s = r["from_spawn"]
        log(f"first window shown+painted: median {s['median']:.2f} s from process spawn ({s['min']:.2f}-{s['max']:.2f}; "
            f"{r['from_qapp']['median']:.2f} s from QApplication, imports {r['imports']['median']:.2f} s)")
    if args.only in (None, "tree"):
        r = tree_1000()
        report["figures"]["tree_1000_pairs_ms"] = r
        report["targets"]["tree_1000_pairs_update_worst_ms"] = target(r["update_ms_worst"], 100, at_least=False)
        log(f"tree of 1,000 pairs update: worst {r['update_ms_worst']:.1f} ms, best {r['update_ms_best']:.1f} ms "
            f"(first build {r['build_ms']:.0f} ms, repaint after update {r['repaint_ms_worst']:.1f} ms)")
    if args.only in (None, "stalls"):
        r = stalls(args.seconds, args.profile)
        report["figures"]["ui_stalls_ms"] = r
        report["targets"]["ui_stall_worst_ms"] = target(r["worst_ms"], 50, at_least=False)
        log(f"UI stalls, 64 pairs syncing + workload ({args.seconds:.0f} s, 5 ms timer, {r['ticks']} ticks): "
            f"worst {r['worst_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, median {r['median_ms']:.1f} ms "
            f"[setup {r['setup_s']:.0f} s, {r['workload_mib_written']:.0f} MiB written, "
            f"{r['sync_calls_answered']} sync_now answered, {r['pairs_syncing_at_end']} pair sides syncing at end]")
    report["page_cache"] = cache.describe()
    finish(report, args.json, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
