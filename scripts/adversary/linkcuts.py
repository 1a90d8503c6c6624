"""Link cuts under host load: ``mirrorctl lab link cut`` / ``restore`` while a host writes and syncs run.

A host writes over NBD all along; a syncer asks for a sync again as soon as the
last one ended (failed or committed). Each cut lasts 0.1-1.5 s at a random moment.
A cut survives when, after the restore, a sync requested after it commits (the
group is not stuck), and the secondary, read during the cut and after the commit,
is one instant holding at least every write acknowledged before the committed
sync was requested. At the end the host stops, a last sync commits, ``mirrorctl
verify`` says identical and the secondary holds every acknowledged write.
"""
from __future__ import annotations

import contextlib
import random
import threading
import time
from datetime import datetime

from core.client.rest import BlockingArrayClient
from core.errors import MirrorError
from core.lab.passwords import lab_passwords

from adversary.lab import GROUP, PRIMARY, HarnessError, HostWriter, Lab
from adversary.model import WriteLog
from adversary.outcome import Outcome

RECOVERY_TIMEOUT = 60.0


class Syncer(threading.Thread):
    """Requests syncs back to back; remembers, for each commit, what was acknowledged before it was asked."""

    def __init__(self, lab: Lab, wlog: WriteLog):
        super().__init__(name="adversary syncer", daemon=True)
        self.lab, self.wlog = lab, wlog
        self.stop_event = threading.Event()
        self.commits: list[tuple[float, float, int]] = []  # (requested, ended, acked before its recovery point)
        self.failures = 0
        self.older_than_request = 0  # committed syncs whose recovery point predates the request
        self.held = threading.Event()  # set: ask for no new sync (while the harness reads the secondary)
        self.lock = threading.Lock()

    def run(self) -> None:
        info = self.lab.daemon(PRIMARY)
        with BlockingArrayClient.for_daemon(info, lab_passwords(self.lab.home)[PRIMARY], timeout=120) as c:
            while not self.stop_event.is_set():
                if self.held.is_set():
                    self.stop_event.wait(0.05)
                    continue
                requested, asked = time.monotonic(), time.time()
                try:
                    stats = c.post(f"async-mirrors/{GROUP}/sync?wait=true")
                    if stats and stats.get("outcome", "committed") == "committed":
                        point = datetime.fromisoformat(stats["recoveryPointTime"]).timestamp()
                        self.older_than_request += point < asked
                        with self.lock:
                            self.commits.append((requested, time.monotonic(), self.wlog.acked_before(point)))
                        self.stop_event.wait(0.05)
                        continue
                except (MirrorError, OSError):
                    pass
                self.failures += 1
                self.stop_event.wait(0.2)

    def committed_since(self, moment: float) -> tuple[float, float, int] | None:
        with self.lock:
            return next((c for c in self.commits if c[0] >= moment), None)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(180)


def run(lab: Lab, wlog: WriteLog, count: int, rng: random.Random, rate: float = 4 << 20, log=print) -> Outcome:
    out = Outcome("linkcuts")
    t0 = time.monotonic()
    writer = HostWriter(lab, wlog, rng, rate)
    syncer = Syncer(lab, wlog)
    writer.start()
    syncer.start()
    floor = wlog.acked  # the last sync of the previous run committed everything up to here
    recoveries = []
    try:
        for i in range(count):
            out.tried += 1
            label = f"cut #{i + 1}"
            try:
                floor = _one_cut(lab, wlog, rng, writer, syncer, floor, recoveries, out, label, i, log)
            except (HarnessError, MirrorError, OSError) as e:
                out.fail(f"{label}: {e}")
                log(f"  {label}: FAILED {e}")
                with contextlib.suppress(Exception):
                    lab.set_link("restore")
            if writer.error:
                raise HarnessError(f"the host's writes failed: {writer.error}")
    finally:
        writer.stop()
        syncer.stop()
    _report(out, writer, syncer, recoveries)
    _final(lab, wlog, out)
    out.seconds = time.monotonic() - t0
    return out


def _one_cut(lab, wlog, rng, writer, syncer, floor, recoveries, out, label, i, log) -> int:
    """One cut and restore; returns the new floor (writes every later image must hold)."""
    lost_before = out.lost
    time.sleep(rng.uniform(0.1, 0.8))
    lab.set_link("cut")
    hold = rng.uniform(0.1, 1.5)
    cut_at = time.monotonic()
    if i % 2 == 0:
        _check(lab, wlog, floor, out, f"{label} (during the cut)", syncer)
    time.sleep(max(0.0, hold - (time.monotonic() - cut_at)))
    lab.set_link("restore")
    restored = time.monotonic()
    commit = None
    while commit is None and time.monotonic() - restored < RECOVERY_TIMEOUT:
        if writer.error:
            raise HarnessError(f"the host's writes failed: {writer.error}")
        time.sleep(0.05)
        commit = syncer.committed_since(restored)
    if commit is None:
        out.fail(f"{label}: no sync committed within {RECOVERY_TIMEOUT:.0f} s of the restore (stuck)")
        log(f"  {label}: STUCK")
        return floor
    recoveries.append(commit[1] - restored)
    floor = max(floor, commit[2])
    _check(lab, wlog, floor, out, f"{label} (after the restore)", syncer)
    survived = out.lost == lost_before
    out.survived += survived
    log(f"  {label}: held {hold:.2f} s, a sync committed {commit[1] - restored:.2f} s after the restore"
        f"{'' if survived else ' FAILED'}")
    return floor


def _report(out, writer, syncer, recoveries) -> None:
    out.notes["hostWrites"] = writer.written
    out.notes["syncsCommitted"] = len(syncer.commits)
    out.notes["syncsFailed"] = syncer.failures
    out.notes["syncWaitReturnedAnOlderRecoveryPoint"] = syncer.older_than_request
    if recoveries:
        out.notes["recoverySeconds"] = {"median": sorted(recoveries)[len(recoveries) // 2], "max": max(recoveries)}


def _check(lab: Lab, wlog: WriteLog, floor: int, out: Outcome, label: str, syncer: Syncer) -> None:
    syncer.held.set()  # syncs back to back would move the recovery point under a 2 x 16 MiB read
    try:
        span = wlog.admissible(lab.secondary_images(attempts=30))
    finally:
        syncer.held.clear()
    if span is None:
        out.lost += 1
        out.fail(f"{label}: the secondary is a mix of two instants")
    elif span[1] < floor:
        out.lost += 1
        out.fail(f"{label}: the secondary lacks writes acknowledged before a committed sync "
                 f"(it is at most write {span[1]}, the sync covered write {floor})")


def _final(lab: Lab, wlog: WriteLog, out: Outcome) -> None:
    """Host stopped: one more sync, verify, and every acknowledged write on both sides."""
    lab.sync_committed()
    for side, images in (("primary", lab.images(PRIMARY)), ("secondary", lab.secondary_images())):
        span = wlog.admissible(images)
        if wlog.inflight is not None or span is None or not span[0] <= wlog.acked <= span[1]:
            out.lost += 1
            out.fail(f"end of run: the {side} lacks acknowledged writes: {wlog.blocks_missing(images, wlog.acked)[:3]}")
    code, report = lab.verify()
    if code != 0:
        out.fail(f"end of run: mirrorctl verify exited {code}: {report}")
