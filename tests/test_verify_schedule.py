"""Scheduled online verify: when it runs, how it is throttled, what it remembers (core.replication.verify_schedule).

A fake clock drives the monotonic and wall clocks; ``run`` is a stand-in for the
engine's online verify that the test finishes (or fails) when it wants.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from core.errors import InvalidInput
from core.replication.clock import SchedulerClock
from core.replication.verify_schedule import (
    DEFAULT_HOURS, HOUR, VerifyCandidate, VerifySchedule, check_verify_hours, effective_hours,
)

T0 = datetime(2026, 1, 5, 3, 0, tzinfo=timezone.utc)


class FakeClock(SchedulerClock):
    def __init__(self):
        self.mono_now, self.wall_now = 1000.0, T0
        super().__init__()

    def mono(self) -> float:
        return self.mono_now

    def now(self) -> datetime:
        return self.wall_now

    def _current_skew(self) -> float:
        return 0.0

    def advance(self, seconds: float) -> None:
        self.mono_now += seconds
        self.wall_now += timedelta(seconds=seconds)


class FakeVerify:
    """run(array, group): waits until the test says how it ends."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.ends: dict[tuple[str, str], asyncio.Future] = {}

    async def __call__(self, array, group):
        self.calls.append((array, group))
        fut = self.ends[(array, group)] = asyncio.get_running_loop().create_future()
        return await fut

    def finish(self, array, group, report=None, error=None):
        fut = self.ends.pop((array, group))
        fut.set_exception(error) if error else fut.set_result(report or {"regionsMarked": 0})


def group(name="G1", hours=24.0, ready=True, syncing=False, last=None, array="SiteA"):
    return VerifyCandidate(array, name, hours, ready, syncing, last)


async def settle():
    for _ in range(3):
        await asyncio.sleep(0)


def test_settings_default_weekly_and_validated():
    assert DEFAULT_HOURS == 168
    assert effective_hours(None, None) == 168
    assert effective_hours(None, 12) == 12 and effective_hours(6, 12) == 6 and effective_hours(0, 12) == 0
    assert check_verify_hours(0) == 0 and check_verify_hours("24") == 24
    for bad in (0.5, -1, 9000, "nan", "soon", None, float("inf")):
        with pytest.raises(InvalidInput) as info:
            check_verify_hours(bad)
        assert info.value.code == "arvmInvalidVerifyInterval"


def test_off_is_never_due_and_a_new_group_waits_a_staggered_first_delay():
    clock = FakeClock()
    s = VerifySchedule(FakeVerify(), clock=clock)
    assert not s.due(group(hours=0))
    assert not s.due(group("G1"))                     # seen now: not at once
    names = ("G1", "G2", "G3", "G4")
    assert not any(s.due(group(n)) for n in names)
    first = {n: s.next_due("SiteA", n) for n in names}
    delays = [(first[n] - T0).total_seconds() for n in first]
    assert all(0.5 * HOUR <= d <= HOUR for d in delays), delays   # within the first hour
    assert len(set(delays)) > 1                                     # not all at the same moment
    clock.advance(HOUR)
    assert all(s.due(group(n)) for n in first)


def test_runs_when_due_then_every_interval_and_reports():
    async def main():
        clock, verify, done = FakeClock(), FakeVerify(), []
        s = VerifySchedule(verify, on_finished=lambda *a: done.append(a), clock=clock)
        assert s.tick([group(hours=24)]) == []
        clock.advance(HOUR)
        assert s.tick([group(hours=24)]) == [("SiteA", "G1")]
        await settle()
        assert s.tick([group(hours=24)]) == []            # already running
        clock.advance(600)
        verify.finish("SiteA", "G1", {"regionsMarked": 3})
        await settle()
        array, name, report, error, when = done[0]
        assert (array, name, report, error, when) == ("SiteA", "G1", {"regionsMarked": 3}, None, clock.now())
        assert s.last("SiteA", "G1") == (clock.now(), {"regionsMarked": 3}, None)
        assert s.next_due("SiteA", "G1") == clock.now() + timedelta(hours=24)
        clock.advance(23 * HOUR)
        assert s.tick([group(hours=24)]) == []
        clock.advance(HOUR)
        assert s.tick([group(hours=24)]) == [("SiteA", "G1")]
        await settle()
        await s.stop()
        assert verify.calls == [("SiteA", "G1")] * 2
    asyncio.run(main())


