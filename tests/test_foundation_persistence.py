"""Foundation: state survives a restart, the event log, the data directory lock, the schema version."""
from __future__ import annotations

import os
import sqlite3
from datetime import datetime

import pytest

from core import iscsi_settings
from core.errors import MirrorError
from core.runtime import BlockingEngine
from core.store.database import SCHEMA_VERSION
from test_foundation_support import config_events, remove_pair, world
from daemon_lab import lab_engine


def test_state_survives_a_restart(lab_home):
    with lab_engine(lab_home) as c:
        c.create_volume("SiteA/extra", "1GiB", security="fips", drive_security=True, raid_level="10")
        c.create_group("g1", "SiteA", "SiteB", sync_interval_minutes=7, priority="high", sync_alert_minutes=4,
                       recovery_point_alert_minutes=8, reserved_alert_percent=70)
        c.add_pair("g1", "SiteA/db", "SiteB/db_dr", reserved_percent=25)
        before = world(c)
        events_before = [(e.array, e.id, e.time, e.severity, e.object, e.code, e.message) for e in config_events(c)]
    with lab_engine(lab_home) as c:  # both arrays' daemons started again
        after = world(c)
        assert after == before
        events_after = [(e.array, e.id, e.time, e.severity, e.object, e.code, e.message) for e in config_events(c)]
        assert events_after[:len(events_before)] == events_before
        g = c.group("g1")
        assert (g.sync_interval_minutes, g.priority, g.reserved_alert_percent) == (7, "high", 70)
        assert [p.local_volume for p in g.pairs] == ["db"]
        v = c.volume("SiteA/extra")
        assert v.security == "fips" and v.drive_security and v.raid_level == "10"
        # and it keeps working
        remove_pair(c, "SiteA/db")


def test_event_log_records_time_severity_object_code_message(client):
    t0 = datetime.now().astimezone()
    client.create_group("g1", "SiteA", "SiteB")
    created = [e for e in client.events() if e.code == "arvmGroupCreated"]
    assert {e.array for e in created} == {"SiteA", "SiteB"}
    for e in created:
        assert isinstance(e.time, datetime) and e.time.tzinfo is not None
        assert abs((e.time - t0).total_seconds()) < 60
        assert e.severity == "info"
        assert e.object == "g1"
        assert "g1" in e.message and ("primary" in e.message or "secondary" in e.message)
    # filtering by array and limits
    assert all(e.array == "SiteB" for e in client.events("SiteB"))
    assert len(client.events(limit=1)) == 1
    # the lab's own creation is logged too
    assert {e.code for e in client.events(limit=1_000_000)} >= {"arrayCreated", "volumeCreated"}


def test_pair_events_name_group_and_volume(client):
    client.create_group("g1", "SiteA", "SiteB")
    client.add_pair("g1", "SiteA/db", "SiteB/db_dr")
    events = client.events(limit=1_000_000)
    pair_ev = [e for e in events if e.code == "arvmPairCreated"]
    assert {e.object for e in pair_ev} == {"g1/db", "g1/db_dr"}
    assert all(e.severity == "info" for e in pair_ev)


def test_events_persist_across_restart(lab_home):
    with lab_engine(lab_home) as c:
        c.create_group("g1", "SiteA", "SiteB")
        n = len(c.events(limit=1_000_000))
    with lab_engine(lab_home) as c:
        events = c.events(limit=1_000_000)
        assert len(events) >= n
        assert any(e.code == "arvmGroupCreated" and e.array == "SiteB" for e in events)


def test_second_engine_on_the_same_array_is_refused_and_names_the_holder(lab_home):
    site_a = lab_home / "arrays" / "SiteA"
    with BlockingEngine(site_a, purpose="first-holder") as first:
        second = BlockingEngine(site_a, purpose="second")
        with pytest.raises(MirrorError) as info:
            second.start()
        err = info.value
        assert err.code == "dataDirectoryLocked"
        assert f"pid {os.getpid()}" in err.message
        assert "first-holder" in err.message
        assert "stop that process" in err.message
        # the first engine still works
        first.create_volume("SiteA/kept", "1MiB")
        # and the failed attempt did not take or break any lock: still refused
        with pytest.raises(MirrorError):
            BlockingEngine(site_a, purpose="third").start()
    # once the first is closed, a new engine opens
    with BlockingEngine(site_a, purpose="pytest") as c:
        assert "kept" in [v.name for v in c.volumes()]


