"""Unit tests of the data path's on-disk mechanisms (core/datapath)."""
from __future__ import annotations

import os
import struct
import time

import numpy as np
import pytest

from core.datapath import ChangeLog, FormatMismatch, PitStore, Staging, allocated_regions, punch_hole
from core.datapath import staging as staging_mod
from core.datapath.pit import HEADER_SIZE as PIT_HEADER
from core.errors import InvalidInput, MirrorError, ReservedCapacityFull

RS = 4096


def make_volume(path, size, fill=None):
    with open(path, "wb") as f:
        f.truncate(size)
        if fill is not None:
            f.write(fill)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read()


# -- extents --------------------------------------------------------------------
def test_allocated_regions_skips_holes(tmp_path):
    vol = make_volume(tmp_path / "v", 64 * RS)
    fd = os.open(vol, os.O_RDWR)
    os.pwrite(fd, b"x" * 10, 5 * RS + 7)
    os.pwrite(fd, b"y" * (2 * RS), 40 * RS)
    os.close(fd)
    got = set(allocated_regions(vol, 64 * RS, RS).tolist())
    assert {5, 40, 41} <= got
    assert len(got) < 64  # the rest is holes (filesystem block granularity aside)


def test_allocated_regions_empty_volume(tmp_path):
    vol = make_volume(tmp_path / "v", 16 * RS)
    assert allocated_regions(vol, 16 * RS, RS).size == 0


def test_punch_hole_reads_zero_and_keeps_size(tmp_path):
    vol = make_volume(tmp_path / "v", 8 * RS, b"\xff" * 8 * RS)
    fd = os.open(vol, os.O_RDWR)
    punch_hole(fd, 2 * RS, 3 * RS)
    os.close(fd)
    data = read(vol)
    assert len(data) == 8 * RS
    assert data[2 * RS : 5 * RS] == bytes(3 * RS)
    assert data[: 2 * RS] == b"\xff" * 2 * RS and data[5 * RS :] == b"\xff" * 3 * RS


# -- change log -----------------------------------------------------------------
def test_changelog_mark_capture_complete(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 100 * RS, RS)
    log.mark(0, 1)
    log.mark(5 * RS - 1, 2)  # straddles regions 4 and 5
    assert log.pending_regions().tolist() == [0, 4, 5]
    assert log.dirty_count == 3
    captured = log.capture()
    assert captured.tolist() == [0, 4, 5]
    assert log.dirty_count == 0 and log.inflight_count == 3
    log.mark(7 * RS, 10)
    assert log.pending_regions().tolist() == [0, 4, 5, 7]
    log.complete()
    assert log.pending_regions().tolist() == [7]
    assert log.persisted_regions().tolist() == [7]
    log.close()
    again = ChangeLog.open(tmp_path / "cl", 100 * RS, RS)
    assert again.pending_regions().tolist() == [7]


def test_changelog_abort_restores_inflight(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 10 * RS, RS)
    log.mark(RS, RS)
    log.capture()
    log.mark(3 * RS, 1)
    log.abort()
    assert log.pending_regions().tolist() == [1, 3]
    assert log.inflight_count == 0
    log.abort()  # idempotent


def test_changelog_double_capture_refused(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 10 * RS, RS)
    log.capture()
    with pytest.raises(MirrorError) as err:
        log.capture()
    assert "already in flight" in str(err.value)
    log.complete()
    with pytest.raises(MirrorError):
        log.complete()


def test_changelog_reopen_after_crash_marks_all_persisted_dirty(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 50 * RS, RS)
    log.mark(2 * RS, 1)
    log.capture()
    log.mark(9 * RS, 1)
    # kill -9: nothing else happens; the object is simply dropped
    os.close(log._fd)
    again = ChangeLog.open(tmp_path / "cl", 50 * RS, RS)
    assert again.pending_regions().tolist() == [2, 9]
    assert again.dirty_count == 2 and again.inflight_count == 0


