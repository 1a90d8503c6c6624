"""A volume as hosts see it: reads, writes, flushes and trims at byte offsets.

Every host write — from the Python API, the CLI or an NBD client — comes through
:class:`HostVolume`, in this order (SPEC §2 "The write path"):
1. refuse it if the volume may not be written (secondary role, failed, role change);
2. record the change in the write-intent log (durable only on a region's first write
   since the regions it keeps set, its activity log; the blocks written are kept in
   memory, so a sync sends only those). The NBD server announces a batch first
   (:meth:`HostVolume.intend_writes`) and waits, off the event loop and sharing one
   fdatasync with the batches of other connections, before it writes;
3. if a sync is capturing this volume, copy the old data into the PIT store;
4. write, and acknowledge — replication never waits in the write path.
It also serves as the NBD server's export backend (``core.nbd.backend``).
"""
from __future__ import annotations

import asyncio
import errno
import os
import time
from typing import Awaitable, Callable

import numpy as np

from core.datapath.changelog import ChangeLog
from core.datapath.extents import punch_hole
from core.datapath.pit import PitStore
from core.datapath.staging import Staging
from core.errors import HostWriteRefused, ReservedCapacityFull, VolumeFailed

# The change log's activity log (issue 14): regions being rewritten keep their bit set across
# commits, so their next write needs no durable update. It bounds what a crash adds to a
# resync: at most this many bytes of such regions beyond the changes since the recovery point.
ACTIVITY_LOG_BYTES = 1 << 30


