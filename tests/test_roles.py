"""Scenario tests of roles, failover and recovery (SPEC §2 "Roles", "Orphans", "Controller ownership").

Each asserts what a user sees on BOTH arrays: group/pair status, host write access, bytes.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.errors import CommunicationError, HostWriteRefused, MirrorError, VolumeFailed
from test_replication_support import manual_mirror

RS = 65536  # the default region size


def wait_until(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def writable(client, ref) -> bool:
    """What hosts see (the same flag every host write checks); refused writes raise."""
    ok = bool(client.volume(ref).host_writable)
    if not ok:
        with pytest.raises((HostWriteRefused, VolumeFailed)):
            client.host_write(ref, 0, b"?")
    return ok


@pytest.fixture
def mirror(client):
    """Group G: SiteA/v (primary) -> SiteB/v_dr, initial sync done."""
    return manual_mirror(client, first_write=b"A0" * 2048)


def both(client, name="G"):
    return client.group(name, "SiteA"), client.group(name, "SiteB")


def test_normal_role_change_is_lossless_and_tracks_new_writes(mirror):
    c = mirror
    c.host_write("SiteA/v", 3 * RS, b"last" * 1024)  # not synced yet: the role change must carry it
    c.role_change("G", "SiteB")
    a, b = both(c)
    assert (a.role, b.role) == ("secondary", "primary")
    assert (a.status, b.status) == ("optimal", "optimal")
    assert c.host_read("SiteB/v_dr", 3 * RS, 4) == b"last"
    assert not writable(c, "SiteA/v") and writable(c, "SiteB/v_dr")
    assert not a.host_writable and b.host_writable
    c.host_write("SiteB/v_dr", 7 * RS, b"new!" * 1024)
    stats = c.sync_now("G", wait=True)
    assert stats.bytes_payload == RS  # only the new write, not what the swap carried
    assert c.host_read("SiteA/v", 7 * RS, 4) == b"new!"
    # and back, from the other side's words
    c.demote("G", "SiteB")
    a, b = both(c)
    assert (a.role, b.role) == ("primary", "secondary")
    assert writable(c, "SiteA/v") and not writable(c, "SiteB/v_dr")


def test_pending_role_change_can_be_cancelled(mirror):
    c = mirror
    for site in ("SiteA", "SiteB"):  # each array's role coordinator: a pending change waits 30 s to start
        c.engine.daemon(site).engine.roles.role_change_delay = 30
    c.role_change("G", "SiteB", wait=False)
    a, b = both(c)
    assert (a.status, b.status) == ("role_change_pending", "role_change_pending")
    with pytest.raises(MirrorError) as e:
        c.role_change("G", "SiteB")
    assert e.value.code == "arvmRoleChangePending"
    c.role_cancel("G")
    a, b = both(c)
    assert (a.role, b.role, a.status, b.status) == ("primary", "secondary", "optimal", "optimal")
    assert writable(c, "SiteA/v") and not writable(c, "SiteB/v_dr")
    with pytest.raises(MirrorError) as e:
        c.role_cancel("G")
    assert e.value.code == "arvmNoRoleChangePending"


def test_forced_promotion_rolls_back_to_recovery_point(mirror):
    c = mirror
    c.host_write("SiteA/v", 2 * RS, b"X" * 4096)  # never reaches SiteB
    c.lab_link(True)
    with pytest.raises(MirrorError) as e:
        c.promote("G", "SiteB")
    assert e.value.code == "arvmRemoteArrayUnreachable"
    c.promote("G", "SiteB", force=True)
    a, b = both(c)
    assert (a.role, b.role) == ("primary", "primary")
    assert writable(c, "SiteB/v_dr") and writable(c, "SiteA/v")
    assert c.host_read("SiteB/v_dr", 0, 4) == b"A0A0"
    assert c.host_read("SiteB/v_dr", 2 * RS, 1) == b"\0"
    assert c.pair("SiteB/v_dr").unsynchronized_bytes == 0


def test_forced_promotion_refusals_name_the_rule(client):
    c = client
    c.create_volume("SiteA/v", "16MiB")
    c.create_volume("SiteB/v_dr", "16MiB")
    c.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    c.lab_link(True)
    with pytest.raises(MirrorError) as e:
        c.promote("G", "SiteB", force=True)
    assert e.value.code == "arvmGroupEmpty" and "no members" in e.value.message
    c.lab_link(False)
    for site in ("SiteA", "SiteB"):
        c.engine.daemon(site).engine.roles.role_change_delay = 0
    c.host_write("SiteA/v", 0, b"x" * 512)
    c.add_pair("G", "SiteA/v", "SiteB/v_dr")
    c.lab_link(True)  # before the initial sync ran
    row = c.call(lambda: _siteb(c).get_array("SiteB").group("G").pairs[0])
    if not row.initial_sync_done:
        with pytest.raises(MirrorError) as e:
            c.promote("G", "SiteB", force=True)
        assert e.value.code == "arvmInitialSyncInProgress"
    c.lab_link(False)
    c.sync_now("G", wait=True)
    c.volume_fail("SiteB/v_dr")
    c.lab_link(True)
    with pytest.raises(MirrorError) as e:
        c.promote("G", "SiteB", force=True)
    assert e.value.code == "arvmMemberVolumeFailed"
    c.volume_repair("SiteB/v_dr")
    # no recovery point image (reserved capacity was full)
    c.call(lambda: _set_rp(_siteb(c), False))
    with pytest.raises(MirrorError) as e:
        c.promote("G", "SiteB", force=True)
    assert e.value.code == "arvmRecoveryPointUnavailable"


def _siteb(c):
    """SiteB's own engine, inside its daemon."""
    return c.engine.daemon("SiteB").engine


