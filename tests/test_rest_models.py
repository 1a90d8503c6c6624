"""Web Services JSON <-> snapshots: a REST client rebuilds exactly what the engine produced."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from core.domain import GroupStatus, PairStatus
from core.rest import models
from core.snapshots import (Candidate, EventRecord, GroupSnapshot, PairSnapshot, ReservedCapacitySnapshot,
                            SyncProgress, SyncStats, VolumeSnapshot)

T0 = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)


def wire(data):
    """What crosses HTTP: JSON text and back."""
    return json.loads(json.dumps(data))


def volume(**changes) -> VolumeSnapshot:
    v = VolumeSnapshot(array="SiteA", name="db", capacity=4 << 30, pool="nvme_pool", drive_type="nvme",
                       raid_level="10", segment_size=256 << 10, security="fde", drive_security=True,
                       data_assurance=True, resource_partitioning=False, preferred_owner="A", current_owner="B",
                       path="/data/SiteA/volumes/db.img", failed=False, mirror_group="G", role="primary",
                       host_writable=True, nbd_uri="nbd://127.0.0.1:10809/db")
    return dataclasses.replace(v, **changes)


def pair(**changes) -> PairSnapshot:
    p = PairSnapshot(array="SiteA", group="G", local_volume="db", remote_array="SiteB", remote_volume="db_dr",
                     role="primary", status="synchronizing", recovery_point_available=True, last_recovery_point=T0,
                     unsynchronized_bytes=65536,
                     progress=SyncProgress("interval", 1 << 20, 4 << 20, 2.5e6, 1.25, T0 + timedelta(seconds=3)),
                     reserved_capacity=ReservedCapacitySnapshot("SiteA", "db", "nvme_pool", "nvme", 800 << 20,
                                                                1 << 20, 4096, 0), reason="")
    return dataclasses.replace(p, **changes)


def group(**changes) -> GroupSnapshot:
    stats = SyncStats("G", "interval", T0, T0 + timedelta(seconds=2), 1000, 2000, 1500, 0, 2.0, T0, "committed")
    g = GroupSnapshot(array="SiteA", name="G", remote_array="SiteB", role="primary", channel="iscsi",
                      sync_mode="manual", sync_interval_minutes=7, priority="high", resync_policy="manual",
                      sync_alert_minutes=5, recovery_point_alert_minutes=10, reserved_alert_percent=75,
                      status="synchronizing", pairs=(pair(), pair(local_volume="logs", remote_volume="logs_dr",
                                                               progress=None, status="optimal")),
                      last_recovery_point=T0, next_sync=None, progress=SyncProgress("interval", 5, 10, 1.0, None),
                      last_sync=stats, unsynchronized_bytes=65536, host_writable=True)
    return dataclasses.replace(g, **changes)


@pytest.mark.parametrize("snap, to_ws, from_ws", [
    (volume(), models.volume_to_ws, models.volume_from_ws),
    (volume(raid_level="6", security="none", drive_security=False, role=None, mirror_group=None, nbd_uri=None,
            failed=True), models.volume_to_ws, models.volume_from_ws),
    (pair(), models.pair_to_ws, models.pair_from_ws),
    (pair(status="failed", progress=None, last_recovery_point=None, recovery_point_available=False,
          reason="reserved capacity full: the recovery point image is unavailable"), models.pair_to_ws,
     models.pair_from_ws),
    (group(), models.group_to_ws, models.group_from_ws),
    (group(sync_mode="scheduled", pairs=(), last_sync=None, progress=None, last_recovery_point=None,
           next_sync=T0, status="role_conflict"), models.group_to_ws, models.group_from_ws),
    (EventRecord("SiteA", 42, T0, "critical", "G/db", "arvmRoleConflict", "Role conflict in G — ünïcode"),
     models.event_to_ws, models.event_from_ws),
    (Candidate(volume(), False, ("too small: grow it",), ("arvmSecondaryCapacityTooSmall",), ("verify FIPS",)),
     models.candidate_to_ws, models.candidate_from_ws),
    (pair().reserved_capacity, lambda rc: models.utilization_to_ws(pair(reserved_capacity=rc)),
     models.utilization_from_ws),
    (group().last_sync, models.stats_to_ws, models.stats_from_ws),
])
def test_round_trip_gives_back_an_equal_snapshot(snap, to_ws, from_ws):
    assert from_ws(wire(to_ws(snap))) == snap


def test_round_trip_of_the_engines_own_snapshots(client):
    client.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    client.add_pair("G", "SiteA/logs", "SiteB/logs_dr")
    client.sync_now("G", wait=True, after_running=True)
    for a in client.arrays_list():
        assert models.array_from_ws(wire(models.array_to_ws(a))) == a
        for p in a.pools:
            assert models.pool_from_ws(wire(models.pool_to_ws(p, a.name))) == p
    for v in client.volumes():
        assert models.volume_from_ws(wire(models.volume_to_ws(v))) == v
    for g in client.groups():
        assert models.group_from_ws(wire(models.group_to_ws(g))) == g
    for problem in client.guru():
        assert models.problem_from_ws(wire(models.problem_to_ws(problem))) == problem
    for c in client.candidates("SiteA/db", "SiteB"):
        assert models.candidate_from_ws(wire(models.candidate_to_ws(c))) == c


def test_web_services_fields_keep_their_meaning():
    g = models.group_to_ws(group(), remote_wwn="600A0980ABCDEF", volume_sizes={"db": 4 << 30})
    assert g["syncIntervalMinutes"] == 0 and g["scheduledSyncIntervalMinutes"] == 7  # manual
    assert (g["localRole"], g["remoteRole"], g["connectionType"], g["remoteTargetWwn"]) == (
        "primary", "secondary", "iscsi", "600A0980ABCDEF")
    p = g["pairs"][0]
    assert p["localVolume"] == models.volume_ref("SiteA", "db") and p["localVolumeName"] == "db"
    assert p["remoteVolume"] == models.volume_ref("SiteB", "db_dr") and p["totalSizeInBytes"] == str(4 << 30)
    assert p["lastRecoveryPointTime"] == str(int(T0.timestamp()))
    v = models.volume_to_ws(volume())
    assert (v["capacity"], v["raidLevel"], v["raidLevelNumber"], v["securityType"]) == (str(4 << 30), "raid1", "10",
                                                                                         "enabled")
    prog = models.progress_to_ws(group())
    assert (prog["groupPercentComplete"], prog["groupTimeToCompletion"], prog["groupSyncBytes"]) == (50, None, "10")
    assert [m["percentComplete"] for m in prog["memberProgress"]] == [25, 100]
    assert prog["memberProgress"][0]["timeToCompletion"] == 1  # 1.25 s left: under a minute, rounded up
    assert models.progress_from_ws(wire(prog)) == group().progress


@pytest.mark.parametrize("status, state, activity, role_change", [
    ("initial_sync", "initialSync", "active", "none"),
    ("synchronizing", "optimal", "active", "none"),
    ("optimal", "optimal", "idle", "none"),
    ("system_suspended", "degraded", "internallySuspended", "none"),
    ("user_suspended", "optimal", "userSuspended", "none"),
    ("paused", "optimal", "paused", "none"),
    ("orphan", "degraded", "internallySuspended", "none"),
    ("role_change_pending", "optimal", "active", "pending"),
    ("role_change_in_progress", "optimal", "active", "inProgress"),
    ("role_conflict", "degraded", "internallySuspended", "none"),
])
def test_every_group_status_maps_onto_the_web_services_enums(status, state, activity, role_change):
    optimal_pairs = tuple(dataclasses.replace(p, status="optimal") for p in group().pairs)
    ws = models.group_to_ws(group(status=status, pairs=optimal_pairs))
    assert (ws["groupState"], ws["syncActivity"], ws["roleChangeProgress"]) == (state, activity, role_change)
    assert ws["orphanGroup"] is (status == "orphan")
    assert ws["remoteRole"] == ("primary" if status == "role_conflict" else "secondary")
    assert {s.value for s in GroupStatus} >= {status}


def test_a_full_reserved_capacity_is_rp_failed_and_idle_groups_show_idle():
    lost = pair(status="failed", reason="reserved capacity full: the recovery point image is unavailable")
    assert models.group_to_ws(group(status="system_suspended", pairs=(lost,)))["groupState"] == "rpFailed"
    assert models.group_to_ws(group(status="initial_sync", progress=None))["syncActivity"] == "idle"


@pytest.mark.parametrize("status, kind, rp, member", [
    ("synchronizing", "initial", False, "initialSync"),
    ("synchronizing", "interval", True, "optimal"),
    ("optimal", None, True, "optimal"),
    ("incomplete", None, False, "incomplete"),
    ("failed", None, True, "failed"),
    ("orphan", None, True, "orphan"),
    ("stopped", None, True, "stopped"),
])
def test_every_pair_status_maps_onto_member_state(status, kind, rp, member):
    prog = SyncProgress(kind, 1, 2, 0.0, None) if kind else None
    assert models.pair_to_ws(pair(status=status, progress=prog, recovery_point_available=rp))["memberState"] == member
    assert status in {s.value for s in PairStatus}


def test_refs_are_stable_web_services_ids():
    ref = models.group_ref("SiteA", "G")
    assert ref == models.group_ref("SiteA", "G") != models.group_ref("SiteB", "G")
    assert len(ref) == 40 and ref == ref.upper() and int(ref, 16) >= 0
    assert models.group_wwn("G") == models.group_to_ws(group())["worldWideName"] == \
        models.group_to_ws(group(array="SiteB", role="secondary"))["worldWideName"]
    assert models.volume_ref("SiteA", "db").startswith("02") and models.pool_ref("SiteA", "p").startswith("04")