def test_changelog_repeat_write_costs_no_io(tmp_path, monkeypatch):
    log = ChangeLog.open(tmp_path / "cl", 10 * RS, RS)
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    log.mark(0, 10)
    log.mark(100, 10)
    log.mark(0, RS)
    assert len(calls) == 1


def test_changelog_mark_all_and_unsynchronized_bytes(tmp_path):
    size = 10 * RS + 100  # last region is 100 bytes
    log = ChangeLog.open(tmp_path / "cl", size, RS)
    assert log.region_count == 11
    log.mark_all([1, 10])
    assert log.unsynchronized_bytes == RS + 100
    log.mark_all()
    assert log.unsynchronized_bytes == size
    assert log.bytes_used == os.path.getsize(tmp_path / "cl")


def test_changelog_out_of_range(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 10 * RS, RS)
    with pytest.raises(InvalidInput):
        log.mark(10 * RS, 1)
    with pytest.raises(InvalidInput):
        log.mark_all([10])


def test_changelog_resize_keeps_bits(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 10 * RS, RS)
    log.mark(3 * RS, 1)
    log.resize(100 * RS)
    log.mark(90 * RS, 1)
    assert log.pending_regions().tolist() == [3, 90]
    log.close()
    again = ChangeLog.open(tmp_path / "cl", 100 * RS, RS)
    assert again.pending_regions().tolist() == [3, 90]
    with pytest.raises(InvalidInput):
        again.resize(RS)


def test_changelog_reopen_with_larger_volume_grows(tmp_path):
    ChangeLog.open(tmp_path / "cl", 10 * RS, RS).close()
    log = ChangeLog.open(tmp_path / "cl", 20 * RS, RS)
    assert log.region_count == 20
    with pytest.raises(InvalidInput):
        ChangeLog.open(tmp_path / "cl", 20 * RS, 2 * RS)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"NOTALOG!" + b[8:], "not a change log"),
    (lambda b: b[:8] + (99).to_bytes(4, "little") + b[12:], "version 99"),
])
def test_changelog_wrong_magic_or_version(tmp_path, damage, message):
    ChangeLog.open(tmp_path / "cl", 10 * RS, RS).close()
    raw = read(tmp_path / "cl")
    (tmp_path / "cl").write_bytes(damage(raw))
    with pytest.raises(FormatMismatch, match=message):
        ChangeLog.open(tmp_path / "cl", 10 * RS, RS)


def test_changelog_mark_cost_micro_measure(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 1 << 30)
    for i in range(64):
        log.mark(i * 4096, 4096)  # dirty regions 0..3
    n = 100_000
    start = time.perf_counter()
    for i in range(n):
        log.mark((i & 63) * 4096, 4096)
    per = (time.perf_counter() - start) / n * 1e6
    print(f"\nChangeLog.mark on dirty regions: {per:.2f} us per 4 KiB write")


