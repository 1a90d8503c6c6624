"""Dirty blocks inside regions (issue 14): the change log's in-memory masks and the pieces a secondary completes.

A 4 KiB host write sends its 4 KiB block, not its 64 KiB region; the secondary's
journal holds the pieces themselves, and a region counts as held only once every piece
of it is durable, so a resumed transfer never takes half a region as held. Unit tests of the on-disk mechanisms; tests/test_dirty_blocks_sync.py runs syncs.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from core.datapath import ChangeLog, PitStore, Staging
from core.datapath.dirty_blocks import block_runs, dirty_block_size
from core.errors import MirrorError

RS = 64 * 1024
B = 4096


def masks(log: ChangeLog) -> dict[int, int]:
    regions = log.capture()
    return dict(zip(regions.tolist(), (int(m) for m in log.inflight_blocks(regions))))


def bits(*blocks: int) -> int:
    return sum(1 << b for b in blocks)


def test_block_size_follows_the_region_size():
    assert dirty_block_size(RS) == B
    assert dirty_block_size(1 << 20) == 16 * 1024  # at most 64 blocks a region
    assert dirty_block_size(4096) == 4096  # one block: whole regions only
    assert dirty_block_size(96 * 1024) == B  # 24 blocks
    assert dirty_block_size(1536) == 1536  # less than a block: whole regions only


def test_marks_keep_the_blocks_written_per_region(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 10 * RS + 5000, RS)
    log.mark(100, 10)
    log.mark(RS + 3 * B, 2 * B)
    log.mark(2 * RS - 10, 20)  # straddles regions 1 and 2
    log.mark_many([(3 * RS + 5, 1), (3 * RS + 40000, 1), (3 * RS + 9 * B, B)])
    log.mark(4 * RS, 3 * RS)  # region 5 is covered whole, 4 and 6 too
    log.mark(10 * RS, 5000)  # the short last region
    assert masks(log) == {0: bits(0), 1: bits(3, 4, 15), 2: bits(0), 3: bits(0, 9), 4: 0xFFFF, 5: 0xFFFF,
                          6: 0xFFFF, 10: bits(0, 1)}
    log.complete()


def test_writes_into_a_region_already_in_the_log_keep_their_blocks(tmp_path):
    """Most writes land in a region whose bit is durable already: that path keeps the same masks."""
    log = ChangeLog.open(tmp_path / "cl", 10 * RS, RS, hot_regions=4)
    log.mark(B, 1)  # region 0's bit becomes durable
    log.mark(5 * B, 1)
    log.mark(5 * B + 10, 1)
    log.mark(RS - 1, 1)
    assert masks(log) == {0: bits(1, 5, 15)}
    log.mark(7 * B, 2 * B)  # during the sync: the next sync's blocks only
    log.complete()
    log.mark(7 * B + 1, 1)
    assert log.persisted_regions().tolist() == [0] and masks(log) == {0: bits(7, 8)}


def test_regions_of_unknown_blocks_are_whole(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 10 * RS, RS)
    log.mark(RS + 5, 1)
    log.mark_all([1, 2])  # the peer's log, online verify, a repair: which blocks is not known
    log.mark(2 * RS, 1)  # a whole region stays whole
    assert masks(log) == {1: 0, 2: 0}
    log.complete()
    log.mark(3 * RS, 1)
    log.close()
    again = ChangeLog.open(tmp_path / "cl", 10 * RS, RS)  # a restart: the durable log knows regions only
    again.mark(3 * RS + B, 1)
    assert masks(again) == {3: 0}


def test_an_aborted_capture_gives_its_blocks_back(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 10 * RS, RS)
    log.mark(0, 1)
    log.mark(RS + 2 * B, 1)
    log.mark(3 * RS, 1)
    log.mark_all([3])
    log.capture()
    log.mark(RS + 5 * B, 1)  # written during the capture: both writes' blocks are pending now
    log.mark(2 * RS + 7 * B, 1)
    log.mark(3 * RS + B, 1)  # whole before: stays whole
    log.abort()
    assert masks(log) == {0: bits(0), 1: bits(2, 5), 2: bits(7), 3: 0}


def test_the_since_capture_log_tracks_no_blocks(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 10 * RS, RS, durable=False, track_blocks=False)
    log.mark(5, 1)
    assert log.block_size == RS and masks(log) == {0: 0}


def test_the_unsynchronized_bytes_in_written_blocks(tmp_path):
    """Scattered blocks count as themselves, a region of unknown blocks whole, dirty and in flight together."""
    size = 10 * RS - 5000  # a short last region
    log = ChangeLog.open(tmp_path / "cl", size, RS)
    log.mark(0, B)
    log.mark(RS + 3 * B, 10)  # one block
    log.mark(2 * RS + 5 * B, 2 * B)
    assert log.unsynchronized_bytes == 3 * RS and log.unsynchronized_block_bytes == 4 * B
    log.capture()  # in flight now
    log.mark(RS + 9 * B, B)  # dirty again, another block
    log.mark_all([9])  # the short last region, blocks unknown: whole
    assert log.unsynchronized_block_bytes == 5 * B + (size - 9 * RS)
    log.complete()
    assert log.unsynchronized_block_bytes == B + (size - 9 * RS)
    log.capture()
    log.mark_many([(RS + 10 * B, B), (3 * RS, B)])
    assert log.unsynchronized_block_bytes == 3 * B + (size - 9 * RS)
    log.abort()  # the in-flight blocks are dirty again, with those written since
    assert log.unsynchronized_block_bytes == 3 * B + (size - 9 * RS)
    log.clear()
    assert log.unsynchronized_block_bytes == 0
    log.close()


def test_block_runs_coalesce_and_clip():
    assert block_runs(0, B, 0, RS) == [(0, RS)]
    assert block_runs(bits(0, 1, 2, 5, 15), B, RS, 2 * RS) == [(RS, 3 * B), (RS + 5 * B, B), (RS + 15 * B, B)]
    assert block_runs(bits(0, 1), B, 0, 5000) == [(0, 5000)]
    assert block_runs(0xFFFF, B, 0, RS) == [(0, RS)]


def test_pit_pieces_come_from_the_copy_of_a_rewritten_region(tmp_path):
    vol = tmp_path / "v"
    vol.write_bytes(b"a" * RS + b"b" * RS)
    fd = os.open(vol, os.O_RDWR)
    pit = PitStore.open(tmp_path / "pit", fd, RS, lambda: 1 << 30)
    pit.begin([0, 1])
    pit.before_write(B, 10)
    os.pwrite(fd, b"X" * 10, B)
    assert pit.read_piece(0, B, B) == b"a" * B  # the capture instant, from the copy
    assert pit.read_piece(1, RS + 2 * B, B) == b"b" * B  # from the volume
    with pytest.raises(Exception):
        pit.read_piece(0, RS - 10, 20)  # not inside region 0
    pit.close()
    os.close(fd)


def test_a_write_continuing_a_stream_copies_the_rest_of_its_region_and_others_only_their_blocks(tmp_path):
    """A sequential writer gets the rest of the region copied at once; a random one only what it overwrites,
    even next to blocks already copied (under random writes that soon holds for every region).

    Measured as the PIT file's allocated bytes (the reserved capacity really used).
    """
    vol = tmp_path / "v"
    old = os.urandom(2 * RS)
    vol.write_bytes(old)
    fd = os.open(vol, os.O_RDWR)
    pit = PitStore.open(tmp_path / "pit", fd, RS, lambda: 1 << 30)

    def allocated() -> int:
        return os.stat(tmp_path / "pit").st_blocks * 512 - 4096  # the header block

    def write(offset: int) -> None:
        pit.before_write(offset, B)
        os.pwrite(fd, os.urandom(B), offset)

    pit.begin([0, 1])
    write(2 * B)
    write(9 * B)  # random: not next to block 2
    write(8 * B)  # next to block 9, but it does not start where a write ended
    assert allocated() == 3 * B
    write(RS + 4 * B)
    write(RS + 5 * B)  # starts where the last write ended: the rest of region 1 too
    assert allocated() == 3 * B + RS
    assert pit.read_region(0) == old[:RS] and pit.read_region(1) == old[RS:]
    pit.close()
    os.close(fd)


def test_the_pit_of_regions_sent_as_pieces_preserves_their_dirty_blocks_only(tmp_path):
    """A write elsewhere in such a region copies nothing; the region cannot be read whole."""
    vol = tmp_path / "v"
    old = os.urandom(3 * RS)
    vol.write_bytes(old)
    fd = os.open(vol, os.O_RDWR)
    pit = PitStore.open(tmp_path / "pit", vol, RS, lambda: 1 << 30)
    pit.begin([0, 1, 2], [bits(3, 4), 0, (1 << (RS // B)) - 1])  # pieces; whole (unknown); whole (every block)
    for offset in (9 * B, RS + 9 * B, 2 * RS + 9 * B, 3 * B):
        pit.prefetch([(offset, B)])
        pit.before_write(offset, B)
        os.pwrite(fd, os.urandom(B), offset)
    assert pit.preserved_count == 3  # block 9 of region 0 was not copied, block 3 was
    assert os.stat(tmp_path / "pit").st_blocks * 512 - 4096 == 3 * B
    assert pit.read_piece(0, 3 * B, 2 * B) == old[3 * B:5 * B]
    assert pit.read_run(1, 2) == old[RS:]
    with pytest.raises(MirrorError, match="cannot be read whole"):
        pit.read_region(0)
    with pytest.raises(MirrorError, match="cannot be read whole"):
        pit.read_run(0, 2)
    with pytest.raises(MirrorError, match="not all preserved"):
        pit.read_piece(0, 4 * B, 2 * B)  # block 5 was never preserved
    pit.close()
    os.close(fd)


def test_pieces_read_the_capture_instant_under_random_writes(tmp_path):
    """Random masks, random writes (some over several regions), random reads: every piece is the capture's."""
    rng = np.random.default_rng(11)
    regions = 24
    vol = tmp_path / "v"
    old = os.urandom(regions * RS - 1000)  # a short last region
    vol.write_bytes(old)
    fd = os.open(vol, os.O_RDWR)
    pit = PitStore.open(tmp_path / "pit", vol, RS, lambda: 1 << 30)
    captured = sorted(rng.choice(regions, 16, replace=False).tolist())
    blocks = [int(rng.integers(1, 1 << (RS // B))) for _ in captured]
    pit.begin(captured, blocks)
    for _ in range(300):
        offset = int(rng.integers(0, len(old) - 1))
        length = int(min(rng.choice([100, B, 3 * B, RS + 5000]), len(old) - offset))
        pit.prefetch([(offset, length)])
        pit.before_write(offset, length)
        os.pwrite(fd, os.urandom(length), offset)
        r = captured[int(rng.integers(0, len(captured)))]
        for off, n in block_runs(blocks[captured.index(r)], B, r * RS, min((r + 1) * RS, len(old))):
            assert pit.read_piece(r, off, n) == old[off:off + n]
    pit.close()
    os.close(fd)


def test_a_run_read_lays_the_copied_blocks_over_the_volume(tmp_path):
    """The sender's run read: regions with no copy, some blocks copied, all copied, and a short last one."""
    vol = tmp_path / "v"
    old = os.urandom(4 * RS + 5000)
    vol.write_bytes(old)
    fd = os.open(vol, os.O_RDWR)
    pit = PitStore.open(tmp_path / "pit", vol, RS, lambda: 1 << 30)
    pit.begin(range(5))
    for offset, length in ((RS + 3 * B, B), (2 * RS, RS), (4 * RS, 100), (3 * RS + 9 * B, 2 * B)):
        pit.prefetch([(offset, length)])
        pit.before_write(offset, length)
        os.pwrite(fd, os.urandom(length), offset)
    assert pit.read_run(0, 5) == old
    assert pit.read_run(1, 3) == old[RS:4 * RS]
    pit.close()
    os.close(fd)


def staging(tmp_path, old: bytes, size: int | None = None) -> Staging:
    vol = tmp_path / "sec"
    vol.write_bytes(old)
    if size is not None:
        os.truncate(vol, size)
    return Staging.open(tmp_path / "stage", vol, region_size=RS)


def test_pieces_are_completed_into_whole_regions_from_the_recovery_point(tmp_path):
    old = os.urandom(4 * RS)
    st = staging(tmp_path, old)
    st.begin("t", {"id": 2})
    new = bytearray(old)
    pieces = [(B, 100, os.urandom(100)), (RS - B, B, None), (2 * RS + 3 * B, 2 * B, os.urandom(2 * B))]
    for off, n, data in pieces:
        new[off:off + n] = data if data is not None else bytes(n)
    assert st.put_many(pieces) == 2 * RS  # the whole regions staged
    assert st.staged() == {0, 2 * RS}
    assert (tmp_path / "sec").read_bytes() == old  # the recovery point is intact until the commit
    st.commit()
    assert (tmp_path / "sec").read_bytes() == bytes(new)


def test_a_resent_piece_is_laid_over_what_the_transfer_staged(tmp_path):
    old = os.urandom(2 * RS)
    st = staging(tmp_path, old)
    st.begin("t", {"id": 2})
    first = os.urandom(RS)
    st.put(0, first)  # the region, whole, from a sender without pieces
    st.put_many([(5 * B, B, os.urandom(B))])
    piece = os.urandom(B)
    st.put_many([(5 * B, B, piece)])  # sent again (a resend): the staged copy is completed, not the volume
    st.close()
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)  # and after a restart
    assert st.recovery.action == "resumable" and st.staged() == {0}
    tail = os.urandom(B)
    st.begin("t", {"id": 2})
    st.put_many([(RS - B, B, tail)])
    st.commit()
    assert (tmp_path / "sec").read_bytes() == first[:5 * B] + piece + first[6 * B:RS - B] + tail + old[RS:]


def test_the_journal_holds_the_pieces_not_whole_regions(tmp_path):
    """Random 4 KiB writes cost the secondary's reserved capacity their own bytes (issue 14)."""
    old = os.urandom(64 * RS)
    st = staging(tmp_path, old)
    st.begin("t", {"id": 2})
    new = bytearray(old)
    for r in range(64):
        piece = os.urandom(B)
        new[r * RS + 7 * B:r * RS + 8 * B] = piece
        assert st.put_many([(r * RS + 7 * B, B, piece)]) == RS
    assert st.bytes_used < 64 * (B + 100) + 1024  # a 64 KiB region each would be 4 MiB
    assert st.staged() == {r * RS for r in range(64)}
    st.commit()
    assert (tmp_path / "sec").read_bytes() == bytes(new)


def test_a_commit_applies_pieces_runs_and_zeros_across_many_journal_windows(tmp_path):
    """Thousands of pieces (several of the apply's 4 MiB journal windows), a 2 MiB run and zero pieces land exactly."""
    old = os.urandom(256 * RS)
    st = staging(tmp_path, old)
    st.begin("t", {"id": 2})
    new = bytearray(old)
    run = os.urandom(32 * RS)
    st.put_many([(200 * RS, len(run), run)])  # larger than a quarter window: copied in the kernel
    new[200 * RS:232 * RS] = run
    for r in range(200):
        items = []
        for k in range(1, 16, 2):
            data = None if (r + k) % 7 == 0 else os.urandom(B)
            items.append((r * RS + k * B, B, data))
            new[r * RS + k * B:r * RS + (k + 1) * B] = data if data is not None else bytes(B)
        st.put_many(items)
    assert st.bytes_used > len(run) + (4 << 20)  # the pieces alone fill more than one window
    st.commit()
    assert (tmp_path / "sec").read_bytes() == bytes(new)


@pytest.mark.parametrize("cut", ["at a record's end", "inside a record"])
def test_a_batch_cut_short_by_a_crash_leaves_none_of_its_regions_held(tmp_path, cut):
    """A torn tail that keeps some pieces of a batch keeps none: its regions are sent again whole."""
    old = os.urandom(4 * RS)
    st = staging(tmp_path, old)
    st.begin("t", {"id": 2})
    a = os.urandom(B)
    st.put_many([(3 * B, B, a)])
    end_of_first = st.bytes_used
    st.put_many([(RS, B, os.urandom(B)), (RS + 9 * B, B, os.urandom(B)), (2 * RS, B, os.urandom(B))])
    st.close()
    record = 32 + B
    os.truncate(tmp_path / "stage", end_of_first + (2 * record if cut == "at a record's end" else record + 100))
    st = Staging.open(tmp_path / "stage", tmp_path / "sec", region_size=RS)
    assert st.recovery.action == "resumable" and st.recovery.dropped_bytes > 0
    assert st.staged() == {0}  # region 1's first two pieces are whole on disk, its batch is not
    assert st.bytes_used == end_of_first
    assert st.begin("t", {"id": 2})  # the same transfer, resumed
    b = os.urandom(RS)
    st.put_many([(RS, RS, b)])  # sent again, whole this time
    st.commit()
    assert (tmp_path / "sec").read_bytes() == old[:3 * B] + a + old[4 * B:RS] + b + old[2 * RS:]


def test_pieces_of_a_zeroed_region_stage_a_zero_record(tmp_path):
    st = staging(tmp_path, b"\x01" * B + bytes(RS - B))
    st.begin("t", {"id": 2})
    st.put_many([(0, B, None)])
    assert st.bytes_used < 200  # no payload: a zero record
    st.commit()
    assert (tmp_path / "sec").read_bytes() == bytes(RS)


def test_a_secondary_larger_than_its_primary_keeps_its_tail(tmp_path):
    """The primary's short last region is a piece of the secondary's region: completed, not refused."""
    old = os.urandom(2 * RS)
    st = staging(tmp_path, old)
    st.begin("init", {"id": 1}, direct=True)
    data = os.urandom(100)
    st.put(RS, data)  # a primary of RS + 100 bytes
    st.commit()
    assert (tmp_path / "sec").read_bytes() == old[:RS] + data + old[RS + 100:]


def test_direct_mode_writes_completed_regions_in_place(tmp_path):
    old = os.urandom(3 * RS)
    st = staging(tmp_path, old)
    st.begin("resync", {"id": 3}, direct=True)
    a, b = os.urandom(B), os.urandom(3 * B)
    st.put_many([(RS + B, B, a), (RS + 8 * B, 3 * B, b)])
    assert st.staged() == {RS}
    expect = bytearray(old)
    expect[RS + B:RS + 2 * B] = a
    expect[RS + 8 * B:RS + 11 * B] = b
    assert (tmp_path / "sec").read_bytes() == bytes(expect)
    st.commit()
    assert (tmp_path / "sec").read_bytes() == bytes(expect)


def test_masks_survive_a_grown_volume(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 2 * RS, RS)
    log.mark(B, 1)
    log.resize(5000 * RS)
    log.mark(4999 * RS + 2 * B, 1)
    got = masks(log)
    assert got == {0: bits(1), 4999: bits(2)}
    assert np.all(log.inflight_blocks([0, 4999]) == [bits(1), bits(2)])
