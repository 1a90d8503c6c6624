"""The primary's point-in-time (PIT) image while a sync runs.

Host writes continue during a transfer (SPEC §2 "The write path", step 4), so the
regions captured for the sync are protected copy-on-write: before a host write
lands on a captured region that has not been sent yet, its old content is copied
into the PIT store in reserved capacity. The sender reads :meth:`PitStore.read_region` (or a piece of one)
and always gets the bytes of the capture instant.

Copy-on-write is per block (issue 14): the first write into a region copies only the
blocks it overwrites (4 KiB for 64 KiB regions, as the change log's dirty masks), into
the region's slot at their place; reads take copied blocks from the slot and the others
from the volume, which still holds them as at the PIT instant. A write that starts where
a recent write ended continues a sequential stream: the rest of its region is copied then,
at once, so the stream's next writes into it copy nothing. Any other write copies only its
own blocks: under random 4 KiB writes, copying the rest read 64 KiB from disk for one
4 KiB write (187 us against 20 us: a fifth of the primary's loop with syncs back to back).
A write *next to* blocks already copied was taken as dense before; under random writes
over a region captured whole, that soon held for every region, and each was read and
copied whole (a 1 GiB volume written all over read 1 GiB from a cold disk during its
sync). A region keeps one slot either way, so the reserved capacity's accounting is
unchanged.

Only what the sync reads is preserved (issue 14): a region the sender reads as pieces
(its dirty blocks at the capture) is protected for those blocks only; a host write
elsewhere in it copies nothing, since the sender never reads there. Under random 4 KiB
writes a captured region has a few dirty blocks of sixteen, so most writes during a
sync copied blocks no sync would read. Such a region is never read whole
(:meth:`PitStore.read_run` refuses it): its other blocks may be newer than the capture.

The PIT lives until :meth:`PitStore.end`, so a sender whose link dropped resumes
from the same image. It does not survive an engine restart: the copies are not
fsynced (that would put an fsync in the host write path); after a restart the
change log still holds every captured region, and the next sync captures anew.
Opening a store therefore drops any stale content.

File layout (version 2): a 4 KiB header block (magic, version, region size) then fixed
slots of one region each, so every copied block is a whole page of the file (version 1's
64-byte header put each 4 KiB copy across two pages: the kernel read, zeroed and merged
both). A slot freed by :meth:`PitStore.mark_sent` has its space released (hole punched)
and is reused. A version-1 file holds nothing that outlives a restart: opening it
starts a version-2 store in its place.

Reading without readahead (issue 14): given the volume's path, the store reads it through
a file of its own marked ``POSIX_FADV_RANDOM``, and asks for the next run itself
(``POSIX_FADV_WILLNEED``). The kernel's readahead fills the page cache with large folios,
and a host's 4 KiB write into a large folio walks all of its blocks (ext4): perf showed
host writes spending most of their time there while a sync read the volume, and random
write IOPS rose from 45k to 72k without a sync (13k to 21k with one) once the store's
reads no longer used readahead.
"""
from __future__ import annotations

import contextlib
import os
import struct
from typing import Callable

import numpy as np

from core.datapath.dirty_blocks import block_runs, dirty_block_size
from core.datapath.extents import FormatMismatch, check_format, create_atomically, next_data, try_punch_hole
from core.errors import InvalidInput, MirrorError, ReservedCapacityFull

MAGIC = b"AMPITSTO"
VERSION = 2
OLD_VERSIONS = (1,)  # read only to be replaced: a PIT never outlives a restart
HEADER_SIZE = 4096
READ_AHEAD = 8 << 20  # asked for ahead of the sender and of a sequential writer's copies
STREAMS = 16  # sequential writers followed at once
ENDS = 64  # recent write ends remembered: a write starting at one continues a sequential stream
_HEADER = struct.Struct("<8sII")  # magic, version, region size


def _header(region_size: int) -> bytes:
    return _HEADER.pack(MAGIC, VERSION, region_size).ljust(HEADER_SIZE, b"\0")


def check_version(head: bytes, path) -> int:
    """The version of a PIT store header: this one or an old one (a FormatMismatch otherwise)."""
    for version in (VERSION, *OLD_VERSIONS):
        with contextlib.suppress(FormatMismatch):
            check_format(head, MAGIC, version, "PIT store", path)
            return version
    check_format(head, MAGIC, VERSION, "PIT store", path)  # raises, naming this version
    return VERSION