# -- PIT store ------------------------------------------------------------------
def pit_fixture(tmp_path, regions=16, budget=1 << 30):
    base = make_volume(tmp_path / "base", regions * RS, bytes(range(256)) * (regions * RS // 256))
    fd = os.open(base, os.O_RDWR)
    box = {"budget": budget}
    pit = PitStore.open(tmp_path / "pit", fd, RS, lambda: box["budget"])
    return fd, pit, box


def test_pit_preserves_captured_regions(tmp_path):
    fd, pit, _ = pit_fixture(tmp_path)
    before = read(tmp_path / "base")
    pit.begin(np.array([1, 2, 5]))
    for off in (RS + 10, 3 * RS, 5 * RS):
        pit.before_write(off, RS)
        os.pwrite(fd, b"\xee" * RS, off)
    assert pit.preserved_count == 3  # the first write straddles regions 1 and 2
    for r in (1, 2, 5):
        assert pit.read_region(r) == before[r * RS : (r + 1) * RS]
    with pytest.raises(InvalidInput):
        pit.read_region(3)  # never captured
    assert pit.bytes_used == PIT_HEADER + pit.preserved_count * RS


def test_pit_runs_over_holes_read_as_at_the_pit_instant(tmp_path):
    """Holes are not read (a volume rewritten with zeros is mostly holes), yet every byte is the PIT's."""
    fd, pit, _ = pit_fixture(tmp_path)
    punch_hole(fd, 4 * RS, 8 * RS)  # regions 4-11: a hole at the PIT instant
    before = read(tmp_path / "base")
    assert before[4 * RS:12 * RS] == bytes(8 * RS)
    pit.begin(np.arange(16))
    pit.before_write(RS, RS)  # data -> hole
    punch_hole(fd, RS, RS)
    pit.before_write(6 * RS, 4096)  # hole -> data
    os.pwrite(fd, b"\xab" * 4096, 6 * RS)
    pit.before_write(9 * RS, RS)  # hole -> data, the whole region
    os.pwrite(fd, b"\xcd" * RS, 9 * RS)
    assert pit.read_run(0, 16) == before
    assert pit.read_run(4, 8) == bytes(8 * RS)
    assert pit.read_run(10, 2) == bytes(2 * RS)  # nothing but a hole: no read at all
    assert pit.read_run(0, 4) == before[:4 * RS]


def test_pit_mark_sent_stops_protection_and_frees_space(tmp_path):
    fd, pit, _ = pit_fixture(tmp_path)
    pit.begin([0, 1])
    pit.before_write(0, 2 * RS)
    assert pit.preserved_count == 2
    pit.mark_sent(0)
    assert pit.preserved_count == 1 and pit.bytes_used == PIT_HEADER + RS
    with pytest.raises(InvalidInput, match="already"):
        pit.read_region(0)
    pit.before_write(0, RS)
    assert pit.preserved_count == 1
    pit.end()
    assert not pit.active and os.path.getsize(tmp_path / "pit") == PIT_HEADER


def test_pit_budget_exceeded_leaves_state_intact(tmp_path):
    fd, pit, box = pit_fixture(tmp_path)
    before = read(tmp_path / "base")
    pit.begin(range(16))
    box["budget"] = PIT_HEADER + 2 * RS
    pit.before_write(0, RS)
    with pytest.raises(ReservedCapacityFull) as err:
        pit.before_write(RS, 2 * RS)
    assert err.value.code == "arvmRepositoryFull"
    assert pit.preserved_count == 1 and pit.bytes_used == PIT_HEADER + RS
    assert pit.read_region(0) == before[:RS]


def test_pit_double_begin_and_reopen_drops_stale(tmp_path):
    fd, pit, _ = pit_fixture(tmp_path)
    pit.begin([0])
    with pytest.raises(MirrorError):
        pit.begin([1])
    pit.before_write(0, 1)
    pit.close()
    again = PitStore.open(tmp_path / "pit", tmp_path / "base", RS, lambda: 1 << 30)
    assert not again.active and os.path.getsize(tmp_path / "pit") == PIT_HEADER
    again.close()


def test_pit_wrong_magic(tmp_path):
    (tmp_path / "pit").write_bytes(b"GARBAGE!" + bytes(100))
    make_volume(tmp_path / "base", RS)
    with pytest.raises(FormatMismatch, match="not a PIT store"):
        PitStore.open(tmp_path / "pit", tmp_path / "base", RS, lambda: 1 << 30)


def test_pit_partial_last_region(tmp_path):
    base = make_volume(tmp_path / "base", RS + 100, b"a" * (RS + 100))
    fd = os.open(base, os.O_RDWR)
    pit = PitStore.open(tmp_path / "pit", fd, RS, lambda: 1 << 30)
    pit.begin([1])
    pit.before_write(RS, 50)
    os.pwrite(fd, b"b" * 50, RS)
    assert pit.read_region(1) == b"a" * 100


# -- staging --------------------------------------------------------------------
def staging_fixture(tmp_path, regions=16, budget=None):
    make_volume(tmp_path / "sec", regions * RS, b"\x11" * regions * RS)
    return Staging.open(tmp_path / "stage", tmp_path / "sec", budget, region_size=RS)


def test_staging_keeps_old_point_until_commit(tmp_path):
    st = staging_fixture(tmp_path)
    old = read(tmp_path / "sec")
    assert st.begin("t1", {"id": 1}) is False
    st.put(0, b"\x22" * RS)
    st.put(3 * RS, None, RS)
    st.put(5 * RS, bytes(RS))  # all-zero payload staged as a zero record
    assert st.staged() == {0, 3 * RS, 5 * RS}
    assert read(tmp_path / "sec") == old
    st.prepare()
    assert st.commit() == {"id": 1}
    new = read(tmp_path / "sec")
    assert new[:RS] == b"\x22" * RS and new[3 * RS : 4 * RS] == bytes(RS) and new[5 * RS : 6 * RS] == bytes(RS)
    assert new[RS : 3 * RS] == old[RS : 3 * RS]
    assert st.last_committed() == {"id": 1}
    assert st.transfer_id is None and st.bytes_used == staging_mod.HEADER_SIZE


def test_staging_discard_and_new_transfer_replaces(tmp_path):
    st = staging_fixture(tmp_path)
    old = read(tmp_path / "sec")
    st.begin("t1", {"id": 1})
    st.put(0, b"x" * RS)
    assert st.begin("t2", {"id": 2}) is False  # another transfer: t1 dropped
    assert st.staged() == set()
    st.discard()
    assert read(tmp_path / "sec") == old and st.last_committed() is None


def test_staging_resume_same_transfer_after_restart(tmp_path):
    st = staging_fixture(tmp_path)
    st.begin("t1", {"id": 1})
    st.put(0, b"x" * RS)
    st.put(RS, b"y" * RS)
    st.close()
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    assert st.recovery.action == "resumable" and st.recovery.records == 2
    assert st.begin("t1", {"id": 1}) is True
    assert st.staged() == {0, RS}
    st.commit()
    assert read(tmp_path / "sec")[: 2 * RS] == b"x" * RS + b"y" * RS


def test_staging_counts_every_region_of_a_run_staged_as_one_record(tmp_path):
    """A run of whole regions is one journal record; resume, drills and the discarded count see each region."""
    st = staging_fixture(tmp_path)
    st.begin("t1", {"id": 1})
    assert st.put_many([(2 * RS, 3 * RS, b"r" * 3 * RS), (8 * RS, 2 * RS, None)]) == 5 * RS
    assert st.staged() == {2 * RS, 3 * RS, 4 * RS, 8 * RS, 9 * RS}
    st.close()
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    assert st.begin("t1", {"id": 1}) is True
    assert st.staged() == {2 * RS, 3 * RS, 4 * RS, 8 * RS, 9 * RS}
    st.commit()
    sec = read(tmp_path / "sec")
    assert sec[2 * RS:5 * RS] == b"r" * 3 * RS and sec[8 * RS:10 * RS] == bytes(2 * RS)
    assert sec[5 * RS:8 * RS] == b"\x11" * 3 * RS


def test_staging_commit_settled_later_is_reapplied_after_a_crash(tmp_path):
    st = staging_fixture(tmp_path)
    old = read(tmp_path / "sec")
    st.begin("t1", {"id": 1})
    st.put(0, b"x" * RS)
    st.put(2 * RS, b"z" * RS)
    st.prepare()
    assert st.commit(decided_elsewhere=True, settle_later=True) == {"id": 1}
    assert st.unsettled and read(tmp_path / "sec")[:RS] == b"x" * RS  # applied, not yet fsynced
    # power loss before the volume's fsync: the applied bytes never reached the disk
    with open(tmp_path / "sec", "r+b") as f:
        f.write(old[: 3 * RS])
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)  # the old object is gone
    assert st.recovery.action == "resumable" and st.transfer_id == "t1"
    st.commit(decided_elsewhere=True)  # what the group commit record makes the receiver do
    after = read(tmp_path / "sec")
    assert after[:RS] == b"x" * RS and after[2 * RS: 3 * RS] == b"z" * RS and after[RS: 2 * RS] == old[RS: 2 * RS]


def test_staging_settle_empties_the_journal_before_anything_else_touches_it(tmp_path):
    st = staging_fixture(tmp_path)
    st.begin("t1", {"id": 1})
    st.put(0, b"x" * RS)
    st.prepare()
    st.commit(decided_elsewhere=True, settle_later=True)
    st.begin("t2", {"id": 2})  # settles t1 first
    assert not st.unsettled and st.last_committed() == {"id": 1}
    st.put(RS, b"y" * RS)
    st.close()
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    assert st.recovery.action == "resumable" and st.transfer_id == "t2" and st.staged() == {RS}
    assert read(tmp_path / "sec")[:RS] == b"x" * RS


def test_staging_torn_tail_is_dropped(tmp_path):
    st = staging_fixture(tmp_path)
    st.begin("t1", {"id": 1})
    st.put(0, b"x" * RS)
    st.put(RS, b"y" * RS)
    st.close()
    size = os.path.getsize(tmp_path / "stage")
    os.truncate(tmp_path / "stage", size - 100)  # power loss mid-append
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    assert st.recovery.action == "resumable" and st.recovery.records == 1
    assert st.recovery.dropped_bytes > 0
    assert st.staged() == {0}


def test_staging_corrupt_payload_cuts_there(tmp_path):
    st = staging_fixture(tmp_path)
    st.begin("t1", {"id": 1})
    st.put(0, b"x" * RS)
    st.put(RS, b"y" * RS)
    st.put(2 * RS, b"z" * RS)
    pos = st.journal_records()[1][3]
    st.close()
    with open(tmp_path / "stage", "r+b") as f:
        f.seek(pos + 5)
        f.write(b"!")
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    assert st.staged() == {0}


class Crash(Exception):
    pass


def test_staging_commit_marker_without_apply_is_reapplied(tmp_path, monkeypatch):
    st = staging_fixture(tmp_path)
    old = read(tmp_path / "sec")
    st.begin("t1", {"id": 7})
    st.put(0, b"x" * RS)
    st.put(2 * RS, None, RS)

    def crash_mid_apply():
        off, length, zero, pos = st.journal_records()[0]
        os.pwrite(st._base, os.pread(st._fd, length, pos), off)
        raise Crash

    monkeypatch.setattr(st, "_apply", crash_mid_apply)
    with pytest.raises(Crash):
        st.commit()
    st.close()
    assert read(tmp_path / "sec")[2 * RS : 3 * RS] == old[2 * RS : 3 * RS]  # torn
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    assert st.recovery.action == "reapplied" and st.recovery.transfer_id == "t1"
    data = read(tmp_path / "sec")
    assert data[:RS] == b"x" * RS and data[2 * RS : 3 * RS] == bytes(RS)
    assert st.last_committed() == {"id": 7}
    st.close()
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)  # again: clean, idempotent
    assert st.recovery.action == "clean"


