"""The change log checksums its blocks: a damaged block is resent, never taken as clean.

A zeroed change-log bitmap once made the next sync send 0 bytes while the group
stayed Optimal: the secondary diverged silently. Each block of the log now carries
a CRC; on open a damaged block's regions all come back dirty (a delta resync) and
the log says what it repaired, so the engine logs it.
"""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.datapath import ChangeLog, FormatMismatch
from core.datapath import changelog_file as cl
from test_replication_support import RS as ENGINE_RS, make_pair, open_lab, volume_bytes

RS = 4096


def _marked(path, size: int, regions) -> ChangeLog:
    log = ChangeLog.open(path, size, RS)
    log.mark_all(regions)
    log.close()
    return log


def _damage(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _block_offset(block: int) -> int:
    return cl.HEADER_SIZE + block * cl.BLOCK_SIZE


def test_an_intact_log_reopens_unchanged_and_reports_no_repair(tmp_path):
    size = 3 * cl.BLOCK_REGIONS * RS
    regions = [0, 5, cl.BLOCK_REGIONS + 1, 3 * cl.BLOCK_REGIONS - 1]
    _marked(tmp_path / "cl", size, regions)
    again = ChangeLog.open(tmp_path / "cl", size, RS)
    assert again.pending_regions().tolist() == regions
    assert again.repaired_blocks == 0 and again.repaired_regions == 0 and not again.rebuilt


def test_a_zeroed_bitmap_brings_every_region_back_dirty(tmp_path):
    """The field failure: zeros after the header read as 'nothing changed' before block checksums."""
    size = 100 * RS
    _marked(tmp_path / "cl", size, [3, 42])
    raw = (tmp_path / "cl").read_bytes()
    _damage(tmp_path / "cl", cl.HEADER_SIZE, bytes(len(raw) - cl.HEADER_SIZE))
    again = ChangeLog.open(tmp_path / "cl", size, RS)
    assert {3, 42} <= set(again.pending_regions().tolist())
    assert again.pending_regions().tolist() == list(range(100))  # the whole damaged block, never clean
    assert again.repaired_blocks == 1 and again.repaired_regions == 100


def test_a_flipped_bit_dirties_only_its_block_and_the_repair_is_durable(tmp_path):
    size = 3 * cl.BLOCK_REGIONS * RS
    _marked(tmp_path / "cl", size, [7, cl.BLOCK_REGIONS + 9, 2 * cl.BLOCK_REGIONS + 11])
    off = _block_offset(1) + 100
    byte = (tmp_path / "cl").read_bytes()[off]
    _damage(tmp_path / "cl", off, bytes([byte ^ 0x10]))
    again = ChangeLog.open(tmp_path / "cl", size, RS)
    pending = set(again.pending_regions().tolist())
    block1 = set(range(cl.BLOCK_REGIONS, 2 * cl.BLOCK_REGIONS))
    assert block1 <= pending and pending - block1 == {7, 2 * cl.BLOCK_REGIONS + 11}
    assert again.repaired_blocks == 1
    again.close()
    third = ChangeLog.open(tmp_path / "cl", size, RS)  # repaired on disk: no second report
    assert third.repaired_blocks == 0 and set(third.pending_regions().tolist()) == pending


def test_a_truncated_log_treats_the_missing_blocks_as_changed(tmp_path):
    size = 2 * cl.BLOCK_REGIONS * RS
    _marked(tmp_path / "cl", size, [1])
    os.truncate(tmp_path / "cl", _block_offset(1) + 10)
    again = ChangeLog.open(tmp_path / "cl", size, RS)
    assert again.pending_regions().tolist() == [1] + list(range(cl.BLOCK_REGIONS, 2 * cl.BLOCK_REGIONS))
    assert again.repaired_blocks == 1
    assert again.bytes_used == os.path.getsize(tmp_path / "cl")


def test_a_damaged_header_rebuilds_the_log_all_dirty(tmp_path):
    size = 50 * RS + 100
    _marked(tmp_path / "cl", size, [2])
    _damage(tmp_path / "cl", 20, b"\xff\xff")  # inside the header: its CRC no longer matches
    again = ChangeLog.open(tmp_path / "cl", size, RS)
    assert again.rebuilt and again.pending_regions().tolist() == list(range(51))
    again.close()
    assert ChangeLog.open(tmp_path / "cl", size, RS).pending_regions().tolist() == list(range(51))


def test_a_zeroed_header_is_damage_but_a_foreign_file_is_refused(tmp_path):
    _marked(tmp_path / "cl", 10 * RS, [2])
    _damage(tmp_path / "cl", 0, bytes(cl.HEADER_SIZE))
    assert ChangeLog.open(tmp_path / "cl", 10 * RS, RS).rebuilt
    (tmp_path / "other").write_bytes(b"NOTALOG!" + bytes(600))
    with pytest.raises(FormatMismatch, match="not a change log"):
        ChangeLog.open(tmp_path / "other", 10 * RS, RS)


def _v1_log(path, size: int, regions) -> None:
    """A change log as version 1 wrote it: 64-byte header, a bare bitmap (no block checksums)."""
    count = -(-size // RS)
    head = struct.pack("<8sIIQQ", b"AMCHGLOG", 1, RS, size, count)
    head = (head + struct.pack("<I", zlib.crc32(head))).ljust(64, b"\0")
    bits = np.zeros(((count + 7) // 8) * 8, dtype=bool)
    bits[list(regions)] = True
    path.write_bytes(head + np.packbits(bits, bitorder="little").tobytes())


def test_a_version_1_log_is_read_and_upgraded(tmp_path):
    size = 5000 * RS
    _v1_log(tmp_path / "cl", size, [0, 17, 4999])
    log = ChangeLog.open(tmp_path / "cl", size, RS)
    assert log.pending_regions().tolist() == [0, 17, 4999] and log.upgraded_from == 1
    assert log.repaired_blocks == 0
    log.close()
    raw = (tmp_path / "cl").read_bytes()
    assert raw[:8] == b"AMCHGLOG" and struct.unpack_from("<I", raw, 8)[0] == cl.VERSION == 2
    assert ChangeLog.open(tmp_path / "cl", size, RS).pending_regions().tolist() == [0, 17, 4999]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(marks=st.sets(st.integers(0, 3 * 4064 - 1), max_size=60), block=st.integers(0, 2),
       how=st.sampled_from(["zero", "flip", "garbage"]), pos=st.integers(0, 511), seed=st.integers(0, 2**16))
def test_property_a_damaged_block_never_reads_clean(tmp_path_factory, marks, block, how, pos, seed):
    """Whatever happens to one block, every region marked in it comes back dirty; others are exact."""
    d = tmp_path_factory.mktemp("cl")
    size = 3 * cl.BLOCK_REGIONS * RS
    _marked(d / "cl", size, sorted(marks))
    off = _block_offset(block)
    if how == "zero":
        _damage(d / "cl", off, bytes(cl.BLOCK_SIZE))
    elif how == "flip":
        raw = (d / "cl").read_bytes()
        _damage(d / "cl", off + pos, bytes([raw[off + pos] ^ (1 << (seed % 8))]))
    else:
        _damage(d / "cl", off, np.random.default_rng(seed).bytes(cl.BLOCK_SIZE))
    log = ChangeLog.open(d / "cl", size, RS)
    pending = set(log.pending_regions().tolist())
    assert set(marks) <= pending
    lo, hi = block * cl.BLOCK_REGIONS, (block + 1) * cl.BLOCK_REGIONS
    assert {r for r in pending if not lo <= r < hi} == {r for r in marks if not lo <= r < hi}
    assert log.repaired_blocks == 1
    log.close()


def _changes_log(client, array: str, volume: str) -> str:
    """The change log of ``array``'s volume, as that array's daemon has it open."""
    return client.call(lambda: client.engine.daemon(array).engine.host_volume(array, volume).changelog.path)


def test_a_zeroed_change_log_resends_its_regions_and_says_so(lab_home):
    """Writes made before a restart of the arrays' daemons whose log was zeroed still reach the secondary."""
    c = open_lab(lab_home)
    try:
        make_pair(c, "4MiB")
        data = os.urandom(3 * ENGINE_RS)
        c.host_write("SiteA/v", 5 * ENGINE_RS, data)
        path = _changes_log(c, "SiteA", "v")
    finally:
        c.close()
    size = os.path.getsize(path)
    _damage(path, cl.HEADER_SIZE, bytes(size - cl.HEADER_SIZE))  # the bitmap, zeroed while the array was down
    c = open_lab(lab_home)
    try:
        stats = c.sync_now("G", wait=True)
        assert stats.unique_changed_bytes >= 3 * ENGINE_RS
        assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")
        events = [e for e in c.events("SiteA") if e.code == "arvmChangeLogRepaired"]
        assert len(events) == 1 and "SiteA/v" in events[0].message and events[0].severity == "warning"
    finally:
        c.close()
