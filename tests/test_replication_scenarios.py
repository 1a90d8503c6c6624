"""Replication scenarios (SPEC §2 "The write path", statuses, reserved capacity, resync policy).

Each test drives the lab's array daemons through their REST API (the fleet) on small
volumes and asserts on what an administrator sees: bytes on the secondary, statuses,
sync statistics, errors.
"""
from __future__ import annotations

import concurrent.futures
import os
import random
import time

import pytest

from core.errors import HostWriteRefused, MirrorError
from test_replication_support import (RS, committed, make_pair, open_lab, read_file, volume_bytes, wait_for,
                                      wait_for_commits)


def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def under_way(c) -> bool:
    """A sync has started sending and has not committed.

    Its progress counts what the primary handed to the channel; the link relay and the
    sockets hold a few MiB of that on the way, so it can read 100 % well before the commit.
    """
    g = c.group("G")
    return g.status == "synchronizing" and g.progress is not None and g.progress.bytes_done > 0


@pytest.fixture
def throttled(lab_home):
    """A lab whose link relay runs at 8 MiB/s, so a sync of a few MiB takes a fraction of a second."""
    c = open_lab(lab_home, link_bandwidth=8 << 20)
    try:
        yield c
    finally:
        c.close()


# -- initial synchronization -------------------------------------------------------------------
def test_initial_sync_copies_only_written_regions_of_a_sparse_volume(client):
    """A 4 GiB volume with 5 regions written costs 5 regions, not its capacity."""
    writes = [(0, _rand(100, 1)), (7 * RS + 10, _rand(RS, 2)), (1000 * RS, _rand(RS, 3)), (65535 * RS, _rand(RS, 4))]
    for off, data in writes:
        client.host_write("SiteA/db", off, data)
    client.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    t0 = time.monotonic()
    client.add_pair("G", "SiteA/db", "SiteB/db_dr")
    (stats,) = wait_for_commits(client, "G", 1)
    assert stats.kind == "initial" and stats.outcome == "committed"
    # region 0, regions 7 and 8 (the write straddles them), region 1000, the last region
    assert stats.unique_changed_bytes == 5 * RS
    assert stats.bytes_payload == 5 * RS
    assert time.monotonic() - t0 < 10
    for off, data in writes:
        assert client.host_read("SiteB/db_dr", off, len(data)) == data
    assert client.host_read("SiteB/db_dr", 500 * RS, RS) == bytes(RS)
    snap = client.group("G")
    assert snap.status == "optimal" and snap.last_recovery_point == stats.recovery_point_time
    assert all(p.status == "optimal" and p.recovery_point_available for p in client.pairs())


def test_initial_sync_leaves_no_stale_data_on_the_secondary(client):
    client.create_volume("SiteA/v", "4MiB")
    client.create_volume("SiteB/v", "4MiB")
    client.host_write("SiteB/v", 0, b"\xaa" * 4 * RS)  # left over from an earlier life of the volume
    client.host_write("SiteA/v", 8 * RS, _rand(RS, 5))
    client.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    client.add_pair("G", "SiteA/v", "SiteB/v")
    wait_for_commits(client, "G", 1)
    assert volume_bytes(client, "SiteB/v") == volume_bytes(client, "SiteA/v")
    assert client.verify("G")["identical"]


# -- interval synchronization ----------------------------------------------------------------------
def test_incremental_sync_sends_each_changed_region_once(client):
    make_pair(client, "4MiB")
    rng = random.Random(7)
    regions = rng.sample(range(64), 10)
    for rewrite in range(20):  # every region rewritten 20 times, partly, with compressible data
        for r in regions:
            off = r * RS + rng.randrange(0, RS - 4096)
            client.host_write("SiteA/v", off, bytes([rewrite]) * 4096)
    assert client.group("G").unsynchronized_bytes == 10 * RS
    stats = client.sync_now("G", wait=True)
    assert stats.kind == "manual" and stats.outcome == "committed"  # asked for by a person, not the schedule
    assert stats.unique_changed_bytes == 10 * RS
    assert stats.bytes_payload == 10 * RS and stats.bytes_resent == 0
    assert stats.bytes_sent < stats.bytes_payload / 10  # compressible data is compressed on the wire
    assert volume_bytes(client, "SiteB/v") == volume_bytes(client, "SiteA/v")
    assert client.group("G").unsynchronized_bytes == 0
    # nothing changed since: the next recovery point sends nothing
    assert client.sync_now("G", wait=True).bytes_payload == 0
    assert client.verify("G")["identical"]


