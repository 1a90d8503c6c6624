#!/usr/bin/env python3
"""Scale and memory of the array daemons (issue 14): 64 groups x 8 pairs, REST latency, RSS.

Targets:
  * 64 groups x 8 pairs on the two daemons, 1-minute intervals, a light host workload:
    every group's recovery point age stays under interval + its sync time (a sync that
    starts on time commits a recovery point taken one interval after the last one);
  * ``GET async-mirrors`` answers with p99 <= 50 ms meanwhile;
  * a daemon's RSS while syncing a large sparse volume (16 GiB, written sparsely) stays
    under 150 MiB, and does not grow with the volume's size (measured at two sizes).

Part 1 (scale): a lab of array daemons (``mirrorctl lab up`` on a temp home); over REST
(the Fleet) ``--groups`` scheduled groups of ``--pairs`` pairs of sparse volumes, all
initially synced; then the daemons' own host workload (``lab/workload``, Fleet.start_workload)
on every primary for ``--minutes``. Meanwhile, every ``--poll`` seconds, ``GET async-mirrors``
on each array is timed (its own HTTPS client, kept-alive connection, JSON decoded), every
group's recovery point age is checked against interval + the elapsed time of the sync
running then (+ 2 s for the scheduler's tick and the clock reading), and each daemon's
VmRSS is read. At the end each group's sync history gives the age just before every
commit against interval + that sync's duration, the same rule from the arrays' records.

Part 2 (memory): for each of ``--rss-sizes-gib`` a fresh lab; a sparse volume of that size
with the same ``--rss-written-mib`` written at every size (8 MiB chunks spread evenly
over it, so only the capacity differs); its initial sync, with both daemons' VmRSS read
every 50 ms. The growth is the peak at the largest size over the peak at the smallest.

Usage: .venv/bin/python bench/scale.py [--groups 64] [--pairs 8] [--minutes 10] [--rss-sizes-gib 4,16]
       [--rss-written-mib 256] [--only scale|memory] [--json]
Quick: --groups 8 --pairs 2 --minutes 3 --rss-sizes-gib 2,8 --rss-written-mib 64
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.figures import Log, PageCache, add_run_options, finish, machine, ratio, spread, target  # noqa: E402
from harness.lab import DaemonLab, rss_bytes  # noqa: E402

from core.client.rest import BlockingArrayClient  # noqa: E402
from core.rest import models  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
RESERVED_PERCENT = 50  # room for an interval of the workload's changes on a small volume
SLACK_S = 2.0  # the scheduler ticks every 0.25 s; the age is read over REST


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def wait_all_synced(c, groups: list[str], timeout: float, log: Log) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        snaps = {g.name: g for g in c.groups("SiteA")}
        ready = [n for n in groups if n in snaps and snaps[n].last_recovery_point is not None
                 and all(p.recovery_point_available for p in snaps[n].pairs)]
        if len(ready) == len(groups):
            return time.monotonic() - t0
        time.sleep(1)
    raise RuntimeError(f"only {len(ready)} of {len(groups)} groups had a recovery point after {timeout:.0f} s")


class Sampler(threading.Thread):
    """Times ``GET async-mirrors`` on each array, checks every group's recovery point age, reads RSS."""

    def __init__(self, lab: DaemonLab, interval_s: float, poll: float):
        super().__init__(name="bench-sampler", daemon=True)
        self.lab, self.interval_s, self.poll = lab, interval_s, poll
        self.latency_ms: dict[str, list[float]] = {"SiteA": [], "SiteB": []}
        self.rss: dict[str, list[int]] = {"SiteA": [], "SiteB": []}
        self.max_age: dict[str, float] = {}
        self.late: dict[str, float] = {}  # group -> worst seconds beyond interval + running sync
        self.samples = 0
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        clients = {n: BlockingArrayClient.for_daemon(self.lab.array(n), self.lab.array(n)["password"])
                   for n in self.latency_ms}
        try:
            while not self._halt.is_set():
                for name, client in clients.items():
                    t0 = time.perf_counter()
                    try:
                        answer = client.get("async-mirrors")
                    except Exception as e:  # a failed request is a figure too
                        self.errors.append(f"{name}: {e}")
                        continue
                    self.latency_ms[name].append((time.perf_counter() - t0) * 1000)
                    self.rss[name].append(rss_bytes(self.lab.pid(name)))
                    if name == "SiteA":
                        self._ages(answer)
                self.samples += 1
                self._halt.wait(self.poll)
        finally:
            for client in clients.values():
                client.close()

    def _ages(self, answer: list[dict]) -> None:
        now = datetime.now(timezone.utc)
        for ws in answer:
            g = models.group_from_ws(ws)
            if g.role != "primary" or g.last_recovery_point is None:
                continue
            age = (now - g.last_recovery_point).total_seconds()
            running = (now - g.progress.started).total_seconds() if g.progress and g.progress.started else 0.0
            self.max_age[g.name] = max(self.max_age.get(g.name, 0.0), age)
            self.late[g.name] = max(self.late.get(g.name, float("-inf")), age - self.interval_s - running)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def history_lateness(c, group: str, interval_s: float, since: datetime) -> tuple[float | None, list[float]]:
    """From the sync history: worst (age before a commit) - (interval + that sync's duration); durations."""
    rows = sorted((s for s in c.sync_history(group) if s.outcome == "committed" and s.recovery_point_time),
                  key=lambda s: s.ended)
    worst, durations = None, []
    for prev, cur in zip(rows, rows[1:]):
        if cur.ended < since:
            continue
        durations.append(cur.duration_seconds)
        late = (cur.ended - prev.recovery_point_time).total_seconds() - interval_s - cur.duration_seconds
        worst = late if worst is None else max(worst, late)
    return worst, durations


