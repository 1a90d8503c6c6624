"""The change log: which regions of a primary volume still have to be replicated.

A write-intent log in reserved capacity (SPEC §2 "Reserved capacity"): a bit per
region, set and made durable *before* the host data is written, so after a crash or
a controller reset every region that may differ from the secondary is known and the
resync sends only those (never a full copy). In memory three bitmaps:

* D, *dirty*: written since the last capture;
* S, *in flight*: captured for the sync that is running;
* P, *persistent*: mirror of the bits on disk, always a superset of D | S.

A write to a region already in P costs no I/O, which keeps ``mark`` at about a
microsecond on the host write path. Clearing (after a commit) is lazy: a stale bit
only costs a resend.

File layout: a 64-byte header (magic, version, region size, volume size, region
count, CRC32 of the header) then the bitmap, bit ``i`` of byte ``i // 8`` (little
bit order) for region ``i``.
"""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from core.datapath.extents import FormatMismatch, check_format, create_atomically
from core.domain import DEFAULT_REGION_SIZE
from core.errors import InvalidInput, MirrorError

MAGIC = b"AMCHGLOG"
VERSION = 1
HEADER_SIZE = 64
_HEADER = struct.Struct("<8sIIQQ")  # magic, version, region size, volume size, regions
_CRC = struct.Struct("<I")


def _header(region_size: int, volume_size: int, regions: int) -> bytes:
    head = _HEADER.pack(MAGIC, VERSION, region_size, volume_size, regions)
    head += _CRC.pack(zlib.crc32(head))
    return head.ljust(HEADER_SIZE, b"\0")


def _bitmap_bytes(regions: int) -> int:
    return (regions + 7) // 8