def test_a_grown_primary_takes_writes_beyond_its_old_end_and_mirrors_them(client):
    make_pair(client, "4MiB")
    client.resize_volume("SiteB/v", "8MiB")  # the secondary first, as the console asks
    client.resize_volume("SiteA/v", "8MiB")
    data = _rand(RS, 9)
    client.host_write("SiteA/v", 6 * 1024 * 1024, data)
    stats = client.sync_now("G", wait=True)
    assert stats.outcome == "committed" and stats.bytes_payload == RS
    assert client.host_read("SiteB/v", 6 * 1024 * 1024, RS) == data


def test_manual_sync_refused_while_one_runs(throttled):
    c = throttled
    make_pair(c, "16MiB")
    c.host_write("SiteA/v", 0, _rand(64 * RS, 8))  # 4 MiB: half a second on the throttled link
    c.sync_now("G")
    with pytest.raises(MirrorError) as e:
        c.sync_now("G")
    assert e.value.code == "arvmManualSyncAlreadyInProgress"
    wait_for_commits(c, "G", 2)


def test_host_writes_during_a_sync_go_to_the_next_recovery_point(throttled):
    c = throttled
    make_pair(c, "16MiB")
    first = _rand(64 * RS, 10)
    c.host_write("SiteA/v", 0, first)
    c.set_link(bandwidth=2 << 20)  # 2 s on the link: the host writes below land while it runs
    c.sync_now("G")
    wait_for(lambda: under_way(c), 10, "the sync to be under way")
    second = _rand(64 * RS, 11)
    slowest = 0.0
    for i in range(64):  # acknowledged at once: replication never waits in the write path
        t0 = time.monotonic()
        c.host_write("SiteA/v", i * RS, second[i * RS:(i + 1) * RS])
        slowest = max(slowest, time.monotonic() - t0)
    assert slowest < 0.5  # one HTTPS round trip each, never the 2 s the sync takes on the link
    pit = next(p for p in c.pairs() if p.array == "SiteA").reserved_capacity.pit_bytes
    assert pit > 32 * RS  # the unsent part of the capture was copied aside
    assert c.group("G").status == "synchronizing"
    stats = wait_for_commits(c, "G", 2)[-1]
    assert stats.bytes_payload == 64 * RS
    assert read_file(c.volume("SiteB/v").path, 0, 64 * RS) == first  # the capture instant, not later writes
    assert c.verify("G")["identical"]  # changed regions are skipped: they belong to the next interval
    assert c.group("G").unsynchronized_bytes == 64 * RS
    assert c.sync_now("G", wait=True).bytes_payload == 64 * RS
    assert read_file(c.volume("SiteB/v").path, 0, 64 * RS) == second


def test_the_secondary_shows_its_own_progress_while_it_receives(throttled):
    """SiteB's daemon counts what it receives: its side shows the sync and its progress, not a stale "optimal"."""
    c = throttled
    make_pair(c, "16MiB")
    c.host_write("SiteA/v", 0, _rand(64 * RS, 13))  # 4 MiB at 2 MiB/s: two seconds on the link
    c.set_link(bandwidth=2 << 20)
    c.sync_now("G")

    def receiving():
        side = next(g for g in c.groups("SiteB") if g.name == "G")
        pair = next(p for p in c.pairs() if p.array == "SiteB")
        return side.status == "synchronizing" and side.progress is not None and 0 < side.progress.bytes_done \
            < side.progress.bytes_total and (side, pair)
    side, pair = wait_for(receiving, 10, "SiteB to show the sync it receives")
    assert side.progress.bytes_total == 64 * RS
    assert side.progress.kind == "manual"
    assert pair.progress is not None and pair.progress.bytes_total == 64 * RS
    assert pair.unsynchronized_bytes == pair.progress.bytes_total - pair.progress.bytes_done
    wait_for_commits(c, "G", 2)
    side = next(g for g in c.groups("SiteB") if g.name == "G")
    assert side.status == "optimal" and side.progress is None