def test_staging_budget(tmp_path):
    box = {"budget": 1 << 20}
    st = staging_fixture(tmp_path, budget=lambda: box["budget"])
    st.begin("t1", {"id": 1})
    st.put(0, b"x" * RS)
    used = st.bytes_used
    box["budget"] = used + RS  # room for a zero record, not a data record
    with pytest.raises(ReservedCapacityFull, match="increase"):
        st.put(RS, b"y" * RS)
    assert st.bytes_used == used and st.staged() == {0}
    st.put(RS, None, RS)
    st.commit()
    assert read(tmp_path / "sec")[:RS] == b"x" * RS


def test_staging_put_errors(tmp_path):
    st = staging_fixture(tmp_path)
    with pytest.raises(MirrorError):
        st.put(0, b"x")
    st.begin("t", {})
    with pytest.raises(InvalidInput):
        st.put(16 * RS, b"x")
    with pytest.raises(InvalidInput):
        st.put(0, b"xx", 3)
    with pytest.raises(InvalidInput):
        st.put(0, None)


def test_staging_wrong_magic_version(tmp_path):
    make_volume(tmp_path / "sec", RS)
    (tmp_path / "stage").write_bytes(b"AMSTAGEJ" + (2).to_bytes(4, "little") + bytes(4))
    with pytest.raises(FormatMismatch, match="version 2"):
        Staging.open(tmp_path / "stage", tmp_path / "sec")
    (tmp_path / "stage").write_bytes(bytes(16))
    with pytest.raises(FormatMismatch, match="not a staging journal"):
        Staging.open(tmp_path / "stage", tmp_path / "sec")