def _set_rp(engine, value):
    a = engine.get_array("SiteB")
    a.group("G").pairs[0].recovery_point_available = value
    a.db.commit()


def test_role_conflict_keeps_chosen_side_and_preserves_the_other(mirror, lab_home):
    c = mirror
    c.host_write("SiteA/v", 2 * RS, b"X" * 4096)  # A, unsynced
    c.lab_link(True)
    c.promote("G", "SiteB", force=True)
    c.host_write("SiteB/v_dr", 5 * RS, b"B" * 4096)  # B's divergent write
    c.host_write("SiteA/v", 3 * RS, b"Z" * 4096)  # A's divergent write
    c.lab_link(False)
    wait_until(lambda: all(g.status == "role_conflict" for g in both(c)))
    assert not writable(c, "SiteA/v") and not writable(c, "SiteB/v_dr")
    assert c.host_read("SiteB/v_dr", 3 * RS, 1) == b"\0"  # no data moved
    probs = {p.id: p for p in c.guru()}
    p = probs["role-conflict:G"]
    assert {a.id for a in p.actions} == {"keep-SiteA", "keep-SiteB"}
    keep_b = next(a for a in p.actions if a.id == "keep-SiteB")
    assert keep_b.destructive and "128.0 KiB written on SiteA" in keep_b.detail
    with pytest.raises(MirrorError) as e:
        c.promote("G", "SiteB", force=True)
    assert e.value.code == "arvmRoleConflict"
    r = c.guru_fix("role-conflict:G", "keep-SiteB")
    a, b = both(c)
    assert (a.role, b.role) == ("secondary", "primary")
    assert (a.status, b.status) == ("optimal", "optimal")
    assert writable(c, "SiteB/v_dr") and not writable(c, "SiteA/v")
    assert c.host_read("SiteA/v", 5 * RS, 4) == b"BBBB"
    assert c.host_read("SiteA/v", 3 * RS, 1) == b"\0" and c.host_read("SiteA/v", 2 * RS, 1) == b"\0"
    assert c.host_read("SiteA/v", 0, 4) == b"A0A0"
    stats = c.sync_history("G")[-1]
    assert stats.bytes_payload <= 3 * RS  # union of both change logs, never a full copy
    # SiteA's divergent writes are intact in the export
    (path,) = r["preserved"]
    index = json.loads(Path(path).with_suffix(".json").read_text())
    blob = Path(path).read_bytes()
    got = {e["offset"]: blob[e["file_offset"]: e["file_offset"] + e["length"]] for e in index["regions"]}
    assert got[3 * RS][:4096] == b"Z" * 4096 and got[2 * RS][:4096] == b"X" * 4096
    assert "role-conflict:G" not in {p.id for p in c.guru()}


