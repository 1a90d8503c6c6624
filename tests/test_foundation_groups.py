"""Foundation: mirror consistency groups (SPEC §2): create on both arrays, settings rules, set, delete."""
from __future__ import annotations

import pytest

from test_foundation_support import refused, remove_pair, world


def sides(client, name):
    return {g.array: g for g in client.groups() if g.name == name}


def test_create_is_visible_on_both_arrays_with_own_role(client):
    g = client.create_group("g1", "SiteA", "SiteB")
    assert g.array == "SiteA" and g.role == "primary" and g.remote_array == "SiteB"
    s = sides(client, "g1")
    assert set(s) == {"SiteA", "SiteB"}
    assert s["SiteA"].role == "primary" and s["SiteA"].remote_array == "SiteB"
    assert s["SiteB"].role == "secondary" and s["SiteB"].remote_array == "SiteA"
    for side in s.values():  # defaults (SPEC §2)
        assert side.channel == "fc" and side.sync_mode == "scheduled" and side.sync_interval_minutes == 10
        assert side.priority == "medium" and side.resync_policy == "automatic"
        assert (side.sync_alert_minutes, side.recovery_point_alert_minutes, side.reserved_alert_percent) == (10, 30, 80)
        assert side.pairs == ()
    assert s["SiteA"].host_writable and not s["SiteB"].host_writable
    assert [g.name for g in client.groups("SiteB")] == ["g1"]
    codes = {(e.array, e.code) for e in client.events()}
    assert {("SiteA", "arvmGroupCreated"), ("SiteB", "arvmGroupCreated")} <= codes


def test_create_with_settings(client):
    client.create_group("g1", "SiteA", "SiteB", sync_interval_minutes=5, priority="high", resync_policy="manual",
                        sync_alert_minutes=3, recovery_point_alert_minutes=6, reserved_alert_percent=50)
    for side in sides(client, "g1").values():
        assert side.sync_interval_minutes == 5 and side.priority == "high" and side.resync_policy == "manual"
        assert (side.sync_alert_minutes, side.recovery_point_alert_minutes, side.reserved_alert_percent) == (3, 6, 50)


def test_manual_mode(client):
    client.create_group("g1", "SiteA", "SiteB", sync_mode="manual")
    assert {s.sync_mode for s in sides(client, "g1").values()} == {"manual"}


def test_duplicate_name_is_refused(client):
    client.create_group("g1", "SiteA", "SiteB")
    err = refused(client, "arvmGroupUserLabelExists", client.create_group, "g1", "SiteA", "SiteB")
    assert "g1" in err.message and "another name" in err.message


def test_duplicate_name_in_the_other_direction_is_refused(client):
    client.create_group("g1", "SiteA", "SiteB")
    err = refused(client, "arvmGroupUserLabelExists", client.create_group, "g1", "SiteB", "SiteA")
    assert "g1" in err.message


def test_name_longer_than_30_is_refused(client):
    err = refused(client, "arvmInvalidGroupLabel", client.create_group, "g" * 31, "SiteA", "SiteB")
    assert "30 characters" in err.message
    assert client.create_group("g" * 30, "SiteA", "SiteB").name == "g" * 30


@pytest.mark.parametrize("interval", [0, -5, 1441])
def test_interval_out_of_range_is_refused(client, interval):
    err = refused(client, "arvmInvalidSyncInterval", client.create_group, "g1", "SiteA", "SiteB",
                  sync_interval_minutes=interval)
    assert f"{interval} min" in err.message and "1 to 1440" in err.message and "manual" in err.message


def test_interval_of_one_minute_is_accepted(client):
    assert client.create_group("g1", "SiteA", "SiteB", sync_interval_minutes=1).sync_interval_minutes == 1


def test_recovery_point_threshold_below_twice_sync_threshold_is_refused(client):
    err = refused(client, "arvmInvalidRecoveryPointThreshold", client.create_group, "g1", "SiteA", "SiteB",
                  sync_alert_minutes=10, recovery_point_alert_minutes=19)
    assert "19 min" in err.message and "twice" in err.message and "20 min or more" in err.message


def test_recovery_point_threshold_exactly_twice_is_accepted(client):
    g = client.create_group("g1", "SiteA", "SiteB", sync_alert_minutes=10, recovery_point_alert_minutes=20)
    assert g.recovery_point_alert_minutes == 20
    assert sides(client, "g1")["SiteB"].recovery_point_alert_minutes == 20


@pytest.mark.parametrize("pct", [0, 101, -1])
def test_bad_reserved_alert_percent_is_refused(client, pct):
    err = refused(client, "arvmInvalidRepositoryThreshold", client.create_group, "g1", "SiteA", "SiteB",
                  reserved_alert_percent=pct)
    assert f"{pct} %" in err.message and "1 to 100" in err.message