def test_staging_direct_mode_resume(tmp_path):
    make_volume(tmp_path / "sec", 8 * RS + 100)
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    st.begin("init", {"id": 0}, direct=True)
    st.put(0, b"a" * RS)
    st.put(8 * RS, b"t" * 100)  # partial last region
    assert read(tmp_path / "sec")[:RS] == b"a" * RS  # written straight through
    st.flush()
    st.put(2 * RS, b"c" * RS)  # not flushed: may be lost
    st.close()
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    assert st.recovery.action == "resumable" and st.direct
    assert st.begin("init", {"id": 0}, direct=True) is True
    assert st.staged() == {0, 8 * RS}
    st.put(100, b"x" * 50)  # a piece of a region: completed from what the volume holds, written whole
    assert st.staged() == {0, 8 * RS}
    st.put(2 * RS, b"c" * RS)
    st.prepare()
    assert st.commit() == {"id": 0}
    assert read(tmp_path / "sec")[:RS] == b"a" * 100 + b"x" * 50 + b"a" * (RS - 150)
    assert st.last_committed() == {"id": 0}
    assert not os.path.exists(str(tmp_path / "stage") + ".progress")
    assert read(tmp_path / "sec")[8 * RS :] == b"t" * 100


def test_staging_direct_begin_forgets_old_point(tmp_path):
    st = staging_fixture(tmp_path)
    st.begin("t1", {"id": 1})
    st.commit()
    assert st.last_committed() == {"id": 1}
    st.begin("full", {"id": 2}, direct=True)
    assert st.last_committed() is None  # the volume no longer holds point 1


def test_staging_wrong_progress_magic(tmp_path):
    make_volume(tmp_path / "sec", 4 * RS)
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    st.begin("init", {}, direct=True)
    st.close()
    (tmp_path / "stage.progress").write_bytes(b"XXXXXXXX" + bytes(40))
    with pytest.raises(FormatMismatch, match="progress"):
        Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)


def test_pit_store_of_format_1_is_started_anew_in_format_2(tmp_path):
    # Format 1 had a 64-byte header; a PIT never outlives a restart, so opening one just replaces it.
    (tmp_path / "pit").write_bytes(struct.pack("<8sII", b"AMPITSTO", 1, RS).ljust(64, b"\0") + b"stale" * 100)
    make_volume(tmp_path / "base", 2 * RS)
    pit = PitStore.open(tmp_path / "pit", tmp_path / "base", RS, lambda: 1 << 30)
    try:
        head = (tmp_path / "pit").read_bytes()
        assert len(head) == PIT_HEADER and struct.unpack_from("<8sII", head) == (b"AMPITSTO", 2, RS)
        pit.begin([0, 1])
        assert pit.read_run(0, 2) == (tmp_path / "base").read_bytes()
    finally:
        pit.close()