def test_role_conflict_resolves_while_hosts_keep_writing_to_the_kept_side(mirror):
    """The kept primary's hosts write again as soon as it is resolved: the resolution resyncs once and says done."""
    c = mirror
    # 4 MiB/s of random writes dirty the whole 16 MiB volume within a second: with the default 20 %
    # of reserved capacity, how long the link stays cut would decide whether the resync fits.
    for ref in ("SiteA/v", "SiteB/v_dr"):
        c.increase_reserved_capacity(ref, 100)
    c.start_workload(["SiteA/v"], 4.0)  # SiteA's hosts: refused during the conflict, writing again after it
    c.lab_link(True)
    c.promote("G", "SiteB", force=True)
    c.host_write("SiteB/v_dr", 5 * RS, b"B" * 4096)
    c.lab_link(False)
    wait_until(lambda: all(g.status == "role_conflict" for g in both(c)))
    try:
        r = c.guru_fix("role-conflict:G", "keep-SiteA")
        assert r["done"]
        a, b = both(c)
        assert (a.role, b.role) == ("primary", "secondary")
        wait_until(lambda: c.host_read("SiteB/v_dr", 5 * RS, 1) != b"B")  # SiteB's write is undone by the resync
    finally:
        c.stop_workload()
    c.sync_now("G", wait=True)
    assert c.verify("G")["identical"]


def test_double_forced_change_finishes_by_itself(mirror):
    c = mirror
    c.host_write("SiteA/v", 2 * RS, b"X" * 4096)
    c.lab_link(True)
    c.demote("G", "SiteA", force=True)
    assert not writable(c, "SiteA/v")
    c.promote("G", "SiteB", force=True)
    c.host_write("SiteB/v_dr", 6 * RS, b"NEW" * 1000)
    c.lab_link(False)
    wait_until(lambda: c.group("G", "SiteA").role == "secondary" and c.group("G", "SiteB").status == "optimal"
               and c.group("G", "SiteA").status == "optimal"
               and c.host_read("SiteA/v", 6 * RS, 3) == b"NEW")
    assert c.host_read("SiteA/v", 2 * RS, 1) == b"\0"  # SiteA's unreplicated write replaced by SiteB's image
    assert writable(c, "SiteB/v_dr") and not writable(c, "SiteA/v")
    assert c.sync_history("G")[-1].bytes_payload <= 2 * RS
    c.host_write("SiteB/v_dr", 9 * RS, b"Q" * 512)
    c.sync_now("G", wait=True)  # periodic/manual sync works again
    assert c.host_read("SiteA/v", 9 * RS, 1) == b"Q"


def test_orphans_found_on_reconnection_and_removed(mirror):
    c = mirror
    c.create_volume("SiteA/w", "16MiB")
    c.create_volume("SiteB/w_dr", "16MiB")
    c.create_group("H", "SiteA", "SiteB", sync_mode="manual")
    c.add_pair("H", "SiteA/w", "SiteB/w_dr")
    c.lab_link(True)
    c.remove_pair("SiteA/v")  # pair of G removed on SiteA only
    c.remove_pair("SiteA/w")
    c.delete_group("H")  # group H removed on SiteA only
    c.lab_link(False)
    wait_until(lambda: c.pair("SiteB/v_dr").status == "orphan" and c.group("H", "SiteB").status == "orphan")
    ids = {p.id for p in c.guru()}
    assert {"orphan-pair:SiteB/v_dr", "orphan-group:SiteB/H"} <= ids
    c.lab_link(True)  # removing an orphan needs no remote
    c.guru_fix("orphan-pair:SiteB/v_dr", "remove-orphan")
    c.guru_fix("orphan-group:SiteB/H", "remove-orphan")
    assert c.groups("SiteB")[0].pairs == ()
    assert [g.name for g in c.groups("SiteB")] == ["G"]
    assert writable(c, "SiteB/v_dr") and writable(c, "SiteB/w_dr")


def test_incomplete_pair_completes_on_reconnection(mirror):
    c = mirror
    c.create_volume("SiteA/w", "16MiB")
    c.create_volume("SiteB/w_dr", "16MiB")
    c.host_write("SiteA/w", RS, b"w" * 512)
    c.lab_link(True)
    p = c.add_pair("G", "SiteA/w", "SiteB/w_dr")
    assert p.status == "incomplete"
    assert "incomplete-pair:SiteA/w" in {x.id for x in c.guru()}
    with pytest.raises(MirrorError):  # which rule it names: see the test below
        c.role_change("G", "SiteB")
    c.lab_link(False)
    wait_until(lambda: c.pair("SiteA/w").status != "incomplete")
    assert c.pair("SiteB/w_dr").role == "secondary"
    c.sync_now("G", wait=True)
    assert c.host_read("SiteB/w_dr", RS, 1) == b"w"
    assert c.pair("SiteA/w").status == "optimal"


