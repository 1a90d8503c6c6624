"""Time for the scheduler: decide on the monotonic clock, show the wall clock (issue "Time").

Intervals and recovery-point ages that followed the wall clock went wrong when it
was set: back one hour, no interval sync ran and nothing alerted; forward two hours,
a spurious "recovery point 122 min old". Deadlines and ages measured here are
monotonic; wall-clock times are only for people, and a jump of the wall clock
is noticed (so it can be logged as an event).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

JUMP_SECONDS = 5.0  # wall and monotonic clocks drifting apart by more than this is a jump


class SchedulerClock:
    """Monotonic deadlines with their wall-clock equivalents, and wall-clock jump detection."""

    def __init__(self):
        self._skew = self._current_skew()

    @staticmethod
    def _current_skew() -> float:
        return time.time() - time.monotonic()

    @staticmethod
    def mono() -> float:
        return time.monotonic()

    @staticmethod
    def now() -> datetime:
        return datetime.fromtimestamp(time.time(), timezone.utc)  # the same wall clock jump() watches

    def deadline_at(self, when: datetime) -> float:
        """The monotonic instant of a wall-clock time (a schedule saved before a restart)."""
        return self.mono() + (when - self.now()).total_seconds()

    def wall_of(self, deadline: float) -> datetime:
        """The wall-clock time shown for a monotonic deadline (follows a changed wall clock)."""
        return self.now() + timedelta(seconds=deadline - self.mono())

    def jump(self) -> float:
        """Seconds the wall clock jumped since the last call (0.0 when it did not)."""
        skew = self._current_skew()
        moved = skew - self._skew
        if abs(moved) < JUMP_SECONDS:
            return 0.0
        self._skew = skew
        return moved
