"""Never stuck, never falsely healthy: deltas that do not fit, syncs that keep failing, clock jumps.

SANtricity's ``deleteRecoveryPointIfNecessary`` lets a sync apply such a delta in
place, giving up the secondary's recovery point until the new one commits; without
it the pair fails and the administrator increases the reserved capacity. When the
reserved capacity is already as large as the volume, no increase can help: the
engine then resynchronizes in place by itself, says so, and takes a new recovery
point at the end. A transfer given up releases its staging space on the secondary.
Syncs that fail every time are a group status and a Guru problem; the schedule and
recovery point ages follow elapsed time, not a wall clock someone set.
"""
from __future__ import annotations

import os

import pytest

from core.errors import MirrorError
from test_replication_support import RS, make_pair, open_lab, read_file, wait_for


def _rand(n: int) -> bytes:
    return os.urandom(n)


def _staging_bytes(client, ref: str) -> int:
    return client.pair(ref).reserved_capacity.staging_bytes


def test_sync_with_delete_recovery_point_applies_a_delta_that_does_not_fit(client):
    make_pair(client, "4MiB", reserved_percent=100, secondary_reserved_percent=20)
    data = _rand(40 * RS)  # 2.5 MiB changed: more than 20 % of the secondary's volume
    client.host_write("SiteA/v", 0, data)
    with pytest.raises(MirrorError) as e:  # the SANtricity default: the pair fails
        client.sync_now("G", wait=True)
    assert e.value.code == "arvmRepositoryFull"
    assert client.group("G").status == "system_suspended"
    assert _staging_bytes(client, "SiteB/v") <= 64  # the abandoned transfer's staging space is released
    client.resume("G", delete_recovery_point_if_necessary=True)
    wait_for(lambda: client.group("G").last_sync.outcome == "committed", 20, "the in-place resync to commit")
    assert read_file(client.volume("SiteB/v").path, 0, len(data)) == data
    assert client.group("G").status == "optimal"
    secondary = client.pair("SiteB/v")
    assert secondary.recovery_point_available and secondary.status == "optimal"
    codes = [e.code for e in client.events()]
    assert "arvmResyncInPlace" in codes and "arvmRecoveryPointDeleted" in codes
    assert client.verify("G")["identical"]
    outcomes = [s.outcome for s in client.sync_history("G")]
    assert any(o.startswith("abandoned") for o in outcomes) and outcomes[-1] == "committed"


def test_a_delta_as_large_as_the_volume_resyncs_in_place_by_itself(client):
    """Reserved capacity at 100 % of the volume cannot stage a whole-volume delta: no dead end."""
    make_pair(client, "4MiB", reserved_percent=100, secondary_reserved_percent=100)
    data = _rand(64 * RS)  # every region of the 4 MiB volume
    client.host_write("SiteA/v", 0, data)
    client.sync_now("G")
    try:
        wait_for(lambda: client.group("G").last_sync.outcome == "committed"
                 and client.group("G").last_sync.bytes_payload == 64 * RS, 30, "the in-place resync to commit")
    except AssertionError:
        history = [(s.kind, s.outcome, s.bytes_payload) for s in client.sync_history("G")]
        raise AssertionError(f"no in-place commit; status {client.group('G').status}, history {history}, "
                             f"events {[e.code for e in client.events()][-8:]}") from None
    # What a host reads on the secondary. Between daemons the commit of an in-place resync can be
    # reported a moment before the secondary reads the new data (a product race, reported): wait briefly.
    wait_for(lambda: client.host_read("SiteB/v", 0, len(data)) == data, 5, "the secondary to read the delta")
    assert client.group("G").status == "optimal"
    assert client.pair("SiteB/v").recovery_point_available
    assert "arvmResyncInPlace" in [e.code for e in client.events("SiteA")]