def test_non_numeric_setting_is_refused(client):
    err = refused(client, "invalidInput", client.create_group, "g1", "SiteA", "SiteB", sync_interval_minutes="ten")
    assert "'ten'" in err.message and "whole number" in err.message


def test_bad_priority_word_is_refused(client):
    err = refused(client, "invalidInput", client.create_group, "g1", "SiteA", "SiteB", priority="urgent")
    assert "lowest, low, medium, high, highest" in err.message


def test_same_array_as_primary_and_secondary_is_refused(client):
    err = refused(client, "arvmInvalidRemoteArray", client.create_group, "g1", "SiteA", "SiteA")
    assert "another array" in err.message


def test_unknown_arrays_are_refused(client):
    err = refused(client, "arrayNotFound", client.create_group, "g1", "SiteX", "SiteB")
    assert "SiteX" in err.message
    err = refused(client, "arvmRemoteArrayUnknown", client.create_group, "g1", "SiteA", "SiteX")
    assert "SiteX" in err.message


def test_set_changes_settings_on_both_sides(client):
    client.create_group("g1", "SiteA", "SiteB")
    g = client.update_group("g1", sync_interval_minutes=5, priority="highest", resync_policy="manual",
                            sync_alert_minutes=7, recovery_point_alert_minutes=14, reserved_alert_percent=90)
    assert g.sync_interval_minutes == 5
    for side in sides(client, "g1").values():
        assert side.sync_interval_minutes == 5 and side.priority == "highest" and side.resync_policy == "manual"
        assert (side.sync_alert_minutes, side.recovery_point_alert_minutes, side.reserved_alert_percent) == (7, 14, 90)
    assert sides(client, "g1")["SiteB"].role == "secondary"
    codes = {(e.array, e.code) for e in client.events()}
    assert {("SiteA", "arvmGroupSettingsChanged"), ("SiteB", "arvmGroupSettingsChanged")} <= codes


def test_set_keeps_settings_not_given(client):
    client.create_group("g1", "SiteA", "SiteB", priority="low")
    client.update_group("g1", sync_interval_minutes=15)
    for side in sides(client, "g1").values():
        assert side.priority == "low" and side.sync_interval_minutes == 15


def test_set_to_manual_mode(client):
    client.create_group("g1", "SiteA", "SiteB")
    client.update_group("g1", sync_mode="manual")
    assert {s.sync_mode for s in sides(client, "g1").values()} == {"manual"}


@pytest.mark.parametrize("settings, code", [
    ({"sync_interval_minutes": 0}, "arvmInvalidSyncInterval"),
    ({"recovery_point_alert_minutes": 19}, "arvmInvalidRecoveryPointThreshold"),
    ({"sync_alert_minutes": 16}, "arvmInvalidRecoveryPointThreshold"),  # default RP alert 30 < 2 x 16
    ({"reserved_alert_percent": 0}, "arvmInvalidRepositoryThreshold"),
])
def test_set_refuses_bad_settings_and_changes_nothing(client, settings, code):
    client.create_group("g1", "SiteA", "SiteB")
    refused(client, code, client.update_group, "g1", **settings)


def test_set_unknown_group_is_refused(client):
    err = refused(client, "arvmGroupNotFound", client.update_group, "nope", priority="high")
    assert "group list" in err.message


def test_delete_non_empty_is_refused(client):
    client.create_group("g1", "SiteA", "SiteB")
    client.add_pair("g1", "SiteA/db", "SiteB/db_dr")
    err = refused(client, "arvmGroupNotEmpty", client.delete_group, "g1")
    assert "g1" in err.message and "1 mirrored pair" in err.message and "remove them first" in err.message


def test_delete_empty_removes_both_sides(client):
    before = world(client)
    client.create_group("g1", "SiteA", "SiteB")
    client.delete_group("g1")
    assert client.groups() == []
    after = world(client)
    assert after["volumes"] == before["volumes"] and after["pool_free"] == before["pool_free"]
    codes = {(e.array, e.code) for e in client.events()}
    assert {("SiteA", "arvmGroupDeleted"), ("SiteB", "arvmGroupDeleted")} <= codes
    # the name is free again on both arrays
    client.create_group("g1", "SiteB", "SiteA")
    assert sides(client, "g1")["SiteB"].role == "primary"


def test_delete_after_removing_the_last_pair(client):
    client.create_group("g1", "SiteA", "SiteB")
    client.add_pair("g1", "SiteA/db", "SiteB/db_dr")
    remove_pair(client, "SiteA/db")
    client.delete_group("g1")
    assert client.groups() == []


def test_delete_unknown_group_is_refused(client):
    refused(client, "arvmGroupNotFound", client.delete_group, "nope")