def test_role_change_of_a_group_with_an_incomplete_member_names_it(mirror):
    c = mirror
    c.create_volume("SiteA/w", "16MiB")
    c.create_volume("SiteB/w_dr", "16MiB")
    c.lab_link(True)
    assert c.add_pair("G", "SiteA/w", "SiteB/w_dr").status == "incomplete"
    with pytest.raises(MirrorError) as e:
        c.demote("G", "SiteA")  # asked of the array that holds the incomplete member
    assert e.value.code == "arvmGroupHasIncompleteMember"


def test_failed_secondary_volume_suspends_group_then_resyncs_delta(mirror):
    c = mirror
    c.create_volume("SiteA/w", "16MiB")
    c.create_volume("SiteB/w_dr", "16MiB")
    c.add_pair("G", "SiteA/w", "SiteB/w_dr")
    c.sync_now("G", wait=True)
    c.volume_fail("SiteB/v_dr")
    a = c.group("G", "SiteA")
    assert a.status == "system_suspended"
    assert {p.local_volume: p.status for p in a.pairs} == {"v": "failed", "w": "stopped"}
    assert c.pair("SiteB/v_dr").status == "failed"
    assert {"failed-pair:SiteA/v", "system-suspended:G"} <= {p.id for p in c.guru()}
    c.host_write("SiteA/v", 4 * RS, b"D" * 4096)  # primary keeps accepting writes
    with pytest.raises(MirrorError):
        c.sync_now("G", wait=True)
    c.guru_fix("failed-pair:SiteB/v_dr", "repair-volume")
    assert c.group("G", "SiteA").status == "paused"  # waits for resume
    c.resume("G")
    wait_until(lambda: c.group("G", "SiteA").status == "optimal" and c.host_read("SiteB/v_dr", 4 * RS, 1) == b"D")
    assert c.sync_history("G")[-1].bytes_payload == RS


def test_controller_reset_moves_ownership_and_secondary_follows(mirror):
    c = mirror
    c.set_volume_owner("SiteA/v", "B")
    c.host_write("SiteA/v", RS, b"o" * 512)
    c.sync_now("G", wait=True)
    assert c.volume("SiteB/v_dr").current_owner == "B"
    c.controller_reset("SiteA", "B")
    assert c.volume("SiteA/v").current_owner == "A"
    assert "controller-offline:SiteA/B" in {p.id for p in c.guru()}
    c.guru_fix("controller-offline:SiteA/B", "restore-controller")
    assert c.volume("SiteA/v").current_owner == "B"


def test_sync_interrupted_by_controller_reset_resumes_from_log(mirror):
    c = mirror
    size = 5 << 19  # 2.5 MiB: fits the secondary's reserved capacity (20 % of 16 MiB)
    c.host_write("SiteA/v", 0, b"r" * size)
    c.pace_sender("SiteA", 2 << 20)
    c.sync_now("G", wait=False)
    time.sleep(0.5)
    c.controller_reset("SiteB", "A")
    c.pace_sender("SiteA", None)
    wait_until(lambda: c.group("G", "SiteA").status == "optimal", timeout=30)
    s = c.sync_history("G")[-1]
    assert s.outcome == "committed" and s.bytes_payload < 2 * size  # resumed, not restarted from scratch
    assert s.bytes_resent < size
    assert c.host_read("SiteB/v_dr", size - 4, 4) == b"rrrr"


def test_stopped_array_refuses_host_io(mirror):
    c = mirror
    c.array_stop("SiteB")  # its daemon stops: REST, channel and NBD with it
    with pytest.raises(CommunicationError) as e:
        c.host_read("SiteB/v_dr", 0, 1)
    assert e.value.code == "arrayUnreachable"
    wait_until(lambda: c.group("G", "SiteA").status == "paused")
    assert "array-stopped:SiteB" in {p.id for p in c.guru()}
    c.guru_fix("array-stopped:SiteB", "start-array")
    assert c.host_read("SiteB/v_dr", 0, 2) == b"A0"
    wait_until(lambda: c.group("G", "SiteA").status == "optimal")
