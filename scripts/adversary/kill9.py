"""kill -9 of an array daemon mid-write, mid-transfer and mid-commit, then ``lab up`` again.

Each point: host writes build a delta, a sync starts (host writes go on), and a
watcher kills the victim (primary SiteA or secondary SiteB) when the point is
reached: the secondary's staging journals hold a fraction of the delta, the
group's commit record exists on the secondary (the commit is being applied), a
time into the sync, or during host writes with no sync. Then ``mirrorctl lab up``
restarts what is missing and the harness checks, in order:

1. the primary holds every acknowledged write (the write in flight: landed, not
   landed or torn — it was never acknowledged);
2. the secondary is one recovery point, both volumes at the same instant, and not
   older than the last one committed before the kill;
3. a sync commits (the group resumes by itself, or after ``resume``), after which
   ``mirrorctl verify`` says identical and the secondary holds every acknowledged write.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from adversary.lab import GROUP, PRIMARY, HarnessError, HostWriter, Lab
from adversary.model import BLOCK, WriteLog
from adversary.outcome import Outcome


@dataclass(frozen=True)
class KillPoint:
    victim: str        # SiteA or SiteB
    phase: str         # write | transfer | commit | time
    fraction: float = 0.0  # transfer: share of the delta staged; time: share of the expected sync time

    def label(self) -> str:
        extra = f" {self.fraction:.2f}" if self.phase in ("transfer", "time") else ""
        return f"{self.victim} {self.phase}{extra}"


def points(n: int, rng: random.Random) -> list[KillPoint]:
    """``n`` kill points spread over victims and phases (transfer fractions and times spread evenly)."""
    kinds = [("SiteB", "transfer"), ("SiteA", "transfer"), ("SiteB", "commit"), ("SiteA", "write"),
             ("SiteA", "commit"), ("SiteB", "time"), ("SiteA", "time"), ("SiteB", "write")]
    out = []
    for i in range(n):
        victim, phase = kinds[i % len(kinds)]
        rounds = max(1, n // len(kinds))
        fraction = ((i // len(kinds)) % rounds + rng.random()) / rounds
        out.append(KillPoint(victim, phase, round(min(0.95, max(0.05, fraction)), 2)))
    return out


def _wait_and_kill(lab: Lab, point: KillPoint, delta: int, expected: float) -> str:
    """Watch the secondary's files and kill at the point; returns what was seen at the kill."""
    base = 16 * len(lab.names)
    start = time.monotonic()
    deadline = start + max(10.0, 4 * expected)
    seen = "late"
    while time.monotonic() < deadline:
        if point.phase == "transfer" and lab.staging_bytes() >= base + point.fraction * delta:
            seen = f"staged {lab.staging_bytes() - base} of {delta} B"
            break
        if point.phase == "commit" and lab.commit_record().exists():
            seen = "commit record present"
            break
        if point.phase == "time" and time.monotonic() - start >= point.fraction * expected:
            seen = f"{time.monotonic() - start:.3f} s into the sync"
            break
        time.sleep(0.001)
    lab.kill9(point.victim)
    return seen


def run(lab: Lab, wlog: WriteLog, count: int, rng: random.Random, delta_blocks: int = 96,
        rate: float = 16 << 20, log=print) -> Outcome:
    """``count`` kill points against a lab whose group ADV is set up (``Lab.setup_group``)."""
    out = Outcome("kill9")
    t0 = time.monotonic()
    committed = _check_secondary(lab, wlog, 0, out, "start") or 0
    expected = 1.0
    for i, point in enumerate(points(count, rng)):
        out.tried += 1
        label = f"kill -9 #{i + 1} {point.label()}"
        lost_before = out.lost
        try:
            ok = _one_point(lab, wlog, point, rng, delta_blocks, rate, committed, expected, out, label)
            if ok is not None:
                committed, expected = ok
                out.survived += out.lost == lost_before
            seen = (out.notes.get("seen") or [""])[-1]
            log(f"  {label}: {'ok' if ok and out.lost == lost_before else 'FAILED'} ({seen})")
        except (HarnessError, OSError) as e:
            out.fail(f"{label}: {e}")
            log(f"  {label}: FAILED {e}")
            lab.up()
    out.notes["syncWaitReturnedAnOlderRecoveryPoint"] = lab.stale_sync_answers
    out.seconds = time.monotonic() - t0
    return out


def _one_point(lab, wlog, point, rng, delta_blocks, rate, committed, expected, out, label):
    writer = HostWriter(lab, wlog, rng, rate, limit=delta_blocks)
    writer.start()
    writer.join(120)
    if writer.error:
        raise HarnessError(f"host writes failed before the kill: {writer.error}")
    writer = HostWriter(lab, wlog, rng, rate / 4)  # host writes go on during the sync
    writer.start()
    seen = "during host writes"
    if point.phase == "write":
        time.sleep(0.05 + point.fraction * 0.5)
        lab.kill9(point.victim)
    else:
        lab.client(PRIMARY).post(f"async-mirrors/{GROUP}/sync")
        seen = _wait_and_kill(lab, point, delta_blocks * BLOCK, expected)
    writer.stop()
    lab.up()
    primary = lab.images(PRIMARY)
    settled = wlog.settle_inflight(primary)
    span = wlog.admissible(primary)
    if span is None or not (span[0] <= wlog.acked <= span[1]):
        out.lost += 1
        missing = wlog.blocks_missing(primary, wlog.acked)[:3]
        out.fail(f"{label} ({seen}): the primary lost acknowledged writes: {missing}")
    if _check_secondary(lab, wlog, committed, out, f"{label} ({seen})") is None:
        return None
    stats = lab.sync_committed()
    if point.phase != "write":
        expected = 0.7 * expected + 0.3 * max(0.1, float(stats.get("durationSeconds") or 1.0))
    images = lab.secondary_images()
    span = wlog.admissible(images)
    if span is None or not span[0] <= wlog.acked <= span[1]:
        out.lost += 1
        out.fail(f"{label}: after the resync the secondary lacks acknowledged writes: "
                 f"{wlog.blocks_missing(images, wlog.acked)[:3]}")
        return None
    code, report = lab.verify()
    if code != 0:
        out.fail(f"{label}: mirrorctl verify exited {code}: {report}")
        return None
    out.notes.setdefault("seen", []).append(seen)
    out.notes.setdefault("inflight", {}).setdefault(settled, 0)
    out.notes["inflight"][settled] += 1
    full = float(stats.get("bytesPayload") or 0) >= len(lab.names) * lab.capacity
    out.notes["fullSyncsAfterKill"] = out.notes.get("fullSyncsAfterKill", 0) + int(full)
    return wlog.acked, expected


def _check_secondary(lab: Lab, wlog: WriteLog, committed: int, out: Outcome, label: str) -> int | None:
    """The secondary is one instant, not older than ``committed``; returns the latest it can be."""
    images = lab.secondary_images()
    span = wlog.admissible(images)
    if span is None:
        out.lost += 1
        out.fail(f"{label}: the secondary is a mix of two instants (no write-log prefix gives its image)")
        return None
    if span[1] < committed:
        out.lost += 1
        out.fail(f"{label}: the secondary went back to before write {committed}, which had committed")
        return None
    return min(span[1], wlog.acked)
