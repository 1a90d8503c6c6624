"""What every bench reports the same way: rounds as median and range, targets as {value, target, met}.

Issue 14's rules for benchmarks: the peer is measured in the same run, ours and the
peer's rounds are interleaved, the page cache is dropped before each timed round where
the bench may (root) and the report says whether it was, medians of at least 3 rounds
are reported with their range, and ``--json`` prints one JSON object with every figure.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def add_run_options(ap, workdir: str) -> None:
    """The options every bench has: --keep-page-cache, --workdir (what goes there: ``workdir``), --json."""
    ap.add_argument("--keep-page-cache", action="store_true", help="do not drop the page cache before timed runs")
    ap.add_argument("--workdir", help=f"directory for {workdir} (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print one JSON object with every figure")


class PageCache:
    """Drops the page cache before a timed round when it can (root), and remembers whether it could."""

    def __init__(self, enabled: bool = True, why_not: str = "disabled (--keep-page-cache)"):
        self.enabled = enabled
        self.dropped = 0
        self.failed_reason = "" if enabled else why_not

    def drop(self) -> bool:
        """``sync; echo 3 > /proc/sys/vm/drop_caches``; False (and only a sync) when not allowed."""
        subprocess.run(["sync"], check=True)
        if not self.enabled or self.failed_reason:
            return False
        try:
            DROP_CACHES.write_text("3\n")
        except OSError as e:
            self.failed_reason = f"cannot write {DROP_CACHES}: {e.strerror} (run as root to drop it)"
            return False
        self.dropped += 1
        return True

    def describe(self) -> dict:
        return {"dropped_before_each_timed_round": self.dropped > 0 and not self.failed_reason,
                "drops": self.dropped, "why_not": self.failed_reason or None}


def spread(values: list[float]) -> dict:
    """Median and range of a figure's rounds (every round kept)."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": None, "min": None, "max": None, "rounds": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "rounds": vals}


def target(value: float | None, goal: float, at_least: bool = True) -> dict:
    """A target as issue 14 asks: ``{"value", "target", "met"}``; ``target`` says >= or <= in words."""
    met = value is not None and (value >= goal if at_least else value <= goal)
    shown = value if value is None or isinstance(value, int) else round(float(value), 4)
    return {"value": shown,
            "target": f"{'>=' if at_least else '<='} {goal:g}", "met": bool(met)}


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def machine() -> dict:
    """Where and when: figures are only comparable on the same machine and load."""
    load = os.getloadavg()
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
            "cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in load]}


def finish(report: dict, as_json: bool, started: float) -> None:
    """Complete and print the report: the JSON object alone with ``--json``, else its targets as lines."""
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round(time.monotonic() - started, 1)
    if as_json:
        json.dump(report, sys.stdout, indent=2, default=str)
        print()
        return
    print("\ntargets:")
    for name, t in report.get("targets", {}).items():
        value = "n/a" if t["value"] is None else f"{t['value']:.4g}"
        print(f"  {name:48s} {value:>10s}  target {t['target']:10s} {'met' if t['met'] else 'MISSED'}")
    cache = report.get("page_cache", {})
    print(f"page cache dropped before each timed round: {'yes' if cache.get('dropped_before_each_timed_round') else 'no'}"
          + (f" ({cache['why_not']})" if cache.get("why_not") else ""))
    m = report["machine"]
    print(f"{m['cpus']} CPUs, load {m['loadavg_at_start']} -> {m['loadavg_at_end']}, {report['seconds']} s")


class Log:
    """Progress lines for a person: to stdout normally, to stderr under ``--json`` (stdout is the object)."""

    def __init__(self, as_json: bool):
        self.stream = sys.stderr if as_json else sys.stdout

    def __call__(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