class PitStore:
    """Copy-on-write image of a base volume over the regions of one sync."""

    def __init__(self, path, fd: int, base_fd: int, owns_base: bool, region_size: int,
                 budget_bytes: Callable[[], int]):
        self.path = os.fspath(path)
        self._fd = fd
        self._base = base_fd
        self._owns_base = owns_base
        self._region_size = region_size
        self._budget = budget_bytes
        self._block = dirty_block_size(region_size)  # the copy-on-write unit
        self._full = (1 << (region_size // self._block)) - 1
        self._reset()

    def _reset(self) -> None:
        self._active = False
        self._size = 0  # base size at the PIT instant
        self._protected = np.zeros(0, dtype=bool)  # in the PIT and not yet sent
        self._slot = np.zeros(0, dtype=np.int64)  # region -> slot, -1 if not preserved
        self._copied = np.zeros(0, dtype=np.uint64)  # region -> blocks copied into its slot
        self._wanted = np.zeros(0, dtype=np.uint64)  # region -> blocks the sender reads (what is preserved)
        self._free: list[int] = []
        self._slots = 0  # high-water mark of slots in the file
        self._live = 0
        # Hosts writing sequentially (one stream per NBD connection, say): where each stream's
        # last write ended -> how far its old data was asked for (see _follow_stream).
        self._streams: dict[int, int] = {}
        self._ends: dict[int, None] = {}  # where the last ENDS host writes ended (see _continues)
        self._sender_ahead = 0  # how far the sender's next runs were asked for

    @classmethod
    def open(cls, path, base_fd_or_path, region_size: int, budget_bytes_callable: Callable[[], int]) -> "PitStore":
        """Create or reopen the store; a PIT left by a previous run is dropped."""
        if region_size <= 0 or region_size % 512:
            raise InvalidInput(f"region size {region_size} must be a positive multiple of 512 bytes")
        if not os.path.exists(path):
            create_atomically(path, _header(region_size))
        fd = os.open(path, os.O_RDWR)
        try:
            head = os.pread(fd, HEADER_SIZE, 0)
            version = check_version(head, path)
            if version != VERSION or len(head) < HEADER_SIZE or _HEADER.unpack_from(head)[2] != region_size:
                os.ftruncate(fd, 0)  # content is stale anyway
                os.pwrite(fd, _header(region_size), 0)
            os.ftruncate(fd, HEADER_SIZE)
        except BaseException:
            os.close(fd)
            raise
        if isinstance(base_fd_or_path, int):
            base, owns = base_fd_or_path, False
        else:
            base, owns = os.open(base_fd_or_path, os.O_RDONLY), True
            with contextlib.suppress(OSError):
                os.posix_fadvise(base, 0, 0, os.POSIX_FADV_RANDOM)
        return cls(path, fd, base, owns, region_size, budget_bytes_callable)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._owns_base and self._base >= 0:
            os.close(self._base)
            self._base = -1

    # -- the sync ----------------------------------------------------------------
    def begin(self, regions, blocks=None) -> None:
        """Start a PIT of the base, at this instant, over ``regions`` (indices).

        ``blocks``: per region of ``regions``, the mask of the blocks the sender will read
        as pieces (0, or every block: the whole region); None: whole regions. Only those
        blocks are preserved, and only those can be read back.
        """
        if self._active:
            raise MirrorError(f"{self.path}: a point-in-time image is already active; end it first",
                              code="syncInProgress")
        size = os.fstat(self._base).st_size
        count = -(-size // self._region_size)
        idx = np.asarray(regions, dtype=np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= count):
            raise InvalidInput(f"region index out of range 0..{count - 1} for a {size}-byte volume")
        self._reset()
        self._size = size
        self._protected = np.zeros(count, dtype=bool)
        self._protected[idx] = True
        self._slot = np.full(count, -1, dtype=np.int64)
        self._copied = np.zeros(count, dtype=np.uint64)
        self._wanted = np.full(count, self._full, dtype=np.uint64)
        if blocks is not None:
            masks = np.asarray(blocks, dtype=np.uint64).ravel() & np.uint64(self._full)
            if masks.size != idx.size:
                raise InvalidInput(f"{masks.size} block masks for {idx.size} regions")
            self._wanted[idx] = np.where(masks == 0, np.uint64(self._full), masks)
        self._active = True

    def before_write(self, offset: int, length: int) -> None:
        """Preserve the regions a host write is about to overwrite (call before writing).

        Raises ReservedCapacityFull, copying nothing, when the copies would exceed
        the budget: the caller aborts the sync; the host write still proceeds.
        """
        if not self._active or length <= 0:
            return
        end = offset + length
        dense = self._continues(offset, end)
        rs, block = self._region_size, self._block
        first = offset // rs
        last = min((offset + length - 1) // rs, self._protected.size - 1)
        if first > last:  # beyond the PIT-time volume end: nothing to protect
            return
        if first == last:
            if not self._protected[first] or self._copied[first] == self._wanted[first]:
                return
            regions = (first,)
        else:
            regions = (np.flatnonzero(self._protected[first : last + 1]) + first).tolist()
        todo = []  # (region, blocks to copy)
        for r in regions:
            need = self._to_copy(r, offset, end, dense)
            if need:
                todo.append((r, need))
        if not todo:
            return
        new_slots = sum(1 for r, _ in todo if self._slot[r] < 0)
        if new_slots:
            wanted = HEADER_SIZE + (self._live + new_slots) * rs
            budget = self._budget()
            if wanted > budget:
                raise ReservedCapacityFull(
                    f"{self.path}: preserving the point-in-time image needs {wanted} bytes of reserved "
                    f"capacity but only {budget} are available; increase the reserved capacity"
                )
        for r, need in todo:
            slot = int(self._slot[r])
            if slot < 0:
                slot = self._free.pop() if self._free else self._new_slot()
                self._slot[r] = slot
                self._live += 1
            copied = int(self._copied[r])
            runs = block_runs(need, block, r * rs, (r + 1) * rs)
            whole = os.pread(self._base, rs, r * rs) if len(runs) > 1 else b""  # one read for all runs
            for off, n in runs:
                data = whole[off - r * rs:off - r * rs + n] if whole else os.pread(self._base, n, off)
                if data:
                    os.pwrite(self._fd, data, HEADER_SIZE + slot * rs + off - r * rs)
            self._copied[r] = copied | need

    def _to_copy(self, r: int, offset: int, end: int, dense: bool) -> int:
        """The blocks of region ``r`` a write of ``[offset, end)`` makes the store copy (a mask).

        Its own blocks the sender reads, not copied yet; for a ``dense`` write (one that
        continues a sequential stream), the rest of what the sender reads too (see the
        module docstring).
        """
        copied, wanted = int(self._copied[r]), int(self._wanted[r])
        need = self._span(r, offset, end) & wanted & ~copied
        if need and dense:
            need = wanted & ~copied
        return need

    def _continues(self, offset: int, end: int) -> bool:
        """Whether a host write of ``[offset, end)`` starts where a recent one ended; remembers its end."""
        ends = self._ends
        dense = ends.pop(offset, 0) is None
        ends[end] = None
        if len(ends) > ENDS:
            del ends[next(iter(ends))]  # the oldest
        return dense

    def _span(self, r: int, offset: int, end: int) -> int:
        """The blocks of region ``r`` that ``[offset, end)`` touches (a mask)."""
        rs, block = self._region_size, self._block
        base = r * rs
        b0 = (max(offset, base) - base) // block
        b1 = (min(end, base + rs) - 1 - base) // block
        return ((1 << (b1 + 1)) - 1) ^ ((1 << b0) - 1)

    def prefetch(self, ranges) -> None:
        """Host writes of ``(offset, length)`` are coming: start reading the old data their copies need.

        The copies read the volume synchronously on the event loop; from a cold page
        cache each is a disk read. Asked for together (no wait), a batch waits about one
        read instead of one per range.
        """
        if not self._active:
            return
        rs, block, prot = self._region_size, self._block, self._protected
        for offset, length in ranges:
            r = offset // rs
            if length > 0:
                self._follow_stream(offset, length)
            if length <= 0 or offset < 0 or r >= prot.size or not prot[r] or self._copied[r] == self._wanted[r]:
                continue
            start, end = offset - offset % block, offset + length
            need = self._to_copy(r, offset, end, offset in self._ends)
            if not need:
                continue  # nothing the sync reads: no copy, nothing to read
            if need & ~self._span(r, offset, end):
                start, end = r * rs, max(end, (r + 1) * rs)  # the rest of the region is copied too: read all of it
            with contextlib.suppress(OSError):
                os.posix_fadvise(self._base, start, end - start, os.POSIX_FADV_WILLNEED)

    def read_ahead(self, ranges) -> None:
        """The sender will read ``(offset, length)`` of the image: start reading them from the volume (no wait)."""
        if not self._active:
            return
        rs = self._region_size
        for offset, length in ranges:
            r = offset // rs
            if length <= 0 or offset < 0 or r >= self._copied.size or self._copied[r] == self._wanted[r]:
                continue  # what the sender reads of this region is in its slot
            with contextlib.suppress(OSError):
                os.posix_fadvise(self._base, offset, length, os.POSIX_FADV_WILLNEED)

    def _follow_stream(self, offset: int, length: int) -> None:
        """Read ahead of a host overwriting sequentially: ``READ_AHEAD`` bytes of old data past its write.

        A host overwriting sequentially during a sync waited for each copy's read from disk
        on the event loop (issue 14: 1 MiB writes ran at half their speed without a sync);
        read ahead of it, the copies find their data in the page cache. A write that starts
        where an earlier one ended continues that stream; the last ``STREAMS`` are followed
        (nbdcopy writes four at once, one per connection).
        """
        streams, end = self._streams, offset + length
        asked = streams.pop(offset, None)
        if asked is None:  # a new stream, maybe: nothing asked for yet
            streams[end] = end
            if len(streams) > STREAMS:
                del streams[next(iter(streams))]  # the oldest
            return
        streams[end] = self._ask_ahead(end, asked)

    def _new_slot(self) -> int:
        self._slots += 1
        return self._slots - 1

    def read_region(self, index: int) -> bytes:
        """The region as it was at the PIT instant (short for a partial last region)."""
        self._check_held(index)
        self._check_whole(index, 1)
        rs = self._region_size
        return self._read(index, index * rs, min(rs, self._size - index * rs))

    def _check_held(self, index: int) -> None:
        if not self._active:
            raise MirrorError(f"{self.path}: no point-in-time image is active", code="syncNotInProgress")
        if index < 0 or index >= self._protected.size or not self._protected[index]:
            raise InvalidInput(
                f"region {index} is not held by this point-in-time image (not captured, or already "
                "released by mark_sent); restart the sync"
            )

    def _check_whole(self, first: int, count: int) -> None:
        """Held regions ``first .. first+count-1`` are held whole (not only some of their blocks)."""
        partial = np.flatnonzero(self._wanted[first:first + count] != self._full)
        if partial.size:
            raise MirrorError(
                f"{self.path}: region {first + int(partial[0])} is preserved only for the dirty blocks sent as "
                "pieces, so it cannot be read whole; abandon this sync and capture again", code="arvmSyncFailed")

    def _read(self, index: int, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` inside region ``index``: copied blocks from its slot, the rest from the volume."""
        slot = int(self._slot[index])
        copied = int(self._copied[index]) if slot >= 0 else 0
        if not copied:
            return os.pread(self._base, length, offset).ljust(length, b"\0")
        if not self._span(index, offset, offset + length) & ~copied:  # all of it copied
            in_slot = HEADER_SIZE + slot * self._region_size - index * self._region_size
            return os.pread(self._fd, length, in_slot + offset).ljust(length, b"\0")
        data = bytearray(os.pread(self._base, length, offset).ljust(length, b"\0"))
        self._lay_copies(data, offset, index)
        return bytes(data)

    def _lay_copies(self, data: bytearray, at: int, index: int) -> None:
        """Lay region ``index``'s copied blocks over ``data``, the volume's bytes from offset ``at`` on."""
        rs, mask, slot = self._region_size, int(self._copied[index]), int(self._slot[index])
        if not mask or slot < 0:
            return
        in_slot = HEADER_SIZE + slot * rs - index * rs  # file offset of volume offset 0 in this slot
        end = at + len(data)
        for off, n in block_runs(mask, self._block, index * rs, (index + 1) * rs):
            a, b = max(off, at), min(off + n, end)
            if a < b:
                data[a - at:b - at] = os.pread(self._fd, b - a, in_slot + a).ljust(b - a, b"\0")

    def read_piece(self, index: int, offset: int, length: int) -> bytes:
        """``length`` bytes at volume ``offset`` inside region ``index``, as at the PIT instant.

        The sender reads only a region's dirty blocks this way (issue 14); the copy-on-write
        stays per region, so the piece comes from the region's copy when it has one.
        """
        rs = self._region_size
        if not (index * rs <= offset and offset + length <= (index + 1) * rs):
            raise InvalidInput(f"[{offset}, +{length}) is not inside region {index}")
        self._check_held(index)
        length = max(0, min(length, self._size - offset))
        if length and self._span(index, offset, offset + length) & ~int(self._wanted[index]):
            raise MirrorError(f"{self.path}: [{offset}, +{length}) of region {index} is not all preserved "
                              "(only the blocks captured as dirty are); abandon this sync and capture again",
                              code="arvmSyncFailed")
        return self._read(index, offset, length)

    def read_run(self, first: int, count: int) -> bytes:
        """Regions ``first .. first+count-1`` as at the PIT instant, in one read where possible."""
        if count == 1:
            return self.read_region(first)
        if not self._active:
            raise MirrorError(f"{self.path}: no point-in-time image is active", code="syncNotInProgress")
        end = first + count
        if first < 0 or end > self._protected.size or not self._protected[first:end].all():
            raise InvalidInput(
                f"regions {first}-{end - 1} are not all held by this point-in-time image (not captured, or "
                "already released by mark_sent); restart the sync"
            )
        self._check_whole(first, count)
        rs = self._region_size
        want = min(count * rs, self._size - first * rs)
        if self._owns_base and end < self._protected.size and self._protected[end]:
            self._sender_ahead = self._ask_ahead(end * rs, self._sender_ahead)
        copied = np.flatnonzero(self._slot[first:end] >= 0)
        base = self._read_base(first * rs, want)
        if not len(copied):
            return base
        data = bytearray(base)  # the copied blocks laid over what the volume holds (read once, above)
        for i in copied:
            self._lay_copies(data, first * rs, first + int(i))
        return bytes(data)

    def _read_base(self, offset: int, length: int) -> bytes:
        """``length`` bytes of the volume; a hole is not read (a volume rewritten with zeros is mostly holes)."""
        data = next_data(self._base, offset)
        if data is None or data >= offset + length:
            return bytes(length)
        return os.pread(self._base, length, offset).ljust(length, b"\0")

    def _ask_ahead(self, offset: int, asked: int) -> int:
        """Keep ``READ_AHEAD`` bytes of the protected volume past ``offset`` asked for; how far is asked now.

        ``asked``: how far this reader (the sender, a sequential writer) was asked for before;
        the rest is asked for once less than half the window is (the file reads without
        readahead). Asking for only the next run kept one read in flight: an initial sync
        read the volume at about 350 MiB/s from a disk that gives `cp` three times that.
        """
        stop = min(offset + READ_AHEAD, self._size)
        start = max(offset, asked)
        if start >= stop or (stop - start < READ_AHEAD // 2 and stop < self._size):
            return asked
        rs = self._region_size
        if self._protected[start // rs:(stop - 1) // rs + 1].any():
            data = next_data(self._base, start)  # asking for a hole fills the page cache with zeros
            if data is not None and data < stop:
                with contextlib.suppress(OSError):
                    os.posix_fadvise(self._base, data, stop - data, os.POSIX_FADV_WILLNEED)
        return stop

    def mark_sent(self, index: int) -> None:
        """The secondary holds the region durably: stop protecting it and free its copy."""
        if not self._active or index < 0 or index >= self._protected.size:
            return
        self._protected[index] = False
        slot = int(self._slot[index])
        if slot >= 0:
            self._slot[index] = -1
            self._copied[index] = 0
            self._live -= 1
            self._free.append(slot)
            try_punch_hole(self._fd, HEADER_SIZE + slot * self._region_size, self._region_size)

    def end(self) -> None:
        """Drop the image (sync committed or aborted) and give its space back."""
        self._reset()
        os.ftruncate(self._fd, HEADER_SIZE)

    # -- reporting ---------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active

    @property
    def region_size(self) -> int:
        return self._region_size

    @property
    def preserved_count(self) -> int:
        """Regions currently held as copies."""
        return self._live

    @property
    def bytes_used(self) -> int:
        """Reserved capacity taken by the PIT copies (freed slots are holes)."""
        return HEADER_SIZE + self._live * self._region_size
