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

Activity log (issue 14): clearing a region's bit at every commit made its next write
pay a durable update again (an fdatasync: 29 % of a daemon's loop under a light
workload). With ``hot_regions`` > 0 a commit keeps the bits of regions being
*rewritten* (a DRBD-style activity log): a region written at least twice lately (a
per-region write counter, halved every ``HEAT_HALF_LIFE`` seconds, not per commit:
back-to-back syncs must not cool a busy region) stays set on disk, so its next write
costs no I/O; at most ``hot_regions`` of them, the most written first. A region
written once (a copy, a restore, one rewrite per interval) clears as before, and a
clean :meth:`close` clears them all. The crash bound this keeps: after a kill or a
power loss a resync sends the regions changed since the last recovery point, plus at
most ``hot_regions`` regions written at least twice in the minutes before it, never
a full copy of a larger volume.

Group commit (issue 14, :mod:`core.datapath.group_commit`): :meth:`queue_intents`
records a batch of writes and says whether their bits are durable already; if not,
:meth:`make_durable` waits for one flush shared by every batch queued meanwhile. In
memory, I (*intent*) holds bits written or being written but not yet known durable;
the file always holds P | I, and only P lets a write skip the wait.

Dirty blocks (issue 14): in memory only, each region of D and S also has a mask of
the blocks (4 KiB for 64 KiB regions, at most 64 per region) written in it, so a
sync sends those blocks instead of the whole region. A mask of 0 means *the whole
region*: regions dirty after an open (a restart), from :meth:`ChangeLog.mark_all`
(the peer's log, online verify, a repair) or damage have no mask, which is the
safe default. A mask only ever over-approximates what was written.

The file and its checks: :mod:`core.datapath.changelog_file`; the dirty-block masks: :mod:`core.datapath.dirty_blocks`.
"""
from __future__ import annotations

import asyncio
import os
import time

import numpy as np

from core.datapath.changelog_file import (BLOCK_REGIONS, BLOCK_SIZE, HEADER_SIZE, VERSION, blocks_for, header_bytes,
                                          encode_blocks, encode_span, file_bytes, padded_bits, read_image)
from core.datapath.dirty_blocks import dirty_block_size, mask_dtype, written_bytes
from core.datapath.extents import create_atomically
from core.datapath.group_commit import GroupCommit
from core.domain import DEFAULT_REGION_SIZE
from core.errors import InvalidInput, MirrorError

CONTIGUOUS_BLOCKS = 32  # blocks this close are rewritten in one write
HEAT_HALF_LIFE = 60.0  # seconds: the activity log's write counters halve this often


class ChangeLog:
    """Change tracking of one primary volume, persisted as a write-intent log.

    Used by the engine thread only. Call :meth:`mark` before writing host data;
    :meth:`capture` at the sync instant; :meth:`complete` once the secondary
    committed, :meth:`abort` if the sync failed. After :meth:`open`,
    ``repaired_blocks``/``repaired_regions`` say how much damage was taken as changed
    (``rebuilt``: the header was damaged, everything is changed) and
    ``upgraded_from`` the older format version read, if any.
    """

    durable = True

    def __init__(self, path, fd: int, volume_size: int, region_size: int, persisted: np.ndarray,
                 track_blocks: bool = True, hot_regions: int = 0):
        self.path = os.fspath(path)
        self._fd = fd
        self._region_size = region_size
        self._volume_size = volume_size
        self._regions = -(-volume_size // region_size)
        self._persisted = persisted  # P, padded to whole blocks: bits known durable
        self._intent = np.zeros_like(persisted)  # I: bits written to the file, their fdatasync pending
        self._commits = GroupCommit(self._flush_intents)  # batches of I whose blocks are not written yet
        self.fdatasyncs = 0  # durable updates done (both paths): the cost group commit lowers
        # Activity log: writes per region since about two commits (saturating), when enabled.
        self.hot_regions = max(0, int(hot_regions))
        self._heat_counts: bytearray | None = None  # the write path's view of _heat (numpy scalars cost more)
        self._set_heat(np.zeros(persisted.size, dtype=np.uint8) if self.hot_regions else None)
        self._heat_at = time.monotonic()  # when the counters last halved
        self._dirty = persisted.copy()  # after (re)open every persisted bit is dirty
        self._inflight = np.zeros_like(persisted)
        self._capturing = False
        # Dirty-block masks of D and S (0: the whole region); none when blocks are not tracked.
        self._block = dirty_block_size(region_size) if track_blocks else region_size
        blocks = region_size // self._block
        self._full_mask = (1 << blocks) - 1
        dtype = mask_dtype(blocks)
        self._masks = np.zeros(persisted.size if blocks > 1 else 0, dtype=dtype)
        self._inflight_masks = np.zeros_like(self._masks)
        # Bumped by every change to D, S or their masks: unsynchronized_block_bytes is reused until it moves.
        self._changes = 0
        self._block_bytes = (-1, 0)
        self.repaired_blocks = 0
        self.repaired_regions = 0
        self.rebuilt = False
        self.upgraded_from: int | None = None

    def _set_heat(self, counts: np.ndarray | None) -> None:
        """The activity log's counters: a bytearray, seen by numpy through a view of the same bytes."""
        if counts is None:
            self._heat = self._heat_counts = None
            return
        self._heat_counts = bytearray(counts.tobytes())
        self._heat = np.frombuffer(self._heat_counts, dtype=np.uint8)

    # -- lifecycle ---------------------------------------------------------------
    @classmethod
    def open(cls, path, volume_size: int, region_size: int = DEFAULT_REGION_SIZE,
             durable: bool = True, track_blocks: bool = True, hot_regions: int = 0) -> "ChangeLog":
        """Create the log, or reopen it: every bit set on disk is then dirty.

        A block that fails its checksum comes back all dirty and is rewritten; a
        damaged header rebuilds the log all dirty; a version 1 log is upgraded.

        ``durable=False`` skips the fdatasync of new bits: the log then survives a
        process crash (the page cache) but not a power loss or OS crash; its user
        must not trust it after a reboot (see ``core.replication.sync_runner`` boot id).
        ``track_blocks=False``: no dirty-block masks (every region is whole).
        ``hot_regions``: the activity log's size (0: every commit clears; see the module).
        """
        if region_size <= 0 or region_size % 512:
            raise InvalidInput(f"region size {region_size} must be a positive multiple of 512 bytes")
        if volume_size < 0:
            raise InvalidInput(f"volume size {volume_size} must not be negative")
        if not os.path.exists(path):
            create_atomically(path, file_bytes(region_size, volume_size, padded_bits(-(-volume_size // region_size))))
        fd = os.open(path, os.O_RDWR)
        try:
            image = read_image(fd, path, volume_size, region_size)
            if image.region_size != region_size:
                raise InvalidInput(f"{path} tracks {image.region_size}-byte regions, not {region_size}")
            if volume_size < image.volume_size:
                raise InvalidInput(f"{path} tracks a {image.volume_size}-byte volume; a volume cannot shrink "
                                   f"to {volume_size}")
            if image.header_damaged or image.version != VERSION:  # rewrite whole: rebuilt or upgraded
                os.close(fd)
                fd = -1
                create_atomically(path, file_bytes(region_size, image.volume_size, image.bits))
                fd = os.open(path, os.O_RDWR)
            elif image.damaged_blocks:
                for b in image.damaged_blocks:
                    os.pwrite(fd, encode_blocks(image.bits, b, b), HEADER_SIZE + b * BLOCK_SIZE)
                os.fdatasync(fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        log = cls(path, fd, image.volume_size, region_size, image.bits, track_blocks, hot_regions)
        log.durable = durable
        log.repaired_blocks = len(image.damaged_blocks)
        log.repaired_regions = image.repaired_regions
        log.rebuilt = image.header_damaged
        log.upgraded_from = image.version if image.version not in (0, VERSION) else None
        if volume_size > image.volume_size:  # grown while we were down, or a crash mid-resize
            log.resize(volume_size)
        return log

    def close(self) -> None:
        """Release the file; the bits of pending changes stay for the next open.

        A clean close drops the activity log's bits (nothing is being written), so a
        clean restart resends only what changed since the last recovery point.
        """
        if self._fd >= 0:
            if self._heat is not None:
                self._retain(self._dirty | self._inflight)
            os.close(self._fd)
            self._fd = -1

    def resize(self, new_size: int) -> None:
        """Follow a grown volume: new regions start clean (never written)."""
        self._changes += 1
        if new_size < self._volume_size:
            raise InvalidInput(f"volume cannot shrink from {self._volume_size} to {new_size} bytes")
        regions = -(-new_size // self._region_size)
        old_blocks, new_blocks = blocks_for(self._regions), blocks_for(regions)
        if new_blocks > old_blocks:  # blocks first, header last: a crash leaves the old size valid
            pad = (new_blocks - old_blocks) * BLOCK_REGIONS
            for name in ("_persisted", "_dirty", "_inflight", "_intent"):
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros(pad, dtype=bool)]))
            if self._heat is not None:
                self._set_heat(np.concatenate([self._heat, np.zeros(pad, dtype=self._heat.dtype)]))
            if self._masks.size:
                for name in ("_masks", "_inflight_masks"):
                    old = getattr(self, name)
                    setattr(self, name, np.concatenate([old, np.zeros(pad, dtype=old.dtype)]))
            os.pwrite(self._fd, self._encode(old_blocks, new_blocks - 1), HEADER_SIZE + old_blocks * BLOCK_SIZE)
            os.fdatasync(self._fd)
        os.pwrite(self._fd, header_bytes(self._region_size, new_size, regions), 0)
        os.fdatasync(self._fd)
        self._volume_size, self._regions = new_size, regions

    # -- host write path ---------------------------------------------------------
    def mark(self, offset: int, length: int) -> None:
        """Record a host write of ``length`` bytes at ``offset``; call before writing.

        Durable (fdatasync) when a region is new to the persistent log, free otherwise.
        """
        if length <= 0:
            return
        self._changes += 1
        rs = self._region_size
        first = offset // rs
        last = (offset + length - 1) // rs
        if first == last and offset >= 0 and last < self._regions and self._persisted[first]:
            self._mark_settled(offset, length, first)
            return
        if offset < 0 or last >= self._regions:
            raise InvalidInput(f"write [{offset}, {offset + length}) is outside the {self._volume_size}-byte volume")
        if self._masks.size:
            self._note_blocks(offset, length, first, last)
        heat = self._heat
        if first == last:
            self._dirty[first] = True
            if heat is not None and heat[first] < 255:
                heat[first] += 1
            if self._persisted[first]:
                return
        else:
            self._dirty[first : last + 1] = True
            if heat is not None:
                np.minimum(heat[first : last + 1], 254, out=heat[first : last + 1])
                heat[first : last + 1] += 1
            if self._persisted[first : last + 1].all():
                return
        self._intent[first : last + 1] = True  # on the file (P | I) from now; P once durable
        self._persist_range(first, last, durable=self.durable)
        self._persisted[first : last + 1] = True
        self._intent[first : last + 1] = False

    def _mark_settled(self, offset: int, length: int, r: int) -> None:
        """:meth:`mark` of a write inside region ``r``, whose bit is durable already (issue 14).

        Most host writes are of this kind; each paid about 1.5 us in the general path,
        a tenth of a 4 KiB NBD write. The same updates, with no loop and no numpy arithmetic.
        """
        dirty, masks = self._dirty, self._masks
        if masks.size:
            base, block = r * self._region_size, self._block
            bits = ((1 << ((offset + length - 1 - base) // block + 1)) - 1) ^ ((1 << ((offset - base) // block)) - 1)
            if not dirty[r]:
                masks[r] = bits
            else:
                mask = masks.item(r)
                if mask and mask | bits != mask:
                    masks[r] = mask | bits
        dirty[r] = True
        heat = self._heat_counts
        if heat is not None and heat[r] < 255:
            heat[r] += 1

    def _note_blocks(self, offset: int, length: int, first: int, last: int) -> None:
        """Add the blocks of a write to the masks of regions ``first..last``, setting them dirty.

        A region new to D starts with this write's blocks; one already in D with a
        mask gains them; one already whole (mask 0) stays whole.
        """
        rs, block, masks, dirty = self._region_size, self._block, self._masks, self._dirty
        end = offset + length
        for r in range(first, last + 1):
            base = r * rs
            b0 = (max(offset, base) - base) // block
            b1 = (min(end, base + rs) - 1 - base) // block
            bits = ((1 << (b1 + 1)) - 1) ^ ((1 << b0) - 1)
            if not dirty[r]:
                masks[r] = bits
                dirty[r] = True
            elif masks[r]:
                masks[r] = int(masks[r]) | bits

    def mark_many(self, ranges) -> None:
        """:meth:`mark` for a batch of writes, with at most one durable log update.

        The NBD server announces every write of a received batch before doing any of
        them, so a queue-depth-16 random workload pays one fdatasync per batch, not
        one per write. Ranges outside the volume are skipped (the write is refused).
        """
        self._changes += 1
        rs, persisted, regions = self._region_size, self._persisted, self._regions
        for offset, length in ranges:  # the common case, without numpy's per-call cost: no new bit
            first, last = offset // rs, (offset + length - 1) // rs
            if length > 0 and not (offset >= 0 and last < regions and first == last and persisted[first]):
                break
        else:
            for offset, length in ranges:
                if length > 0:
                    if self._masks.size:
                        self._note_blocks(offset, length, offset // rs, offset // rs)
                    self._dirty[offset // rs] = True
            return
        spans = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
        offset, length = spans[:, 0], spans[:, 1]
        first = offset // rs
        last = (offset + length - 1) // rs
        ok = (length > 0) & (offset >= 0) & (last < self._regions)
        first, last = first[ok], last[ok]
        if self._masks.size:  # in order: a region new in this batch keeps every write's blocks
            for o, n, a, b in zip(offset[ok].tolist(), length[ok].tolist(), first.tolist(), last.tolist()):
                self._note_blocks(o, n, a, b)
        new = self._note_many(first, last)
        if new.size:
            self._intent[new] = True
            self._write_blocks(new // BLOCK_REGIONS, durable=self.durable)
            self._persisted[new] = True
            self._intent[new] = False

    def _note_many(self, first: np.ndarray, last: np.ndarray, dirty: bool = True) -> np.ndarray:
        """Set regions ``first[i]..last[i]`` dirty (if ``dirty``); those not yet in P (nor I)."""
        single = first == last  # the common case (small writes): one vectorized pass
        idx = first[single]
        if dirty:
            self._dirty[idx] = True
        new = [idx[~(self._persisted[idx] | self._intent[idx])]]
        for a, b in zip(first[~single].tolist(), last[~single].tolist()):
            if dirty:
                self._dirty[a : b + 1] = True
            span = np.arange(a, b + 1)
            new.append(span[~(self._persisted[a : b + 1] | self._intent[a : b + 1])])
        new = np.concatenate(new) if len(new) > 1 else new[0]
        return np.unique(new) if new.size > 1 else new

    # -- group commit (the NBD server's batches) ---------------------------------
    def queue_intents(self, ranges) -> int | None:
        """Record a batch of host writes about to happen; None when their bits are durable already.

        Otherwise a ticket: ``await make_durable(ticket)``, and write only then (the crash
        rule: a region's bit is durable before its data is written). Regions whose bit
        an earlier batch is making durable wait for that batch. Ranges outside the volume
        are skipped (the write is refused). Each write still calls :meth:`mark` (free then).
        """
        rs, persisted, regions = self._region_size, self._persisted, self._regions
        for offset, length in ranges:  # the common case, without numpy's per-call cost: all durable
            first, last = offset // rs, (offset + length - 1) // rs
            if length > 0 and not (offset >= 0 and last < regions and first == last and persisted[first]):
                break
        else:
            return None
        spans = np.asarray(ranges, dtype=np.int64).reshape(-1, 2)
        offset, length = spans[:, 0], spans[:, 1]
        first = offset // self._region_size
        last = (offset + length - 1) // self._region_size
        ok = (length > 0) & (offset >= 0) & (last < self._regions)
        first, last = first[ok], last[ok]
        new = self._note_many(first, last, dirty=False)  # each write's mark sets D and its blocks
        if not new.size:
            single = first == last
            waiting = np.concatenate([first[single]] + [np.arange(a, b + 1) for a, b in
                                                         zip(first[~single].tolist(), last[~single].tolist())])
            waiting = waiting[~self._persisted[waiting]]
            if not waiting.size:
                return None
            ticket = self._commits.covering(waiting)
            if ticket is not None:
                return ticket  # the fdatasync in flight covers them
            new = waiting  # queued already (or left by a failed attempt): the next fdatasync
        self._intent[new] = True
        return self._commits.queue(new)

    async def make_durable(self, ticket: int) -> None:
        """Wait until batch ``ticket`` is durable; batches queued meanwhile share one fdatasync."""
        await self._commits.wait(ticket)

    async def _flush_intents(self, regions: np.ndarray) -> None:
        """Group commit's flush: the regions' log blocks written, then one fdatasync off the loop."""
        if regions.size:
            if self._fd < 0:
                raise OSError(9, f"{self.path}: the change log is closed")
            self._write_blocks(regions // BLOCK_REGIONS, durable=False)
        if self.durable:
            fd = os.dup(self._fd)  # a close() meanwhile must not pull the file from under the thread
            try:
                await asyncio.to_thread(os.fdatasync, fd)
            finally:
                os.close(fd)
            self.fdatasyncs += 1
        self._persisted[regions] = True
        self._intent[regions] = False

    def mark_all(self, regions=None) -> None:
        """Mark regions (indices) dirty, e.g. from the peer's log; None means every region."""
        self._changes += 1
        if regions is None:
            idx = np.arange(self._regions, dtype=np.int64)
        else:
            idx = np.asarray(regions, dtype=np.int64).ravel()
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= self._regions:
            raise InvalidInput(f"region index out of range 0..{self._regions - 1}")
        if self._masks.size:
            self._masks[idx] = 0  # which blocks changed is not known: the whole region
        self._dirty[idx] = True
        if self._persisted[idx].all():
            return
        self._intent[idx] = True
        self._write_blocks(idx // BLOCK_REGIONS, durable=self.durable)
        self._persisted[idx] = True
        self._intent[idx] = False

    def _encode(self, a: int, b: int) -> bytes:
        """Blocks ``a..b`` as the file holds them: P | I (a bit being made durable stays on the file)."""
        s, e = a * BLOCK_REGIONS, (b + 1) * BLOCK_REGIONS
        return encode_span(self._persisted[s:e] | self._intent[s:e], a)

    def _persist_range(self, first: int, last: int, durable: bool) -> None:
        a, b = first // BLOCK_REGIONS, last // BLOCK_REGIONS
        if a == b:  # one block (most host writes): no array bookkeeping
            os.pwrite(self._fd, self._encode(a, a), HEADER_SIZE + a * BLOCK_SIZE)
            if durable:
                os.fdatasync(self._fd)
                self.fdatasyncs += 1
            return
        self._write_blocks(np.arange(a, b + 1), durable)

    def _write_blocks(self, blocks: np.ndarray, durable: bool) -> None:
        """Rewrite whole blocks (bits and CRC) from P, as few writes as reasonable.

        Blocks close together go in one write (re-encoding a few unchanged blocks
        costs less than splitting: the NBD batch path calls this per batch).
        """
        if blocks.size == 0:
            return
        lo, hi = int(blocks.min()), int(blocks.max())
        if hi - lo < CONTIGUOUS_BLOCKS:
            runs = [(lo, hi)]
        else:
            u = np.unique(blocks)
            runs = [(int(r[0]), int(r[-1])) for r in np.split(u, np.flatnonzero(np.diff(u) != 1) + 1)]
        for a, b in runs:
            os.pwrite(self._fd, self._encode(a, b), HEADER_SIZE + a * BLOCK_SIZE)
        if durable:
            os.fdatasync(self._fd)
            self.fdatasyncs += 1

    # -- sync cycle --------------------------------------------------------------
    def capture(self) -> np.ndarray:
        """At the sync instant: in flight := dirty, dirty := empty. Returns the region indices."""
        self._changes += 1
        if self._capturing:
            raise MirrorError(
                f"{self.path}: a sync is already in flight; complete or abort it before capturing again",
                code="syncInProgress",
            )
        self._inflight, self._dirty = self._dirty, np.zeros_like(self._dirty)
        self._inflight_masks, self._masks = self._masks, np.zeros_like(self._masks)
        self._capturing = True
        return np.flatnonzero(self._inflight).astype(np.int64)

    def complete(self) -> None:
        """The secondary committed: forget the in-flight set; clear the log lazily (P := D)."""
        self._changes += 1
        if not self._capturing:
            raise MirrorError(f"{self.path}: no sync in flight to complete", code="syncNotInProgress")
        self._inflight[:] = False
        self._inflight_masks[:] = 0
        self._capturing = False
        keep = self._dirty.copy()
        heat = self._heat
        if heat is not None:  # the activity log: regions being rewritten stay set (see the module)
            halvings = int((time.monotonic() - self._heat_at) // HEAT_HALF_LIFE)
            if halvings:
                heat >>= min(halvings, 8)
                self._heat_at += halvings * HEAT_HALF_LIFE
            hot = np.flatnonzero((heat >= 2) & self._persisted & ~keep)
            if hot.size > self.hot_regions:
                hot = hot[np.argpartition(heat[hot], hot.size - self.hot_regions)[hot.size - self.hot_regions:]]
            keep[hot] = True
        self._retain(keep)

    def _retain(self, keep: np.ndarray) -> None:
        """Clear P outside ``keep``; no fsync: a stale set bit only costs a resend."""
        changed = np.flatnonzero(self._persisted & ~keep)
        if changed.size:
            self._persisted[changed] = False
            self._write_blocks(changed // BLOCK_REGIONS, durable=False)

    def clear(self) -> None:
        """Forget every change (nothing pending); on disk lazily, a stale bit only costs a resend."""
        self._changes += 1
        if self._capturing:
            raise MirrorError(f"{self.path}: a sync is in flight; complete or abort it first", code="syncInProgress")
        self._dirty[:] = False
        self._masks[:] = 0
        self._retain(np.zeros_like(self._persisted))

    def abort(self) -> None:
        """The sync failed: its regions become dirty again. No-op when nothing is in flight."""
        self._changes += 1
        if not self._capturing:
            return
        if self._masks.size:  # a region also written since the capture needs both writes' blocks
            both = np.flatnonzero(self._dirty & self._inflight)
            a, b = self._masks[both], self._inflight_masks[both]
            merged = np.where(self._inflight, self._inflight_masks, self._masks)
            merged[both] = np.where((a == 0) | (b == 0), 0, a | b)
            self._masks, self._inflight_masks = merged, np.zeros_like(merged)
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
    def block_size(self) -> int:
        """The block of the dirty masks (the region size when blocks are not tracked)."""
        return self._block

    def inflight_blocks(self, regions) -> np.ndarray:
        """The dirty-block masks (uint64; 0: the whole region) of captured ``regions``."""
        idx = np.asarray(regions, dtype=np.int64)
        if not self._masks.size:
            return np.zeros(idx.size, dtype=np.uint64)
        return self._inflight_masks[idx].astype(np.uint64)

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
    def unsynchronized_block_bytes(self) -> int:
        """Of :attr:`unsynchronized_bytes`, the bytes of the blocks written (a region without a mask counts whole).

        What the next sync stages on the secondary at most (issue 14: its journal holds the
        pieces). Scattered 4 KiB writes touch many regions: counted whole, a light random
        workload looked like a sixteenth of its volume changing, and the reserved-capacity
        forecast warned of a sync that stages a fraction of it.
        """
        if not self._masks.size:
            return self.unsynchronized_bytes
        changes, value = self._block_bytes
        if changes != self._changes:
            value = min(self.unsynchronized_bytes, written_bytes(
                (self._dirty, self._masks), (self._inflight, self._inflight_masks), region_size=self._region_size,
                block=self._block, volume_size=self._volume_size))
            self._block_bytes = (self._changes, value)
        return value

    @property
    def bytes_used(self) -> int:
        """Reserved capacity taken by the log (its file size)."""
        return HEADER_SIZE + blocks_for(self._regions) * BLOCK_SIZE
