"""The reserved-capacity forecast (core.forecast): change rate from sync history, need, suggested fixes."""
from __future__ import annotations

import dataclasses
import types
from datetime import datetime, timedelta, timezone

import pytest

from core import forecast
from core.guru import GuruAction, reserved_forecast_problem
from core.snapshots import SyncStats

MIB = 1 << 20
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _sync(minute: float, unique: int, kind: str = "interval", outcome: str = "committed") -> SyncStats:
    start = T0 + timedelta(minutes=minute)
    return SyncStats(group="G", kind=kind, started=start, ended=start + timedelta(seconds=5), bytes_sent=unique,
                     bytes_payload=unique, unique_changed_bytes=unique, bytes_resent=0, duration_seconds=5.0,
                     recovery_point_time=start, outcome=outcome)


def test_no_rate_without_an_interval_sync():
    assert forecast.change_rate([]) is None
    assert forecast.change_rate([_sync(0, 100 * MIB, kind="initial")]) is None


def test_rate_is_unique_bytes_over_time_since_the_last_commit():
    history = [_sync(0, 500 * MIB, kind="initial"), _sync(10, 60 * MIB), _sync(20, 60 * MIB)]
    rate = forecast.change_rate(history, interval_seconds=600)
    assert rate.samples == 2
    assert rate.bytes_per_second == pytest.approx(60 * MIB / 600)
    assert rate.per_interval == 60 * MIB


def test_a_failed_attempt_counts_from_the_last_committed_capture():
    # The failed sync at 20 gave its regions back: the retry at 25 carries 25 - 10 minutes of changes.
    history = [_sync(0, 1, kind="initial"), _sync(10, 60 * MIB), _sync(20, 60 * MIB, outcome="failed: full"),
               _sync(25, 90 * MIB)]
    rate = forecast.change_rate(history, interval_seconds=600)
    # samples: 60 MiB / 10 min, 60 MiB / 10 min, 90 MiB / 15 min -> 6 MiB/min
    assert rate.bytes_per_second == pytest.approx(6 * MIB / 60)


def test_manual_groups_use_the_typical_time_between_syncs():
    history = [_sync(0, 1, kind="initial"), _sync(4, 8 * MIB), _sync(6, 4 * MIB), _sync(10, 8 * MIB)]
    rate = forecast.change_rate(history)
    assert rate.interval_seconds == 240  # median of 4, 2, 4 minutes
    assert rate.per_interval == pytest.approx(8 * MIB, rel=0.01)


def test_forecast_names_need_and_fixes():
    rate = forecast.ChangeRate(bytes_per_second=10 * MIB / 600, interval_seconds=600, samples=3)
    fc = forecast.forecast("SiteB/db_dr", rate, share=1.0, pending=2 * MIB, capacity=12 * MIB, used=1 * MIB,
                           volume_capacity=64 * MIB)
    assert fc.needed == 10 * MIB and fc.available == 11 * MIB
    assert fc.at_risk and not fc.fills  # 10 of 11: above the 80 % warning
    # 1.5 x 10 MiB + 1 MiB of logs = 16 MiB of 64 MiB -> 25 %
    assert fc.suggested_percent == 25
    # 11 MiB hold 1.5 x the changes of 11 / 15 x 10 min = 7.3 -> 7 min
    assert fc.suggested_interval_minutes == 7
    assert fc.percent_now == pytest.approx(18.75)


def test_pending_bytes_are_a_floor_of_the_need():
    rate = forecast.ChangeRate(bytes_per_second=1.0, interval_seconds=60, samples=1)
    fc = forecast.forecast("B/v", rate, 1.0, pending=30 * MIB, capacity=20 * MIB, used=0, volume_capacity=100 * MIB)
    assert fc.needed == 30 * MIB and fc.fills


