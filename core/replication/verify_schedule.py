"""Online verify on a schedule: "verify every N hours", in the background, one group at a time.

Online verify (:mod:`core.replication.online_verify`) finds silent divergence that
the data path cannot see, but only when someone asks. DRBD leaves the schedule to
cron; SANtricity has no such thing, but its media scan, which hunts for the same
kind of damage on the drives, is on by default. Here every primary group side has
a setting, ``every_hours`` (0: off), and the default is weekly: damage found within
a week, for the price of reading each volume once a week, a batch at a time with
pauses between batches.

Throttled, besides the pauses inside online verify: at most ``max_running``
verifications at once per process (one by default), never while the group's own
sync runs or while it is not ready (no recovery point, link down, suspended); a
due verification then waits for the next tick. A verification that failed (the
link dropped) is tried again after ``retry_hours``, not a whole interval later.
Decisions use the monotonic clock (issue "Time"); the last verification's
wall-clock time is what an array persists, so a restart does not restart the
interval (pass it back as ``VerifyCandidate.last_verified``). Without it, a group
is first verified within ``first_delay_hours`` of being seen, staggered per group
so many groups do not start together.

The schedule holds no engine: it is given what it needs at each :meth:`VerifySchedule.tick`
and a ``run(array, group)`` coroutine function that verifies one group.
"""
from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Awaitable, Callable, Iterable

from core.errors import InvalidInput
from core.replication.clock import SchedulerClock

log = logging.getLogger(__name__)

DEFAULT_HOURS = 7 * 24   # weekly, as a drive media scan
MAX_HOURS = 366 * 24     # a year
RETRY_HOURS = 1.0        # after a verification that failed
FIRST_DELAY_HOURS = 1.0  # a group never verified: within this long of being first seen
HOUR = 3600.0

Run = Callable[[str, str], Awaitable[dict]]
Finished = Callable[[str, str, "dict | None", "BaseException | None", datetime], None]


def check_verify_hours(hours: float) -> float:
    """A valid "online verify every N hours" setting: 0 (off) or 1 to 8784 hours."""
    try:
        value = float(hours)
    except (TypeError, ValueError):
        value = float("nan")
    if value != value or (value != 0 and not 1 <= value <= MAX_HOURS):
        raise InvalidInput(f"online verify interval {hours!r} h is out of range; give 1 to {MAX_HOURS} hours, "
                           "or 0 to turn scheduled online verify off", code="arvmInvalidVerifyInterval")
    return value


def effective_hours(group_hours: float | None, array_hours: float | None = None) -> float:
    """The group's own setting, else its array's, else :data:`DEFAULT_HOURS`."""
    for hours in (group_hours, array_hours):
        if hours is not None:
            return float(hours)
    return float(DEFAULT_HOURS)


@dataclass(frozen=True)
class VerifyCandidate:
    """One primary group side as the schedule needs to see it at a tick."""

    array: str
    group: str
    every_hours: float                   # effective setting (see effective_hours); 0: off
    ready: bool                          # pairs, a recovery point, link up, not suspended nor failed
    syncing: bool = False                # its sync is running now
    last_verified: datetime | None = None  # wall clock of its last finished online verify, if persisted


@dataclass
class _Entry:
    every_hours: float
    next_due: float                       # monotonic
    task: asyncio.Task | None = None
    last_finished: datetime | None = None  # wall clock
    last_report: dict | None = None
    last_error: str | None = None
    runs: int = 0
    failures: int = 0