class HostVolume:
    """One volume's open file and, when mirrored, its change log, PIT store and staging."""

    # When hosts last wrote to any volume of this process: syncs give way to host I/O.
    last_host_write = 0.0

    def __init__(self, array: str, name: str, path: str):
        self.array = array
        self.name = name
        self.path = path
        self._fd = os.open(path, os.O_RDWR)
        self._size = os.fstat(self._fd).st_size  # the engine resizes volumes: refresh_size
        # None when hosts may write, else the reason they may not (set by the engine
        # whenever roles, pairs or failures change; checked on every write).
        self.refusal: str | None = None
        self.changelog: ChangeLog | None = None
        # Regions written since the running sync's capture, durable like the change log:
        # after a crash they tell which regions the secondary staged from that capture
        # may no longer match, so the transfer resumes instead of starting over.
        self.since_capture: ChangeLog | None = None
        # Writes mark it while a capture is in flight, and from an open until the first
        # capture (a transfer a crash interrupted resumes from what it holds). Between
        # syncs nothing reads it and the next capture clears it: marking it then cost
        # every host write (issue 14: a log page per region first written after a sync).
        self._resumable = True
        self.reserved_capacity = 0  # bytes, while mirrored
        self.pit: PitStore | None = None
        self.staging: Staging | None = None
        self.failed = False
        # Called when a host write found the reserved capacity full during a sync.
        self.on_pit_full: Callable[["HostVolume", ReservedCapacityFull], None] | None = None
        self.bytes_written = 0

    # -- mirroring attachments -----------------------------------------------------
    def attach(self, reserved_dir: str, region_size: int, budget: Callable[[], int]) -> None:
        """Open the change log, PIT store and staging journal in the reserved capacity."""
        os.makedirs(reserved_dir, exist_ok=True)
        self._resumable = True
        self.changelog = ChangeLog.open(os.path.join(reserved_dir, "changes.log"), self.size, region_size,
                                        hot_regions=max(1, ACTIVITY_LOG_BYTES // region_size))
        # Not fsynced: only trusted after a process crash on the same boot (core.replication.sync_runner).
        self.since_capture = ChangeLog.open(os.path.join(reserved_dir, "since_capture.log"), self.size,
                                            region_size, durable=False, track_blocks=False)
        # The path, not our file: the store reads the volume through a file of its own, without readahead.
        self.pit = PitStore.open(os.path.join(reserved_dir, "pit.dat"), self.path, region_size, budget)
        self.staging = Staging.open(os.path.join(reserved_dir, "staging.dat"), self.path, budget, region_size)

    def log_repairs(self) -> str:
        """What opening the change logs repaired, in words ('' when they were intact).

        A damaged block of a log is taken as changed (its regions are resent), never
        as clean; the engine reports this as an event, since the reason behind it (a
        bad disk, a stray write) is worth the administrator's attention.
        """
        parts = []
        for what, log in (("change log", self.changelog), ("since-capture log", self.since_capture)):
            if log is None or not (log.repaired_blocks or log.rebuilt):
                continue
            how = "its header was damaged: rebuilt with every region changed" if log.rebuilt else \
                f"{log.repaired_blocks} damaged block(s) taken as changed"
            parts.append(f"{what} {log.path}: {how} ({log.repaired_regions} region(s))")
        return "; ".join(parts)

    def detach(self) -> None:
        for part in (self.changelog, self.since_capture, self.pit, self.staging):
            if part is not None:
                part.close()
        self.changelog = self.since_capture = self.pit = self.staging = None

    def close(self) -> None:
        self.detach()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- the NBD export backend protocol --------------------------------------------
    @property
    def size(self) -> int:
        return self._size

    def refresh_size(self) -> None:
        """The volume was resized (its capacity is the file's size)."""
        self._size = os.fstat(self._fd).st_size

    @property
    def read_only(self) -> bool:
        return self.failed or self.refusal is not None

    def read(self, offset: int, length: int) -> bytes:
        self._check_io(offset, length)
        return os.pread(self._fd, length, offset)

    def write(self, offset: int, data, fua: bool = False) -> None:
        length = len(data)
        self._before_write(offset, length)
        os.pwrite(self._fd, data, offset)
        self.bytes_written += length
        if fua:
            os.fdatasync(self._fd)

    def write_zeroes(self, offset: int, length: int, fua: bool = False) -> None:
        """Zeroes are tracked as changes like any write (and sent as zero markers)."""
        self._before_write(offset, length)
        punch_hole(self._fd, offset, length)
        self.bytes_written += length
        if fua:
            os.fdatasync(self._fd)

    def trim(self, offset: int, length: int) -> None:
        self.write_zeroes(offset, length)

    def capture(self) -> tuple[np.ndarray, np.ndarray]:
        """The sync instant for this volume: its changed regions (sorted) and those written since the last capture.

        The second set matters only to a transfer a crash interrupted, resumed now.
        """
        regions = np.sort(self.changelog.capture())
        written = self.since_capture.pending_regions()
        self.since_capture.clear()
        self._resumable = False
        return regions, written

    @property
    def _marks_since_capture(self) -> bool:
        return self._resumable or self.changelog.in_flight

    def intend_writes(self, ranges) -> Awaitable[None] | None:
        """A batch of host writes is coming: their change-log bits, durable at once.

        On an event loop (the NBD server): None when the bits are durable already, else
        an awaitable; the caller writes once it is done (group commit: the fdatasync runs
        off the loop and serves every batch queued meanwhile). Each write still marks
        both logs itself, which costs nothing once the bits are set.
        """
        if self.changelog is None or self.refusal is not None or self.failed:
            return None
        if self.pit is not None and self.pit.active:
            self.pit.prefetch(ranges)  # their copy-on-write reads, together rather than one by one
        # Not fsynced (see attach): no wait, one page-cache write for the batch rather than one per region.
        if self._marks_since_capture:
            self.since_capture.mark_many(ranges)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.changelog.mark_many(ranges)
            return None
        ticket = self.changelog.queue_intents(ranges)
        return None if ticket is None else self.changelog.make_durable(ticket)

    def flush(self) -> None:
        if self.failed:
            raise VolumeFailed(f"volume {self.array}/{self.name} has failed")
        os.fdatasync(self._fd)

    # -- internals ---------------------------------------------------------------------
    def _check_io(self, offset: int, length: int) -> None:
        if self.failed:
            raise VolumeFailed(f"volume {self.array}/{self.name} has failed; repair it (lab volume repair)")
        if offset < 0 or length < 0 or offset + length > self.size:
            raise OSError(errno.ENOSPC if offset + length > self.size else errno.EINVAL,
                          f"[{offset}, +{length}) is outside the {self.size}-byte volume {self.array}/{self.name}")

    def _before_write(self, offset: int, length: int) -> None:
        HostVolume.last_host_write = time.monotonic()
        self._check_io(offset, length)
        if self.refusal is not None:
            raise HostWriteRefused(f"volume {self.array}/{self.name} is read-only to hosts: {self.refusal}")
        if self.changelog is not None:
            self.changelog.mark(offset, length)
            if self._marks_since_capture:
                self.since_capture.mark(offset, length)
        if self.pit is not None and self.pit.active:
            try:
                self.pit.before_write(offset, length)
            except ReservedCapacityFull as full:
                # The sync loses its image; the host write still proceeds (acknowledged).
                self.pit.end()
                if self.on_pit_full is not None:
                    self.on_pit_full(self, full)

    def fileno(self) -> int:
        return self._fd