def scale(args, log: Log, tmp: Path) -> dict:
    interval_s = args.interval * 60
    names = [f"S{g:02d}" for g in range(args.groups)]
    with DaemonLab("bench-scale-", workdir=str(tmp)) as lab, lab.client("bench scale") as c:
        rss_start = {n: rss_bytes(lab.pid(n)) for n in ("SiteA", "SiteB")}
        t0 = time.monotonic()
        primaries = []
        for gi, name in enumerate(names):
            c.create_group(name, "SiteA", "SiteB", sync_interval_minutes=args.interval)
            for pi in range(args.pairs):
                v = f"s{gi:02d}p{pi}"
                c.create_volume(f"SiteA/{v}", args.volume_mib * MiB)
                c.create_volume(f"SiteB/{v}_dr", args.volume_mib * MiB)
                c.add_pair(name, f"SiteA/{v}", f"SiteB/{v}_dr", reserved_percent=RESERVED_PERCENT,
                           secondary_reserved_percent=RESERVED_PERCENT)
                primaries.append(f"SiteA/{v}")
        setup_s = time.monotonic() - t0
        log(f"lab up in {lab.up_seconds:.1f} s; {len(names)} groups x {args.pairs} pairs created over REST "
            f"in {setup_s:.0f} s")
        synced_s = wait_all_synced(c, names, 600 + 2 * len(primaries), log)
        log(f"every group has a recovery point {synced_s:.0f} s later; workload {args.workload_mib:g} MiB/s on "
            f"{len(primaries)} primaries, measuring for {args.minutes:g} min ...")
        since = datetime.now(timezone.utc)
        c.start_workload(primaries, args.workload_mib, "random")
        sampler = Sampler(lab, interval_s, args.poll)
        sampler.start()
        end = time.monotonic() + args.minutes * 60
        try:
            while time.monotonic() < end:
                time.sleep(min(30.0, max(0.0, end - time.monotonic())))
                lat = sampler.latency_ms["SiteA"][-50:]
                log(f"  {max(0, end - time.monotonic()):4.0f} s left: GET async-mirrors SiteA p50 "
                    f"{percentile(lat, 50) or 0:.1f} ms, worst lateness "
                    f"{max(sampler.late.values(), default=0):+.1f} s, RSS A "
                    f"{(sampler.rss['SiteA'][-1:] or [0])[0] / MiB:.0f} MiB")
        finally:
            sampler.stop()
            work = c.workload() or {}
            c.stop_workload()
        history = {n: history_lateness(c, n, interval_s, since) for n in names}
        statuses: dict[str, int] = {}
        for g in c.groups("SiteA"):
            statuses[g.status] = statuses.get(g.status, 0) + 1
        syncs = [d for _, ds in history.values() for d in ds]
        rss_end = {n: rss_bytes(lab.pid(n)) for n in ("SiteA", "SiteB")}
    late_sampled = {g: v for g, v in sampler.late.items() if v > SLACK_S}
    late_history = {g: w for g, (w, _) in history.items() if w is not None and w > SLACK_S}
    never = [g for g, (w, _) in history.items() if w is None]
    p99 = {n: percentile(v, 99) for n, v in sampler.latency_ms.items()}
    written = sum(int(s.get("bytesWritten", 0)) for s in work.values()) if isinstance(work, dict) else 0
    return {
        "config": {"groups": args.groups, "pairs_per_group": args.pairs, "interval_min": args.interval,
                   "minutes": args.minutes, "volume_mib": args.volume_mib, "workload_mib_s": args.workload_mib,
                   "poll_s": args.poll, "slack_s": SLACK_S},
        "figures": {
            "setup_s": setup_s, "initial_syncs_s": synced_s,
            "get_async_mirrors_ms": {n: {"p50": percentile(v, 50), "p99": p99[n], "max": max(v, default=None),
                                         "samples": len(v)} for n, v in sampler.latency_ms.items()},
            "request_errors": sampler.errors[:5],
            "recovery_point_age_max_s": spread(list(sampler.max_age.values())),
            "lateness_sampled_s": spread(list(sampler.late.values())),
            "lateness_history_s": spread([w for w, _ in history.values() if w is not None]),
            "groups_late_sampled": sorted(late_sampled), "groups_late_history": sorted(late_history),
            "groups_without_two_commits_in_window": never,
            "sync_duration_s": spread(syncs) | {"p99": percentile(syncs, 99), "count": len(syncs)},
            "rss_mib": {n: {"start": rss_start[n] / MiB, "max": max(sampler.rss[n], default=0) / MiB,
                            "end": rss_end[n] / MiB} for n in rss_start},
            "workload_bytes_written": written, "group_statuses_at_end": statuses,
            "workload_errors": sum(int(s.get("errors", 0)) for s in work.values()) if isinstance(work, dict) else 0,
        },
        "targets": {
            "groups_recovery_point_age_over_interval_plus_sync": target(
                len(set(late_sampled) | set(late_history) | set(never)), 0, at_least=False),
            "get_async_mirrors_p99_ms": target(max((v for v in p99.values() if v is not None), default=None),
                                               50, at_least=False),
        },
    }