@dataclass
class VerifySchedule:
    """Starts due online verifications from the scheduler's tick; see the module docstring."""

    run: Run
    on_finished: Finished | None = None
    clock: SchedulerClock = field(default_factory=SchedulerClock)
    max_running: int = 1
    retry_hours: float = RETRY_HOURS
    first_delay_hours: float = FIRST_DELAY_HOURS
    _entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)

    # -- decisions ------------------------------------------------------------------------------------
    def due(self, candidate: VerifyCandidate, now: float | None = None) -> bool:
        """True when ``candidate`` should be verified now (ignoring how many already run)."""
        now = self.clock.mono() if now is None else now
        if candidate.every_hours <= 0 or not candidate.ready or candidate.syncing:
            return False
        entry = self._entry(candidate, now)
        return not self._running(entry) and now >= entry.next_due

    def tick(self, candidates: Iterable[VerifyCandidate], now: float | None = None) -> list[tuple[str, str]]:
        """Start what is due (inside the engine's loop); returns the (array, group) started."""
        now = self.clock.mono() if now is None else now
        seen, due = set(), []
        for c in candidates:
            key = (c.array, c.group)
            seen.add(key)
            if c.every_hours <= 0:
                if not self._running(self._entries.get(key)):
                    self._entries.pop(key, None)  # off: a running one finishes, nothing more
                continue
            if self.due(c, now):
                due.append((self._entries[key].next_due, key))
        for key in [k for k, e in self._entries.items() if k not in seen and not self._running(e)]:
            del self._entries[key]  # the group is gone, or no longer primary here
        started = []
        for _, key in sorted(due):
            if self.running() >= self.max_running:
                break
            self._start(key)
            started.append(key)
        return started

    def running(self) -> int:
        return sum(self._running(e) for e in self._entries.values())

    def next_due(self, array: str, group: str) -> datetime | None:
        """Wall-clock time of the group's next scheduled verification (for people), None when off or unseen."""
        entry = self._entries.get((array, group))
        return None if entry is None else self.clock.wall_of(entry.next_due)

    def last(self, array: str, group: str) -> tuple[datetime | None, dict | None, str | None]:
        """(finished at, report, error) of the group's last scheduled verification."""
        entry = self._entries.get((array, group))
        return (None, None, None) if entry is None else (entry.last_finished, entry.last_report, entry.last_error)

    async def stop(self) -> None:
        """Cancel running verifications (the array is stopping)."""
        tasks = [e.task for e in self._entries.values() if self._running(e)]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- inside -----------------------------------------------------------------------------------------
    @staticmethod
    def _running(entry: _Entry | None) -> bool:
        return entry is not None and entry.task is not None and not entry.task.done()

    def _entry(self, c: VerifyCandidate, now: float) -> _Entry:
        key = (c.array, c.group)
        interval = c.every_hours * HOUR
        entry = self._entries.get(key)
        if entry is None:
            if c.last_verified is not None:
                first = max(now, self.clock.deadline_at(c.last_verified + timedelta(seconds=interval)))
            else:  # staggered per group, the same on every restart
                spread = (zlib.crc32(f"{c.array}/{c.group}".encode()) % 1000) / 1000
                first = now + min(interval, self.first_delay_hours * HOUR) * (0.5 + 0.5 * spread)
            entry = self._entries[key] = _Entry(c.every_hours, first, last_finished=c.last_verified)
        elif entry.every_hours != c.every_hours:  # the setting changed: count from the last run
            if entry.last_finished is not None:
                entry.next_due = max(now, self.clock.deadline_at(entry.last_finished) + interval)
            else:  # never verified: still within its first delay, sooner if the new interval says so
                entry.next_due = min(entry.next_due, now + interval)
            entry.every_hours = c.every_hours
        return entry

    def _start(self, key: tuple[str, str]) -> None:
        entry = self._entries[key]
        entry.task = asyncio.get_running_loop().create_task(self._verify(key, entry),
                                                            name=f"scheduled online verify {key[0]}/{key[1]}")

    async def _verify(self, key: tuple[str, str], entry: _Entry) -> None:
        array, group = key
        report, error = None, None
        try:
            report = await self.run(array, group)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the link dropped, the group changed: try again later
            error = exc
        now = self.clock.mono()
        entry.last_finished = self.clock.now()
        entry.runs += 1
        if error is None:
            entry.last_report, entry.last_error = report, None
            entry.next_due = now + entry.every_hours * HOUR
        else:
            entry.failures += 1
            entry.last_error = getattr(error, "message", None) or str(error) or type(error).__name__
            entry.next_due = now + min(entry.every_hours, self.retry_hours) * HOUR
            log.warning("scheduled online verify of %s/%s failed: %s", array, group, entry.last_error)
        if self.on_finished is not None:
            try:
                self.on_finished(array, group, report, error, entry.last_finished)
            except Exception:  # whoever records it must not stop the schedule
                log.exception("on_finished failed for the online verify of %s/%s", array, group)