def _db(home, array):
    return sqlite3.connect(os.path.join(home, "arrays", array, "config.db"))


def test_opening_records_schema_version(lab_home):
    for array in ("SiteA", "SiteB"):
        with BlockingEngine(lab_home / "arrays" / array, purpose="pytest"):
            pass
        con = _db(lab_home, array)
        try:
            versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version")]
        finally:
            con.close()
        assert versions and versions[-1] == SCHEMA_VERSION
        assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_newer_schema_is_refused_with_a_clear_message(lab_home):
    newer = SCHEMA_VERSION + 5
    con = _db(lab_home, "SiteB")
    with con:
        con.execute("INSERT INTO schema_version (version, applied) VALUES (?, CURRENT_TIMESTAMP)", (newer,))
    con.close()
    site_b = lab_home / "arrays" / "SiteB"
    with pytest.raises(MirrorError) as info:
        BlockingEngine(site_b, purpose="pytest").start()
    err = info.value
    assert err.code == "schemaTooNew"
    assert f"schema {newer}" in err.message and f"knows {SCHEMA_VERSION}" in err.message
    assert "newer" in err.message and "upgrade" in err.message
    assert "SiteB" in err.message  # names the database
    # the refusal released the lock: once the database is back, the array opens
    con = _db(lab_home, "SiteB")
    with con:
        con.execute("DELETE FROM schema_version WHERE version = ?", (newer,))
    con.close()
    with BlockingEngine(site_b, purpose="pytest") as c:
        assert len(c.volumes()) == 3


def test_a_schema_1_database_gains_the_staged_bytes_of_its_sync_history(lab_home):
    """An array created by the release before keeps its history; rows it recorded have no staged bytes."""
    site_b = lab_home / "arrays" / "SiteB"
    with BlockingEngine(site_b, purpose="pytest"):
        pass
    con = _db(lab_home, "SiteB")
    with con:  # the table as schema 1 had it
        con.execute("ALTER TABLE sync_stat DROP COLUMN staged_bytes")
        con.execute("DELETE FROM schema_version WHERE version > 1")
        con.execute("INSERT INTO sync_stat (group_name, kind, started, ended, bytes_sent, bytes_payload, "
                    "unique_changed_bytes, bytes_resent, duration_seconds, outcome) VALUES "
                    "('G', 'interval', '2026-01-01 00:00:00', '2026-01-01 00:00:05', 1, 2, 3, 0, 5.0, 'committed')")
    con.close()
    with BlockingEngine(site_b, purpose="pytest"):
        pass
    con = _db(lab_home, "SiteB")
    try:
        rows = con.execute("SELECT unique_changed_bytes, staged_bytes FROM sync_stat").fetchall()
        versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        con.close()
    assert rows == [(3, None)] and versions[-1] == SCHEMA_VERSION


def test_a_schema_2_database_gains_the_iscsi_settings_at_their_defaults(lab_home):
    """An array created before the iSCSI global settings opens with the defaults, and keeps what is set then."""
    site_b = lab_home / "arrays" / "SiteB"
    with BlockingEngine(site_b, purpose="pytest"):
        pass
    con = _db(lab_home, "SiteB")
    with con:  # as schema 2 had it
        con.execute("DROP TABLE iscsi_settings")
        con.execute("DELETE FROM schema_version WHERE version > 2")
    con.close()
    with BlockingEngine(site_b, purpose="pytest") as c:
        assert c.array("SiteB").iscsi == iscsi_settings.DEFAULT
        c.set_iscsi_settings("SiteB", vlan=7)
    with BlockingEngine(site_b, purpose="pytest") as c:
        assert c.array("SiteB").iscsi.vlan == 7