def test_forced_promotion_is_refused_while_a_secondary_is_resynchronized_in_place(lab_home):
    c = open_lab(lab_home, link_bandwidth=2 << 20)  # slow: the in-place resync still runs when the link is cut
    try:
        make_pair(c, "8MiB", reserved_percent=100, secondary_reserved_percent=100)
        c.host_write("SiteA/v", 0, _rand(128 * RS))
        c.sync_now("G")
        wait_for(lambda: "arvmRecoveryPointDeleted" in [e.code for e in c.events("SiteB")], 20,
                 "the secondary to give up its recovery point")
        c.lab_link(True)
        with pytest.raises(MirrorError) as e:
            c.promote("G", "SiteB", force=True)
        assert e.value.code == "arvmRecoveryPointUnavailable"
        assert "no recovery point image" in e.value.message
    finally:
        c.close()


def test_syncs_that_keep_failing_are_a_group_status_and_a_guru_problem(client, monkeypatch):
    """A secondary that cannot write (ENOSPC) fails every sync: never Optimal and healthy meanwhile."""
    make_pair(client, "4MiB")
    receiver = client.engine.daemon("SiteB").engine.receiver  # the secondary's receiver, in SiteB's daemon

    def no_space(array, transfer, volume, regions):
        receiver.errors[transfer] = MirrorError(f"short write to the staging journal of {volume}: "
                                                "No space left on device", code="volumeFailed")
    monkeypatch.setattr(receiver, "regions", no_space)
    for attempt in range(3):
        client.host_write("SiteA/v", attempt * RS, _rand(RS))
        with pytest.raises(MirrorError):
            client.sync_now("G", wait=True)
    g = client.group("G")
    assert g.status == "sync_failing"
    problem = next(p for p in client.guru() if p.id == "sync-failing:G")
    assert "No space left on device" in problem.cause and problem.severity == "critical"
    monkeypatch.undo()  # space freed: the Guru's action retries, and one commit clears the status
    client.guru_fix("sync-failing:G", "sync-now")
    wait_for(lambda: client.group("G").status == "optimal", 20, "the retry to commit")
    assert not [p for p in client.guru() if p.id == "sync-failing:G"]


def test_scheduling_follows_elapsed_time_not_the_wall_clock(client, monkeypatch):
    """The wall clock set forward two hours: no spurious 'old recovery point', and the jump is an event."""
    import time as time_module

    make_pair(client, "4MiB", sync_mode="scheduled", sync_interval_minutes=1)
    wait_for(lambda: client.group("G").last_sync is not None, 10, "the initial sync")
    real_time = time_module.time
    monkeypatch.setattr(time_module, "time", lambda: real_time() + 7200)  # as if someone set the clock
    wait_for(lambda: "systemClockChanged" in [e.code for e in client.events("SiteA")], 10, "the clock jump event")
    assert client.group("G").status == "optimal"
    assert not [p for p in client.guru() if p.id.startswith("recovery-point-age")]
    assert "arvmRecoveryPointAgeAlert" not in [e.code for e in client.events("SiteA")]
    nxt = client.group("G").next_sync  # shown on the new wall clock, still about one interval away
    from datetime import datetime, timezone

    assert nxt is not None and 0 < (nxt - datetime.fromtimestamp(time_module.time(), timezone.utc)).total_seconds() <= 60


def test_a_transfer_given_up_after_a_restart_reports_what_it_sent_again(lab_home):
    """After a reboot the primary starts a fresh transfer: what the secondary had staged is resent, and counted."""
    c = open_lab(lab_home, link_bandwidth=4 << 20)
    try:
        make_pair(c, "16MiB")
        c.host_write("SiteA/v", 0, _rand(128 * RS))  # 8 MiB: about two seconds on the link
        c.sync_now("G")
        wait_for(lambda: c.pair("SiteB/v").reserved_capacity.staging_bytes >= 2 << 20, 20,
                 "part of the delta staged on the secondary")
    finally:
        c.close()  # the process goes away mid-transfer
    for hint in (lab_home / "arrays" / "SiteA" / "reserved" / ".groups").glob("*.inflight"):
        hint.unlink()  # as after a reboot: the resume hint does not count
    c = open_lab(lab_home)  # both daemons start again
    try:
        stats = c.sync_now("G", wait=True, after_running=True)
        history = c.sync_history("G")
        resent = [s for s in history if s.bytes_resent]
        assert resent and resent[-1].bytes_resent >= 2 << 20, [(s.outcome, s.bytes_resent) for s in history]
        assert stats.outcome == "committed" and c.verify("G")["identical"]
    finally:
        c.close()
