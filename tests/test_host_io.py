"""Host writes while a sync runs (issue 14): copy-on-write per block, the image stays the capture instant's.

The PIT copies only the blocks a host write overwrites (a 4 KiB write copied its
whole 64 KiB region before); whatever the writes, every read of a captured region
(whole, a run, or a piece) returns the bytes of the capture instant.
"""
from __future__ import annotations

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.datapath.pit import HEADER_SIZE, PitStore

RS = 64 * 1024
B = 4096
REGIONS = 12
SIZE = REGIONS * RS - 3000  # a partial last region


def setup(d):
    vol = d / "vol"
    vol.write_bytes(os.urandom(SIZE))
    fd = os.open(vol, os.O_RDWR)
    return fd, PitStore.open(d / "pit", fd, RS, lambda: 1 << 30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(captured=st.sets(st.integers(0, REGIONS - 1), min_size=1),
       writes=st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(1, 3 * RS)), max_size=25),
       sent=st.sets(st.integers(0, REGIONS - 1)))
def test_every_read_is_the_capture_instant_whatever_the_writes(tmp_path_factory, captured, writes, sent):
    d = tmp_path_factory.mktemp("pit")
    fd, pit = setup(d)
    try:
        image = os.pread(fd, SIZE, 0)
        pit.begin(sorted(captured))
        for i, (off, n) in enumerate(writes):
            n = min(n, SIZE - off)
            pit.prefetch([(off, n)])  # what the NBD server's announcement does: a hint, no change
            pit.before_write(off, n)
            os.pwrite(fd, bytes([i % 255 + 1]) * n, off)
            if i == len(writes) // 2:
                for r in sent & captured:  # confirmed on the secondary: no longer protected
                    pit.mark_sent(r)
        live = sorted(captured - (sent if len(writes) else set()))
        for r in live:
            end = min((r + 1) * RS, SIZE)
            assert pit.read_region(r) == image[r * RS:end]
            assert pit.read_piece(r, r * RS + B + 100, 2 * B) == image[r * RS + B + 100:min(r * RS + 3 * B + 100, end)]
        runs = [r for r in live if r + 1 in live]
        for r in runs:
            assert pit.read_run(r, 2) == image[r * RS:min((r + 2) * RS, SIZE)]
    finally:
        pit.close()
        os.close(fd)


def test_a_4k_write_copies_its_block_not_its_region(tmp_path):
    fd, pit = setup(tmp_path)
    try:
        image = os.pread(fd, SIZE, 0)
        pit.begin(np.arange(REGIONS))
        for r in range(REGIONS - 1):
            pit.before_write(r * RS + 5 * B, B)
            os.pwrite(fd, b"\x01" * B, r * RS + 5 * B)
        stored = os.stat(tmp_path / "pit").st_blocks * 512 - HEADER_SIZE
        # The blocks written, one file page each (slots are page-aligned), not their regions
        # (11 x 64 KiB before).
        assert stored <= (REGIONS - 1) * B
        assert all(pit.read_region(r) == image[r * RS:(r + 1) * RS] for r in range(REGIONS - 1))
        assert pit.preserved_count == REGIONS - 1  # a slot per region: the reserved capacity's accounting
    finally:
        pit.close()
        os.close(fd)


def test_the_since_capture_log_is_kept_while_a_capture_may_resume(tmp_path):
    """Writes mark it from an open until the first capture and while a capture is in flight, not between syncs.

    After a crash, a resumed transfer resends what was written since its capture,
    including writes after the restart; between syncs nothing needs the log (the
    next capture clears it), and marking it cost every host write.
    """
    from core.replication.host_volume import HostVolume

    vol = tmp_path / "vol"
    vol.write_bytes(bytes(8 * RS))

    def opened() -> HostVolume:
        hv = HostVolume("A", "v", str(vol))
        hv.attach(str(tmp_path / "reserved"), RS, lambda: 1 << 30)
        return hv

    hv = opened()
    hv.write(1 * RS, b"x" * B)  # before the first capture: a transfer may resume from the log
    regions, written = hv.capture()
    assert regions.tolist() == [1] and written.tolist() == [1]
    hv.write(2 * RS, b"x" * B)  # during the sync
    assert hv.since_capture.pending_regions().tolist() == [2]
    hv.changelog.complete()
    hv.write(3 * RS, b"x" * B)  # between syncs
    assert hv.since_capture.pending_regions().tolist() == [2]
    hv.capture()
    hv.write(4 * RS, b"x" * B)
    hv.close()  # a process that died mid-sync: the next one resumes its transfer
    hv = opened()
    hv.write(5 * RS, b"x" * B)  # after the restart, before the resumed capture
    regions, written = hv.capture()
    assert set(written.tolist()) >= {4, 5}
    hv.close()