def test_zero_writes_and_trims_are_replicated_as_zeros(client):
    make_pair(client, "4MiB")
    data = _rand(8 * RS, 12)
    client.host_write("SiteA/v", 0, data)
    client.sync_now("G", wait=True)
    client.host_write("SiteA/v", 1 * RS, bytes(RS))  # a whole region of zeros
    client.host_trim("SiteA/v", 2 * RS, RS)  # a whole region trimmed
    client.host_trim("SiteA/v", 3 * RS + 1000, 5000)  # part of a region
    client.host_write("SiteA/v", 4 * RS + 100, bytes(300))  # zeros inside a region
    client.host_trim("SiteA/v", 5 * RS + RS // 2, RS)  # straddles regions 5 and 6
    stats = client.sync_now("G", wait=True)
    assert stats.bytes_payload == 6 * RS
    primary, secondary = volume_bytes(client, "SiteA/v"), volume_bytes(client, "SiteB/v")
    assert secondary == primary
    assert secondary[RS:3 * RS] == bytes(2 * RS)
    assert secondary[3 * RS + 1000:3 * RS + 6000] == bytes(5000)
    assert secondary[3 * RS:3 * RS + 1000] == data[3 * RS:3 * RS + 1000]
    assert client.verify("G")["identical"]


# -- roles --------------------------------------------------------------------------------------------
def test_secondary_refuses_host_writes(client):
    make_pair(client, "4MiB")
    client.host_write("SiteA/v", 0, b"primary")
    client.sync_now("G", wait=True)
    for call in (lambda: client.host_write("SiteB/v", 0, b"host"), lambda: client.host_trim("SiteB/v", 0, RS)):
        with pytest.raises(HostWriteRefused) as e:
            call()
        assert e.value.code == "arvmVolumeNotWritable"
        assert "secondary" in e.value.message
    assert client.host_read("SiteB/v", 0, 7) == b"primary"
    assert not client.volume("SiteB/v").host_writable and client.volume("SiteA/v").host_writable


# -- suspend / resume -----------------------------------------------------------------------------------
def test_suspend_tracks_changes_and_resume_sends_only_them(client):
    make_pair(client, "4MiB")
    client.host_write("SiteA/v", 0, _rand(10 * RS, 13))
    client.sync_now("G", wait=True)
    client.suspend("G")
    assert client.group("G").status == "user_suspended"
    with pytest.raises(MirrorError) as e:
        client.sync_now("G")
    assert e.value.code == "arvmGroupSuspended"
    for r in (2, 3, 40):
        client.host_write("SiteA/v", r * RS + 5, _rand(100, r))
    before = volume_bytes(client, "SiteB/v")
    assert client.group("G").unsynchronized_bytes == 3 * RS
    assert client.group("G").status == "user_suspended"
    assert volume_bytes(client, "SiteB/v") == before  # nothing moves while suspended
    client.resume("G")
    stats = wait_for_commits(client, "G", 3)[-1]
    assert stats.kind == "manual" and stats.bytes_payload == 3 * RS  # Resume resyncs at once
    assert client.group("G").status == "optimal"
    assert volume_bytes(client, "SiteB/v") == volume_bytes(client, "SiteA/v")


# -- link interruptions ------------------------------------------------------------------------------------
def test_link_cut_during_a_sync_pauses_and_resumes_automatically(throttled):
    c = throttled
    make_pair(c, "16MiB")
    data = _rand(64 * RS, 14)
    c.host_write("SiteA/v", 0, data)
    c.sync_now("G")
    # Cut once the secondary holds half of it: the relay and the sockets carry the rest, lost with the cut.
    wait_for(lambda: c.pair("SiteB/v").reserved_capacity.staging_bytes >= 34 * RS, 10, "half the delta staged")
    c.lab_link(True)
    wait_for(lambda: c.group("G").status == "paused", 5, "the group to pause")
    with pytest.raises(MirrorError) as e:
        c.sync_now("G")
    # refused: the remote is unreachable (or the interrupted sync has not noticed it yet)
    assert e.value.code in ("arvmRemoteArrayUnreachable", "arvmManualSyncAlreadyInProgress")
    assert read_file(c.volume("SiteB/v").path, 0, 64 * RS) == bytes(64 * RS)  # previous recovery point kept
    c.lab_link(False)  # resync policy automatic (the default): it resumes by itself
    stats = wait_for_commits(c, "G", 2)[-1]
    assert stats.unique_changed_bytes == 64 * RS
    assert stats.bytes_payload <= 64 * RS + stats.bytes_resent  # what was confirmed is not sent again
    assert stats.bytes_resent <= 32 * RS
    assert read_file(c.volume("SiteB/v").path, 0, 64 * RS) == data
    codes = [e.code for e in c.events("SiteA")]
    assert "arvmCommunicationLost" in codes and "arvmCommunicationRestored" in codes
    assert c.verify("G")["identical"]


def test_link_restored_waits_for_resume_with_manual_resync_policy(throttled):
    c = throttled
    make_pair(c, "16MiB", resync_policy="manual")
    data = _rand(64 * RS, 15)
    c.host_write("SiteA/v", 0, data)
    c.sync_now("G")
    wait_for(lambda: (p := c.group("G").progress) is not None and p.bytes_done > 8 * RS, 10, "the sync under way")
    c.lab_link(True)
    wait_for(lambda: c.group("G").status == "paused", 5, "the group to pause")
    c.lab_link(False)
    wait_for(lambda: "arvmResyncWaitingForUser" in [e.code for e in c.events("SiteA")], 5, "the resync to wait")
    time.sleep(0.6)  # a couple of scheduler ticks: nothing may start by itself
    assert c.group("G").status == "paused"
    assert len(committed(c)) == 1
    c.resume("G")
    stats = wait_for_commits(c, "G", 2)[-1]
    assert stats.bytes_payload <= 64 * RS + stats.bytes_resent
    assert read_file(c.volume("SiteB/v").path, 0, 64 * RS) == data
    assert c.group("G").status == "optimal"


def test_sync_now_after_link_restore_does_not_hang_with_manual_resync_policy(client):
    make_pair(client, "4MiB", resync_policy="manual")
    client.lab_link(True)
    wait_for(lambda: "arvmCommunicationLost" in [e.code for e in client.events("SiteA")], 5, "the pause")
    client.host_write("SiteA/v", 0, b"after the cut")
    client.lab_link(False)
    client.timeout = 5
    try:
        stats = client.sync_now("G", wait=True)  # either syncs or refuses; never waits forever
    except MirrorError:
        return
    except concurrent.futures.TimeoutError:
        pytest.fail("sync_now(wait=True) did not return within 5 s")
    finally:
        client.timeout = 600
    assert stats.outcome == "committed"


# -- reserved capacity ----------------------------------------------------------------------------------
def test_reserved_capacity_full_fails_the_pair_until_increased(throttled):
    c = throttled
    # 1 % of 64 MiB: ten 64 KiB PIT copies; the secondary has room to stage everything.
    make_pair(c, "64MiB", reserved_percent=1, secondary_reserved_percent=50)
    data = _rand(100 * RS, 16)
    c.host_write("SiteA/v", 0, data)
    c.pace_sender("SiteA", 8 << 20)  # the captured regions stay on SiteA until sent, not in socket buffers
    c.sync_now("G")
    wait_for(lambda: under_way(c), 10, "the sync")
    later = _rand(100 * RS, 17)
    c.host_write("SiteA/v", 0, later)  # overwrites unsent captured regions: PIT copies overflow
    wait_for(lambda: c.group("G").status == "system_suspended", 10, "system suspended")
    pa = next(p for p in c.pairs() if p.array == "SiteA")
    assert pa.status == "failed" and not pa.recovery_point_available
    assert "reserved capacity full" in pa.reason
    # the sync notices when its frame in flight on the throttled link returns
    wait_for(lambda: c.sync_history("G")[-1].outcome.startswith("failed"), 10, "the failed sync in the history")
    assert "arvmRepositoryFull" in [e.code for e in c.events("SiteA")]
    assert read_file(c.volume("SiteA/v").path, 0, 100 * RS) == later  # the host write was not refused
    assert read_file(c.volume("SiteB/v").path, 0, 100 * RS) == bytes(100 * RS)  # previous recovery point intact
    with pytest.raises(MirrorError) as e:
        c.sync_now("G")
    assert e.value.code == "arvmGroupSystemSuspended"
    c.increase_reserved_capacity("SiteA/v", 50)
    c.resume("G")
    stats = wait_for_commits(c, "G", 2)[-1]
    assert stats.bytes_payload == 100 * RS
    pa = next(p for p in c.pairs() if p.array == "SiteA")
    assert pa.status == "optimal" and pa.recovery_point_available
    assert c.group("G").status == "optimal"
    assert read_file(c.volume("SiteB/v").path, 0, 100 * RS) == later
    assert c.verify("G")["identical"]


def test_secondary_reserved_capacity_full_is_shown_as_a_failed_pair(client):
    make_pair(client, "4MiB", reserved_percent=100, secondary_reserved_percent=20)
    client.host_write("SiteA/v", 0, _rand(20 * RS, 18))  # more than 20 % of the volume changed
    with pytest.raises(MirrorError) as e:
        client.sync_now("G", wait=True)
    assert e.value.code == "arvmRepositoryFull"
    assert client.group("G").status == "system_suspended"
    assert any(p.status == "failed" for p in client.pairs())
    # The Guru (the primary's problem, the fleet sizing the secondary's capacity) offers the growth that fits.
    problem = next(p for p in client.guru() if p.id == "failed-pair:SiteA/v")
    grow = next(a for a in problem.actions if a.id == "increase-reserved-capacity")
    assert grow.target == "SiteB/v" and not grow.blocked
    assert grow.value * (4 << 20) / 100 >= 20 * RS  # holds the delta that did not fit
    assert grow.label == f"Increase the reserved capacity of SiteB/v to {grow.value:.0f} %"
    assert "now" in grow.detail and "from pool" in grow.detail
    # Recovery: more reserved capacity on the secondary, resume: only the changes are sent.
    client.guru_fix(problem.id, "increase-reserved-capacity")
    side = next(p for p in client.pairs() if p.array == "SiteB")
    assert side.reserved_capacity.capacity >= (4 << 20) * int(grow.value) // 100  # rounded up to whole blocks
    client.resume("G")
    wait_for(lambda: client.group("G").last_sync.outcome == "committed", 20, "the resync to commit")
    assert client.group("G").status == "optimal"
    assert client.group("G").last_sync.bytes_payload == 20 * RS
    assert client.verify("G")["identical"]


# -- statistics --------------------------------------------------------------------------------------------
def test_sync_statistics_persist_across_a_restart(lab_home):
    c = open_lab(lab_home)
    try:
        make_pair(c, "4MiB")
        c.host_write("SiteA/v", 0, _rand(3 * RS, 19))
        c.sync_now("G", wait=True)
        before = c.sync_history("G")
        last = c.group("G").last_sync
    finally:
        c.close()
    assert [s.kind for s in before] == ["initial", "manual"]
    c = open_lab(lab_home)  # both arrays' daemons restarted
    try:
        assert c.sync_history("G") == before
        assert c.group("G").last_sync == last and last.bytes_payload == 3 * RS
        assert c.group("G").status == "optimal"
        assert c.sync_now("G", wait=True).bytes_payload == 0  # no resync after a clean restart
    finally:
        c.close()


def test_link_bandwidth_change_applies_to_open_sessions(client):
    make_pair(client, "16MiB")
    client.set_link(bandwidth=4 << 20)  # 'mirrorctl lab link set --bandwidth 4MiB': the relay shapes open connections
    assert client.lab_faults()["link_bandwidth"] == 4 << 20
    client.host_write("SiteA/v", 0, os.urandom(64 * RS))  # 4 MiB of incompressible data
    stats = client.sync_now("G", wait=True)
    assert stats.duration_seconds > 0.7