class ChangeLog:
    """Change tracking of one primary volume, persisted as a write-intent log.

    Used by the engine thread only. Call :meth:`mark` before writing host data;
    :meth:`capture` at the sync instant; :meth:`complete` once the secondary
    committed, :meth:`abort` if the sync failed.
    """

    durable = True

    def __init__(self, path, fd: int, volume_size: int, region_size: int, persisted: np.ndarray):
        self.path = os.fspath(path)
        self._fd = fd
        self._region_size = region_size
        self._volume_size = volume_size
        self._regions = -(-volume_size // region_size)
        self._persisted = persisted  # P, padded to a multiple of 8
        self._dirty = persisted.copy()  # after (re)open every persisted bit is dirty
        self._inflight = np.zeros_like(persisted)
        self._capturing = False

    # -- lifecycle ---------------------------------------------------------------
    @classmethod
    def open(cls, path, volume_size: int, region_size: int = DEFAULT_REGION_SIZE,
             durable: bool = True) -> "ChangeLog":
        """Create the log, or reopen it: every bit set on disk is then dirty.

        ``durable=False`` skips the fdatasync of new bits: the log then survives a
        process crash (the page cache) but not a power loss or OS crash; its user
        must not trust it after a reboot (see ``core.service_sync`` boot id).
        """
        if region_size <= 0 or region_size % 512:
            raise InvalidInput(f"region size {region_size} must be a positive multiple of 512 bytes")
        if volume_size < 0:
            raise InvalidInput(f"volume size {volume_size} must not be negative")
        if not os.path.exists(path):
            regions = -(-volume_size // region_size)
            create_atomically(path, _header(region_size, volume_size, regions) + bytes(_bitmap_bytes(regions)))
        fd = os.open(path, os.O_RDWR)
        try:
            head = os.pread(fd, HEADER_SIZE, 0)
            check_format(head, MAGIC, VERSION, "change log", path)
            if len(head) < _HEADER.size + 4 or _CRC.unpack_from(head, _HEADER.size)[0] != zlib.crc32(head[: _HEADER.size]):
                raise FormatMismatch(f"{path}: change log header is damaged (CRC mismatch); recreate the pair's reserved capacity")
            _, _, stored_region, stored_size, regions = _HEADER.unpack_from(head)
            if stored_region != region_size:
                raise InvalidInput(f"{path} tracks {stored_region}-byte regions, not {region_size}")
            if volume_size < stored_size:
                raise InvalidInput(f"{path} tracks a {stored_size}-byte volume; a volume cannot shrink to {volume_size}")
            nbytes = _bitmap_bytes(regions)
            raw = os.pread(fd, nbytes, HEADER_SIZE)
            if len(raw) != nbytes:
                raise FormatMismatch(f"{path}: change log bitmap is truncated ({len(raw)} of {nbytes} bytes)")
            bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little").astype(bool)
            bits[regions:] = False
        except BaseException:
            os.close(fd)
            raise
        log = cls(path, fd, stored_size, region_size, bits)
        log.durable = durable
        if volume_size > stored_size:  # grown while we were down, or a crash mid-resize
            log.resize(volume_size)
        return log

    def close(self) -> None:
        """Release the file; the persisted bits stay for the next open."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def resize(self, new_size: int) -> None:
        """Follow a grown volume: new regions start clean (never written)."""
        if new_size < self._volume_size:
            raise InvalidInput(f"volume cannot shrink from {self._volume_size} to {new_size} bytes")
        regions = -(-new_size // self._region_size)
        old_bytes, new_bytes = _bitmap_bytes(self._regions), _bitmap_bytes(regions)
        if new_bytes > old_bytes:  # zeros first, header last: a crash leaves the old size valid
            os.pwrite(self._fd, bytes(new_bytes - old_bytes), HEADER_SIZE + old_bytes)
            os.fdatasync(self._fd)
            pad = (new_bytes - old_bytes) * 8
            for name in ("_persisted", "_dirty", "_inflight"):
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros(pad, dtype=bool)]))
        os.pwrite(self._fd, _header(self._region_size, new_size, regions), 0)
        os.fdatasync(self._fd)
        self._volume_size, self._regions = new_size, regions

    # -- host write path ---------------------------------------------------------
    def mark(self, offset: int, length: int) -> None:
        """Record a host write of ``length`` bytes at ``offset``; call before writing.

        Durable (fdatasync) when a region is new to the persistent log, free otherwise.
        """
        if length <= 0:
            return
        rs = self._region_size
        first = offset // rs
        last = (offset + length - 1) // rs
        if offset < 0 or last >= self._regions:
            raise InvalidInput(f"write [{offset}, {offset + length}) is outside the {self._volume_size}-byte volume")
        if first == last:
            self._dirty[first] = True
            if self._persisted[first]:
                return
        else:
            self._dirty[first : last + 1] = True
            if self._persisted[first : last + 1].all():
                return
        self._persisted[first : last + 1] = True
        self._persist_range(first, last, durable=self.durable)

    def mark_many(self, ranges) -> None:
        """:meth:`mark` for a batch of writes, with at most one durable log update.

        The NBD server announces every write of a received batch before doing any of
        them, so a queue-depth-16 random workload pays one fdatasync per batch, not
        one per write. Ranges outside the volume are skipped (the write is refused).
        """
        spans = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
        if not len(spans):
            return
        rs = self._region_size
        offset, length = spans[:, 0], spans[:, 1]
        first = offset // rs
        last = (offset + length - 1) // rs
        ok = (length > 0) & (offset >= 0) & (last < self._regions)
        first, last = first[ok], last[ok]
        single = first == last  # the common case (small writes): one vectorized pass
        idx = first[single]
        self._dirty[idx] = True
        new = idx[~self._persisted[idx]]
        lo = int(new.min()) if len(new) else -1
        hi = int(new.max()) if len(new) else -1
        self._persisted[new] = True
        for a, b in zip(first[~single].tolist(), last[~single].tolist()):
            self._dirty[a : b + 1] = True
            if not self._persisted[a : b + 1].all():
                self._persisted[a : b + 1] = True
                lo = a if lo < 0 else min(lo, a)
                hi = max(hi, b)
        if lo >= 0:
            self._persist_range(lo, hi, durable=self.durable)

    def mark_all(self, regions=None) -> None:
        """Mark regions (indices) dirty, e.g. from the peer's log; None means every region."""
        if regions is None:
            idx = np.arange(self._regions, dtype=np.int64)
        else:
            idx = np.asarray(regions, dtype=np.int64).ravel()
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= self._regions:
            raise InvalidInput(f"region index out of range 0..{self._regions - 1}")
        self._dirty[idx] = True
        if self._persisted[idx].all():
            return
        self._persisted[idx] = True
        self._persist_range(int(idx.min()), int(idx.max()), durable=self.durable)

    def _persist_range(self, first: int, last: int, durable: bool) -> None:
        lo, hi = first >> 3, (last >> 3) + 1
        chunk = np.packbits(self._persisted[lo * 8 : hi * 8], bitorder="little")
        os.pwrite(self._fd, chunk.tobytes(), HEADER_SIZE + lo)
        if durable:
            os.fdatasync(self._fd)

    # -- sync cycle --------------------------------------------------------------
    def capture(self) -> np.ndarray:
        """At the sync instant: in flight := dirty, dirty := empty. Returns the region indices."""
        if self._capturing:
            raise MirrorError(
                f"{self.path}: a sync is already in flight; complete or abort it before capturing again",
                code="syncInProgress",
            )
        self._inflight, self._dirty = self._dirty, np.zeros_like(self._dirty)
        self._capturing = True
        return np.flatnonzero(self._inflight).astype(np.int64)

    def complete(self) -> None:
        """The secondary committed: forget the in-flight set; clear the log lazily (P := D)."""
        if not self._capturing:
            raise MirrorError(f"{self.path}: no sync in flight to complete", code="syncNotInProgress")
        self._inflight[:] = False
        self._capturing = False
        changed = np.flatnonzero(self._persisted != self._dirty)
        self._persisted = self._dirty.copy()
        if changed.size:  # no fsync: a stale set bit only costs a resend
            self._persist_range(int(changed[0]), int(changed[-1]), durable=False)

    def clear(self) -> None:
        """Forget every change (nothing pending); on disk lazily, a stale bit only costs a resend."""
        if self._capturing:
            raise MirrorError(f"{self.path}: a sync is in flight; complete or abort it first", code="syncInProgress")
        self._dirty[:] = False
        changed = np.flatnonzero(self._persisted)
        self._persisted[:] = False
        if changed.size:
            self._persist_range(int(changed[0]), int(changed[-1]), durable=False)

    def abort(self) -> None:
        """The sync failed: its regions become dirty again. No-op when nothing is in flight."""
        if not self._capturing:
            return
        self._dirty |= self._inflight
        self._inflight[:] = False
        self._capturing = False

    # -- reporting ---------------------------------------------------------------
    @property
    def region_size(self) -> int:
        return self._region_size

    @property
    def volume_size(self) -> int:
        return self._volume_size

    @property
    def region_count(self) -> int:
        return self._regions

    @property
    def in_flight(self) -> bool:
        """True between :meth:`capture` and :meth:`complete`/:meth:`abort`."""
        return self._capturing

    @property
    def dirty_count(self) -> int:
        return int(np.count_nonzero(self._dirty))

    @property
    def inflight_count(self) -> int:
        return int(np.count_nonzero(self._inflight))

    def pending_regions(self) -> np.ndarray:
        """Regions not yet on the secondary's committed recovery point (D | S)."""
        return np.flatnonzero(self._dirty | self._inflight).astype(np.int64)

    def persisted_regions(self) -> np.ndarray:
        """Regions set in the on-disk log (P): what a restart would resend."""
        return np.flatnonzero(self._persisted).astype(np.int64)

    @property
    def unsynchronized_bytes(self) -> int:
        """Bytes of the pending regions, the last one clamped at the volume end."""
        pending = self._dirty | self._inflight
        total = int(np.count_nonzero(pending)) * self._region_size
        if self._regions and pending[self._regions - 1]:
            total -= self._regions * self._region_size - self._volume_size
        return total

    @property
    def bytes_used(self) -> int:
        """Reserved capacity taken by the log (its file size)."""
        return HEADER_SIZE + _bitmap_bytes(self._regions)