def spread_offsets(capacity: int, written: int, chunk: int) -> list[int]:
    """Where ``written`` bytes go in ``chunk``s, evenly spread over ``capacity`` (chunk-aligned)."""
    count = max(1, written // chunk)
    stride = capacity // count // chunk * chunk
    return [i * stride for i in range(count)]


def memory(args, log: Log, cache: PageCache, tmp: Path) -> dict:
    per_size = {}
    for gib in args.rss_sizes_gib:
        with DaemonLab(f"bench-rss{gib}-", workdir=str(tmp)) as lab, lab.client("bench memory") as c:
            pids = {n: lab.pid(n) for n in ("SiteA", "SiteB")}
            idle = {n: rss_bytes(p) for n, p in pids.items()}
            cap = gib * GiB
            c.create_volume("SiteA/big", cap, drive_type="sas")
            c.create_volume("SiteB/big", cap, drive_type="sas")
            chunk = os.urandom(8 * MiB)
            offsets = spread_offsets(cap, args.rss_written_mib * MiB, len(chunk))
            for off in offsets:
                c.host_write("SiteA/big", off, chunk)
            c.create_group("BIG", "SiteA", "SiteB", sync_mode="manual")
            cache.drop()
            peak = dict(idle)
            t0 = time.monotonic()
            c.add_pair("BIG", "SiteA/big", "SiteB/big")
            polled = 0.0
            while True:
                for n, p in pids.items():
                    peak[n] = max(peak[n], rss_bytes(p))
                if time.monotonic() - polled > 0.5:  # the REST poll is slower than an RSS read
                    polled = time.monotonic()
                    done = [s for s in c.sync_history("BIG") if s.outcome == "committed"]
                    if done:
                        break
                time.sleep(0.05)
            took = time.monotonic() - t0
            after = {n: rss_bytes(p) for n, p in pids.items()}
            identical = bool(c.verify("BIG").get("identical"))
        per_size[gib] = {"idle_mib": {n: v / MiB for n, v in idle.items()},
                         "peak_mib": {n: v / MiB for n, v in peak.items()},
                         "after_mib": {n: v / MiB for n, v in after.items()},
                         "written_mib": 8 * len(offsets), "sync_s": took, "identical": identical}
        log(f"{gib} GiB volume ({per_size[gib]['written_mib']} MiB written): initial sync {took:.1f} s, peak RSS "
            + ", ".join(f"{n} {v:.0f} MiB" for n, v in per_size[gib]["peak_mib"].items()) + f"; identical {identical}")
    peaks = {g: max(v["peak_mib"].values()) for g, v in per_size.items()}
    small, large = min(peaks), max(peaks)
    return {
        "config": {"sizes_gib": args.rss_sizes_gib, "written_mib_at_every_size": args.rss_written_mib},
        "figures": {"by_size_gib": per_size},
        "targets": {
            "daemon_rss_peak_mib_while_syncing_large_volume": target(peaks[large], 150, at_least=False),
            "daemon_rss_growth_largest_vs_smallest_volume": target(ratio(peaks[large], peaks[small]), 1.1,
                                                                   at_least=False),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=8, help="pairs per group (default 8)")
    ap.add_argument("--minutes", type=float, default=10, help="measured time under the workload (default 10)")
    ap.add_argument("--interval", type=int, default=1, help="sync interval of every group, minutes (default 1)")
    ap.add_argument("--volume-mib", type=int, default=64, help="each volume's capacity (default 64)")
    ap.add_argument("--workload-mib", type=float, default=2, help="host workload, MiB/s over all primaries")
    ap.add_argument("--poll", type=float, default=0.5, help="seconds between two REST samples (default 0.5)")
    ap.add_argument("--rss-sizes-gib", default="4,16", help="volume sizes of the memory part (default 4,16)")
    ap.add_argument("--rss-written-mib", type=int, default=256, help="written into the volume at every size")
    ap.add_argument("--only", choices=("scale", "memory"), default=None)
    add_run_options(ap, "the labs")
    args = ap.parse_args(argv)
    args.rss_sizes_gib = sorted({int(x) for x in args.rss_sizes_gib.split(",") if x.strip()})
    started, meta = time.monotonic(), machine()
    log, cache = Log(args.json), PageCache(not args.keep_page_cache)
    report: dict = {"bench": "scale", "machine": meta, "targets": {}}
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.workdir) as tmp:
        if args.only in (None, "scale"):
            part = scale(args, log, Path(tmp))
            report["scale"] = {"config": part["config"], "figures": part["figures"]}
            report["targets"].update(part["targets"])
        if args.only in (None, "memory"):
            part = memory(args, log, cache, Path(tmp))
            report["memory"] = {"config": part["config"], "figures": part["figures"]}
            report["targets"].update(part["targets"])
    report["page_cache"] = cache.describe()
    if not args.json and "scale" in report:
        f = report["scale"]["figures"]
        lat = f["get_async_mirrors_ms"]
        print("\nGET async-mirrors: " + "; ".join(
            f"{n} p50 {v['p50'] or 0:.1f} ms, p99 {v['p99'] or 0:.1f} ms, max {v['max'] or 0:.1f} ms ({v['samples']})"
            for n, v in lat.items()))
        print(f"recovery point age, worst per group: median {f['recovery_point_age_max_s']['median'] or 0:.1f} s, "
              f"max {f['recovery_point_age_max_s']['max'] or 0:.1f} s; beyond interval + sync time: sampled "
              f"{f['lateness_sampled_s']['max'] or 0:+.1f} s, from history {f['lateness_history_s']['max'] or 0:+.1f} s; "
              f"late groups: {f['groups_late_sampled'] or f['groups_late_history'] or 'none'}"
              + (f"; without two commits in the window: {f['groups_without_two_commits_in_window']}"
                 if f["groups_without_two_commits_in_window"] else ""))
        print(f"syncs: {f['sync_duration_s']['count']}, duration median {f['sync_duration_s']['median'] or 0:.2f} s, "
              f"p99 {f['sync_duration_s']['p99'] or 0:.2f} s; group statuses at the end {f['group_statuses_at_end']}; "
              f"workload {f['workload_bytes_written'] / MiB:.0f} MiB written, {f['workload_errors']} errors; RSS " + ", ".join(
                  f"{n} {v['start']:.0f} -> max {v['max']:.0f} MiB" for n, v in f["rss_mib"].items()))
    finish(report, args.json, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