def test_a_burst_never_forecasts_more_than_the_volume():
    # A 4 GiB image copied in within a minute, extrapolated to a 10-minute interval: 40 GiB of a 4 GiB volume.
    rate = forecast.ChangeRate(bytes_per_second=4096 * MIB / 60, interval_seconds=600, samples=3)
    fc = forecast.forecast("SiteB/db_dr", rate, 1.0, pending=0, capacity=819 * MIB, used=0,
                           volume_capacity=4096 * MIB)
    assert fc.needed == 4096 * MIB and fc.whole_volume and fc.fills and fc.suggested_percent == 100
    g = types.SimpleNamespace(name="G1", sync_mode="scheduled", sync_interval_minutes=10)
    grow = GuruAction("grow-reserved", "Increase", True, "", target="SiteB/db_dr", value=100.0)
    problem = reserved_forecast_problem(g, fc, grow)
    assert "rewrite the whole 4.0 GiB volume" in problem.cause and "40.0 GiB" not in problem.cause
    assert "needs about 4.0 GiB" in problem.cause


def test_suggested_percent_grows_and_is_capped():
    assert forecast.suggested_percent(1, 0, 100 * MIB, 20 * MIB) == 21  # always more than now
    assert forecast.suggested_percent(200 * MIB, 0, 100 * MIB, 20 * MIB) == 100
    assert forecast.suggested_interval(forecast.ChangeRate(100 * MIB, 600, 1), 10 * MIB) is None


def test_wizard_offers_a_size_only_with_history():
    assert forecast.initial_percent(None, 64 * MIB, 20) is None
    rate = forecast.ChangeRate(bytes_per_second=16 * MIB / 600, interval_seconds=600, samples=2)
    assert forecast.initial_percent(rate, 64 * MIB, 20) == 38  # 1.5 x 16 MiB of 64 MiB = 37.5 -> 38
    slow = dataclasses.replace(rate, bytes_per_second=1.0)
    assert forecast.initial_percent(slow, 64 * MIB, 20) == 20  # never below the default


def test_the_rate_counts_what_the_secondary_staged_when_the_history_has_it():
    """Zeros stage nothing and dirty blocks stage themselves: whole regions overstated the need."""
    history = [_sync(0, 1, kind="initial"),
               dataclasses.replace(_sync(10, 4096 * MIB), staged_bytes=0),  # a volume rewritten with zeros
               dataclasses.replace(_sync(20, 64 * MIB), staged_bytes=4 * MIB),  # scattered 4 KiB writes
               _sync(30, 6 * MIB)]  # recorded before staged bytes were counted: its regions
    rate = forecast.change_rate(history, interval_seconds=600)
    assert rate.bytes_per_second == pytest.approx(10 * MIB / 1800)


def test_a_pairs_pending_counts_the_blocks_written_not_their_regions():
    """A light random workload touches many regions but stages a few blocks of each."""
    rate = forecast.ChangeRate(bytes_per_second=1.0, interval_seconds=600, samples=3)
    history = [_sync(0, 1, kind="initial"), _sync(10, 600)]

    def side(array, role, **pair):
        rc = types.SimpleNamespace(capacity=819 * MIB, log_bytes=0, pit_bytes=0)
        p = types.SimpleNamespace(local_volume="db" if role == "primary" else "db_dr", remote_volume="db_dr",
                                  reserved_capacity=rc, **pair)
        return types.SimpleNamespace(array=array, role=role, sync_mode="scheduled", sync_interval_minutes=10,
                                     pairs=[p])

    primary = side("SiteA", "primary", unsynchronized_bytes=838 * MIB, unsynchronized_block_bytes=59 * MIB)
    [fc] = forecast.group_forecasts(primary, side("SiteB", "secondary"), history, {"SiteB/db_dr": 4096 * MIB})
    assert fc.needed == 59 * MIB and not fc.at_risk
    older = side("SiteA", "primary", unsynchronized_bytes=838 * MIB, unsynchronized_block_bytes=None)
    [fc] = forecast.group_forecasts(older, side("SiteB", "secondary"), history, {"SiteB/db_dr": 4096 * MIB})
    assert fc.needed == 838 * MIB and fc.fills  # a daemon from before: whole regions, on the safe side