def test_a_failed_verification_is_retried_after_an_hour():
    async def main():
        clock, verify = FakeClock(), FakeVerify()
        s = VerifySchedule(verify, clock=clock)
        s.tick([group(hours=168)])
        clock.advance(HOUR)
        s.tick([group(hours=168)])
        await settle()
        verify.finish("SiteA", "G1", error=ConnectionError("link cut"))
        await settle()
        assert s.last("SiteA", "G1")[2] == "link cut"
        clock.advance(HOUR - 1)
        assert s.tick([group(hours=168)]) == []
        clock.advance(1)
        assert s.tick([group(hours=168)]) == [("SiteA", "G1")]
        await s.stop()
    asyncio.run(main())


def test_throttled_one_at_a_time_never_during_a_sync_nor_when_not_ready():
    async def main():
        clock, verify = FakeClock(), FakeVerify()
        s = VerifySchedule(verify, clock=clock)
        names = ["G1", "G2", "G3"]
        s.tick([group(n) for n in names])
        clock.advance(HOUR)
        assert s.tick([group("G1", syncing=True), group("G2", ready=False), group("G3")]) == [("SiteA", "G3")]
        await settle()
        assert s.tick([group(n) for n in names]) == []      # G3 still runs: the others wait
        verify.finish("SiteA", "G3")
        await settle()
        started = s.tick([group(n) for n in names])
        assert len(started) == 1 and started[0] in {("SiteA", "G1"), ("SiteA", "G2")}
        assert s.running() == 1
        await s.stop()
        assert s.running() == 0
    asyncio.run(main())


def test_after_a_restart_the_persisted_time_keeps_the_interval():
    clock = FakeClock()
    s = VerifySchedule(FakeVerify(), clock=clock)
    assert not s.due(group(hours=24, last=T0 - timedelta(hours=20)))
    assert s.next_due("SiteA", "G1") == T0 + timedelta(hours=4)
    overdue = VerifySchedule(FakeVerify(), clock=clock)
    assert overdue.due(group(hours=24, last=T0 - timedelta(days=3)))  # overdue: at once


def test_a_changed_setting_counts_from_the_last_run_and_a_removed_group_is_forgotten():
    async def main():
        clock, verify = FakeClock(), FakeVerify()
        s = VerifySchedule(verify, clock=clock)
        s.tick([group(hours=168, last=T0 - timedelta(hours=10))])
        assert s.next_due("SiteA", "G1") == T0 + timedelta(hours=158)
        s.tick([group(hours=12, last=T0 - timedelta(hours=10))])
        assert s.next_due("SiteA", "G1") == T0 + timedelta(hours=2)
        s.tick([group(hours=0)])
        assert s.next_due("SiteA", "G1") is None            # off
        s.tick([group("G2")])
        first = s.next_due("SiteA", "G2")
        assert first <= T0 + timedelta(hours=1)
        s.tick([group("G2", hours=48)])  # never verified: a new setting keeps the first within the hour
        assert s.next_due("SiteA", "G2") == first
        s.tick([])
        assert s.next_due("SiteA", "G2") is None            # deleted, or no longer primary here
    asyncio.run(main())


def test_the_wall_clock_jumping_does_not_move_the_schedule():
    clock = FakeClock()
    s = VerifySchedule(FakeVerify(), clock=clock)
    s.due(group(hours=24, last=T0))
    clock.wall_now += timedelta(hours=30)                  # set forward: not due
    assert not s.due(group(hours=24, last=T0))
    clock.wall_now -= timedelta(hours=60)                  # set back: still due after 24 h of elapsed time
    clock.mono_now += 24 * HOUR
    assert s.due(group(hours=24, last=T0))
