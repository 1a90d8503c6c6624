"""The secondary's staging journal: a redo log that keeps the recovery point intact.

Regions of a transfer are appended here, not written to the secondary volume, so
the volume keeps the previous recovery point until the whole group commits (SPEC
§2 "The write path", step 5; §5 "no secondary ever holds a mix of two recovery
points"). ``commit`` makes a commit marker durable first, then applies the records;
a crash after the marker is finished by :meth:`Staging.recover` (re-apply is
idempotent), a crash before it keeps the valid prefix so the transfer resumes.

*Direct mode* serves the initial synchronization, where no recovery point exists
to protect: regions go straight to the volume and a small progress bitmap
(``<journal>.progress``) remembers which are durable, so an interrupted initial
sync resumes without resending them.

The last committed recovery point lives in ``<journal>.rp`` (replaced atomically).

*Pieces* (issue 14): a primary sends only the dirty blocks of a region. They are
journalled as they come, a record per piece: at commit they land on the recovery point
the volume holds, which is the rest of the region as the primary's capture has it.
(Completing each region first, as before, wrote and copied 64 KiB for every 4 KiB
block a host wrote: 16x the journal traffic under random writes.) ``staged`` counts
a region once all of its pieces are durable, and all pieces of a region come in one
call (one frame), so the records of one call form a *batch*: every record of a batch
but the last carries the CONT flag, and recovery keeps a batch only when its last
record is whole. A torn tail therefore never leaves half of a region's pieces taken
as held. Direct mode writes the volume in place, so there a region sent as pieces is
completed from what the volume holds and written whole.

Journal layout: a 16-byte header (magic, version) then records of a 32-byte header
(record magic, type, flags, offset, length, CRC32 of payload, CRC32 of the header)
followed by the payload: BEGIN (JSON: transfer id, recovery point, direct), DATA
(region bytes, or a piece of a region; none when the zero flag is set; the CONT flag
when more records of its batch follow), COMMIT (no payload).
"""
from __future__ import annotations

import contextlib
import json
import os
import struct
from array import array
from dataclasses import dataclass
from typing import Callable

import numpy as np
from zlib_ng.zlib_ng import crc32  # zlib's CRC-32, faster (pyproject.toml)

from core.channel.codec import is_zero
from core.datapath.extents import (
    FormatMismatch, check_format, create_atomically, fsync_dir, punch_hole, start_writeback,
)
from core.domain import DEFAULT_REGION_SIZE
from core.errors import InvalidInput, MirrorError, ReservedCapacityFull

MAGIC = b"AMSTAGEJ"
VERSION = 1
HEADER_SIZE = 16
PROGRESS_MAGIC = b"AMSTPROG"
PROGRESS_HEADER = struct.Struct("<8sIIQ")  # magic, version, region size, regions
RP_MAGIC = b"AMRECPNT"
RP_HEADER = struct.Struct("<8sII")  # magic, version, CRC32 of the JSON
IOV_MAX = 1024  # buffers per pwritev (Linux limit)
DIRECT_FLUSH_BYTES = 64 << 20  # bound on what an interrupted initial sync resends
APPLY_WINDOW = 4 << 20  # journal read at once when applying small records

_REC = struct.Struct("<IBBHQQI")  # record magic, type, flags, pad, offset, length, payload CRC
_REC_CRC = struct.Struct("<I")
REC_SIZE = _REC.size + _REC_CRC.size
_REC_MAGIC = 0x52534D41  # "AMSR"
BEGIN, DATA, COMMIT = 1, 2, 3
ZERO = 1
CONT = 2  # more records of the same batch (one put_many call) follow
ZERO_POS = -1  # a zero record's payload position in memory: it has none


def _copy_range(src: int, src_pos: int, dst: int, dst_pos: int, length: int) -> None:
    """Copy bytes between files inside the kernel (copy_file_range), falling back to read/write."""
    while length > 0:
        try:
            n = os.copy_file_range(src, dst, length, src_pos, dst_pos)
        except OSError:
            n = 0
        if n <= 0:  # unsupported here, or nothing copied: do it by hand
            os.pwrite(dst, os.pread(src, length, src_pos), dst_pos)
            return
        src_pos, dst_pos, length = src_pos + n, dst_pos + n, length - n


def _record(kind: int, flags: int, offset: int, length: int, payload: bytes = b"") -> bytes:
    head = _REC.pack(_REC_MAGIC, kind, flags, 0, offset, length, crc32(payload))
    return head + _REC_CRC.pack(crc32(head))


@dataclass(frozen=True)
class Recovery:
    """What :meth:`Staging.recover` did: ``clean``, ``reapplied`` or ``resumable``."""

    action: str
    transfer_id: str | None = None
    records: int = 0
    dropped_bytes: int = 0


class Staging:
    """Staging of one secondary volume; engine thread only."""

    def __init__(self, path, fd: int, base_fd: int, region_size: int, budget: Callable[[], int] | None):
        self.path = os.fspath(path)
        self._fd = fd
        self._base = base_fd
        self._region_size = region_size
        self._budget = budget
        self._zeros = bytes(region_size)
        self._unsettled: dict | None = None  # recovery point applied to the volume but not yet fsynced
        self._clear_memory()
        self.recovery = Recovery("clean")

    def _clear_memory(self) -> None:
        self._transfer_id: str | None = None
        self._recovery_point: dict | None = None
        self._direct = False
        # (offset, length, payload position or ZERO_POS) per DATA record, flat: 24 bytes each, where a list of
        # tuples took about 150 (a sync of a volume written all over at random stages millions of pieces).
        self._records = array("q")
        self._staged: set[int] = set()
        self._end = HEADER_SIZE
        self._progress = np.zeros(0, dtype=bool)
        self._progress_fd = -1
        self._unflushed = 0
        self._prepared = False

    @classmethod
    def open(cls, path, base_path, budget_bytes_callable: Callable[[], int] | None = None,
             region_size: int = DEFAULT_REGION_SIZE) -> "Staging":
        """Open (creating if needed) and recover; the outcome is in ``.recovery``.

        Open before exposing the secondary volume to anyone: recovery may still
        have to finish applying a committed transfer.
        """
        if region_size <= 0 or region_size % 512:
            raise InvalidInput(f"region size {region_size} must be a positive multiple of 512 bytes")
        if not os.path.exists(path):
            create_atomically(path, MAGIC + struct.pack("<I", VERSION).ljust(HEADER_SIZE - len(MAGIC), b"\0"))
        fd = os.open(path, os.O_RDWR)
        try:
            check_format(os.pread(fd, HEADER_SIZE, 0), MAGIC, VERSION, "staging journal", path)
            base = os.open(base_path, os.O_RDWR)
        except BaseException:
            os.close(fd)
            raise
        staging = cls(path, fd, base, region_size, budget_bytes_callable)
        try:
            staging.recovery = staging.recover()
        except BaseException:
            staging.close()
            raise
        return staging

    def close(self) -> None:
        """Release the files; an unfinished transfer stays on disk for resume."""
        if self._base >= 0 and self._fd >= 0:
            self.settle()
        for name in ("_fd", "_base", "_progress_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    @property
    def _progress_path(self) -> str:
        return self.path + ".progress"

    @property
    def _rp_path(self) -> str:
        return self.path + ".rp"

    # -- a transfer --------------------------------------------------------------
    def begin(self, transfer_id: str, recovery_point: dict, direct: bool = False) -> bool:
        """Start a transfer; returns True when an unfinished one of that id is resumed."""
        self.settle()
        if self._transfer_id is not None:
            if self._transfer_id == transfer_id and self._direct == direct:
                return True
            self.discard()
        base_size = os.fstat(self._base).st_size
        if direct:  # the volume stops holding the old recovery point from here on
            regions = -(-base_size // self._region_size)
            head = PROGRESS_HEADER.pack(PROGRESS_MAGIC, VERSION, self._region_size, regions)
            create_atomically(self._progress_path, head + bytes((regions + 7) // 8))
            self._open_progress(regions)
            if os.path.exists(self._rp_path):
                os.unlink(self._rp_path)
                fsync_dir(self._rp_path)
        payload = json.dumps({"transfer_id": transfer_id, "recovery_point": recovery_point,
                              "direct": direct}, default=str).encode()
        self._append(_record(BEGIN, int(direct), 0, len(payload), payload), payload)
        os.fdatasync(self._fd)
        self._transfer_id, self._recovery_point, self._direct = transfer_id, dict(recovery_point), direct
        return False

    def put(self, offset: int, data: bytes | None, length: int | None = None) -> None:
        """Stage ``length`` bytes at ``offset``; ``data`` None means a zero region."""
        self.put_many([(offset, length, data)])

    def put_many(self, regions: list[tuple[int, int | None, object]]) -> int:
        """Stage ``(offset, length, data)`` regions in one write (``data`` None: zeros).

        A tuple that is not whole regions is a piece of a region's dirty blocks; every
        piece of a region must be in the same call (see the module docstring). Returns
        the bytes of the regions brought up to date: whole regions' lengths.
        """
        if self._transfer_id is None:
            raise MirrorError(f"{self.path}: no transfer begun on this secondary", code="syncNotInProgress")
        size = os.fstat(self._base).st_size
        checked = []
        for offset, length, data in regions:
            if data is not None:
                if length is not None and length != len(data):
                    raise InvalidInput(f"region length {length} does not match its {len(data)} data bytes")
                length = len(data)
            if length is None or length <= 0 or offset < 0:
                raise InvalidInput(f"invalid region [{offset}, +{length})")
            if offset + length > size:
                raise InvalidInput(f"region [{offset}, {offset + length}) is beyond the {size}-byte secondary volume")
            checked.append((offset, length, data, data is None or is_zero(data)))
        self._prepared = False
        covered = self._regions_of((offset, length) for offset, length, _, _ in checked)
        rs = self._region_size
        brought = sum(min(rs, size - r * rs) for r in covered)
        if self._direct:
            for offset, length, data, zero in self._whole_regions(checked, size):
                self._put_direct(offset, data, length, zero, size)
            return brought
        parts, records, pos = [], array("q"), self._end
        for i, (offset, length, data, zero) in enumerate(checked):
            payload = b"" if zero else data
            flags = (ZERO if zero else 0) | (CONT if i < len(checked) - 1 else 0)
            parts.append(_record(DATA, flags, offset, length, payload))
            if not zero:
                parts.append(payload)
            pos += REC_SIZE
            records.extend((offset, length, ZERO_POS if zero else pos))
            pos += len(payload)
        if self._budget is not None:
            budget = self._budget()
            if pos > budget:
                raise ReservedCapacityFull(
                    f"{self.path}: staging this transfer needs {pos} bytes of reserved "
                    f"capacity but only {budget} are available; increase the secondary's reserved capacity"
                )
        first = self._end
        for i in range(0, len(parts), IOV_MAX):
            chunk = parts[i:i + IOV_MAX]
            want = sum(len(p) for p in chunk)
            if os.pwritev(self._fd, chunk, self._end) != want:
                raise MirrorError(f"{self.path}: short write to the staging journal", code="volumeFailed")
            self._end += want
        start_writeback(self._fd, first, self._end - first)
        self._records.extend(records)
        self._staged.update(r * rs for r in covered)
        return brought

    def _regions_of(self, spans) -> set[int]:
        """The indices of the regions ``(offset, length)`` spans touch."""
        rs = self._region_size
        return {r for offset, length in spans for r in range(offset // rs, (offset + length - 1) // rs + 1)}

    def _whole_regions(self, items: list[tuple], size: int) -> list[tuple]:
        """``items`` with every partly covered region replaced by its whole region, completed (direct mode).

        A completed region is what the volume holds of it with every item of this call
        that touches it laid over, in order; it goes after the whole-region items, so it
        is the region's final content.
        """
        rs = self._region_size
        spans = [range(offset // rs, (offset + length - 1) // rs + 1) for offset, length, _, _ in items]
        partial: set[int] = set()
        for (offset, length, _, _), span in zip(items, spans):
            if offset % rs or ((offset + length) % rs and offset + length != size):
                partial.update(span)
        if not partial:
            return items
        grown = True
        while grown:  # an item across a completed region is laid over it, never staged on its own too
            grown = False
            for span in spans:
                if not partial.issuperset(span) and not partial.isdisjoint(span):
                    partial.update(span)
                    grown = True
        out = [item for item, span in zip(items, spans) if partial.isdisjoint(span)]
        touching: dict[int, list[int]] = {r: [] for r in partial}
        for i, span in enumerate(spans):
            for r in span:
                if r in touching:
                    touching[r].append(i)
        for r in partial:  # what the volume holds of them, read together rather than one by one
            with contextlib.suppress(OSError):
                os.posix_fadvise(self._base, r * rs, rs, os.POSIX_FADV_WILLNEED)
        for r in sorted(partial):
            start, end = r * rs, min((r + 1) * rs, size)
            buf = bytearray(os.pread(self._base, end - start, start).ljust(end - start, b"\0"))
            for i in touching[r]:
                offset, length, data, zero = items[i]
                a, b = max(offset, start), min(offset + length, end)
                buf[a - start:b - start] = bytes(b - a) if zero else data[a - offset:b - offset]
            out.append((start, end - start, bytes(buf), is_zero(buf)))
        return out

    def _put_direct(self, offset: int, data, length: int, zero: bool, size: int) -> None:
        rs = self._region_size
        if offset % rs or (length % rs and offset + length != size):
            raise InvalidInput(f"direct transfers write whole {rs}-byte regions; got [{offset}, +{length})")
        if zero:
            punch_hole(self._base, offset, length)
        else:
            os.pwrite(self._base, data, offset)
            start_writeback(self._base, offset, length)  # the disk works while the transfer goes on
        self._progress[offset // rs : -(-(offset + length) // rs)] = True
        self._unflushed += length
        if self._unflushed >= DIRECT_FLUSH_BYTES:
            self.flush()

    def _append(self, head: bytes, payload: bytes) -> int:
        os.pwritev(self._fd, [head, payload] if payload else [head], self._end)
        pos = self._end + REC_SIZE
        self._end = pos + len(payload)
        return pos

    def staged(self) -> set[int]:
        """Offsets already held for the current transfer (the primary resends the rest)."""
        if self._direct:
            return {int(i) * self._region_size for i in np.flatnonzero(self._progress)}
        return set(self._staged)

    def flush(self) -> None:
        """Make what was put durable, so ``staged`` survives a crash (ack point)."""
        if self._direct:
            if self._progress_fd < 0:
                return
            os.fsync(self._base)  # data first: a progress bit never outruns its region
            os.pwrite(self._progress_fd, np.packbits(self._progress, bitorder="little").tobytes(),
                      PROGRESS_HEADER.size)
            os.fdatasync(self._progress_fd)
            self._unflushed = 0
        else:
            os.fdatasync(self._fd)

    def prepare(self) -> None:
        """Vote yes for the group commit: everything staged is durable."""
        if self._transfer_id is None:
            raise MirrorError(f"{self.path}: no transfer to prepare", code="syncNotInProgress")
        self.flush()
        self._prepared = True

    def commit(self, decided_elsewhere: bool = False, settle_later: bool = False) -> dict:
        """Commit the transfer's recovery point; returns it. Durable on return.

        ``decided_elsewhere``: the caller already made the commit decision durable
        (the group commit record) and re-applies after a crash itself, so the
        journal's own COMMIT marker and its fdatasync are skipped.

        ``settle_later`` (only with ``decided_elsewhere``): apply the records to the
        volume but leave the fsync of the volume to :meth:`settle`; until then the
        journal stays on disk as the redo source for the caller's re-apply.
        """
        if self._transfer_id is None:
            raise MirrorError(f"{self.path}: no transfer to commit", code="syncNotInProgress")
        if self._direct:
            os.fsync(self._base)
        if not decided_elsewhere:
            self._append(_record(COMMIT, 0, 0, 0), b"")
            os.fdatasync(self._fd)  # the decision: from here on recovery re-applies
        if not self._direct:
            self._apply()
            if settle_later and decided_elsewhere:
                point = dict(self._recovery_point or {})
                self._clear_memory()
                self._unsettled = point
                return point
            os.fsync(self._base)
        return self._finish()

    @property
    def unsettled(self) -> bool:
        """A committed recovery point is applied but not yet durable in the volume itself."""
        return self._unsettled is not None

    def settle(self) -> None:
        """Make an applied recovery point durable in the volume, then empty the journal.

        Every other change to the volume or journal settles first, so a re-apply
        after a crash never lands on newer data.
        """
        if self._unsettled is None:
            return
        os.fsync(self._base)
        self._recovery_point, self._unsettled = self._unsettled, None
        self._finish(durable=False)  # a resurrected journal only re-applies the same bytes

    def journal_records(self) -> list[tuple[int, int, bool, int]]:
        """The transfer's DATA records as (offset, length, zero, payload position), in journal order (checks, tests)."""
        rec = self._records
        return [(rec[i], rec[i + 1], rec[i + 2] == ZERO_POS, rec[i + 2]) for i in range(0, len(rec), 3)]

    def _apply(self) -> None:
        """Write every record into the volume, in journal order.

        Small records (pieces) are written from a window of the journal read ahead
        (``APPLY_WINDOW``): one copy_file_range per 4 KiB piece cost about 15 us, so a
        sync of a volume written all over at random spent seconds applying, on the loop.
        """
        rec = self._records
        window, start = memoryview(b""), 0  # journal bytes [start, start + len(window))
        for i in range(0, len(rec), 3):
            offset, length, pos = rec[i], rec[i + 1], rec[i + 2]
            if pos == ZERO_POS:
                punch_hole(self._base, offset, length)
                continue
            if length > APPLY_WINDOW // 4:
                _copy_range(self._fd, pos, self._base, offset, length)
                continue
            if pos < start or pos + length > start + len(window):
                start, window = pos, memoryview(os.pread(self._fd, APPLY_WINDOW, pos))
            if pos + length > start + len(window):  # the journal is shorter than its records say
                raise MirrorError(f"{self.path}: a record's payload at {pos} is cut short", code="volumeFailed")
            os.pwrite(self._base, window[pos - start:pos - start + length], offset)

    def _finish(self, durable: bool = True) -> dict:
        point = self._recovery_point or {}
        text = json.dumps(point, default=str).encode()
        # Informational (the array's database records the recovery point durably).
        create_atomically(self._rp_path, RP_HEADER.pack(RP_MAGIC, VERSION, crc32(text)) + text,
                          durable=False)
        self._truncate(durable)
        return point

    def discard(self) -> None:
        """Drop an uncommitted transfer (the volume keeps its recovery point)."""
        self.settle()
        self._truncate()

    def _truncate(self, durable: bool = True) -> None:
        os.ftruncate(self._fd, HEADER_SIZE)
        if durable:
            os.fdatasync(self._fd)
        if self._progress_fd >= 0:
            os.close(self._progress_fd)
        if os.path.exists(self._progress_path):
            os.unlink(self._progress_path)
        self._clear_memory()

    # -- restart -----------------------------------------------------------------
    def recover(self) -> Recovery:
        """Finish or keep what a crash left: re-apply a committed transfer, keep a valid prefix."""
        if self._progress_fd >= 0:
            os.close(self._progress_fd)
        self._clear_memory()
        file_size = os.fstat(self._fd).st_size
        committed = False
        pos = kept = HEADER_SIZE  # kept: where the last whole batch (or BEGIN, COMMIT) ends
        batch = array("q")  # DATA records of a batch not closed yet, as in _records
        while pos + REC_SIZE <= file_size:
            head = os.pread(self._fd, REC_SIZE, pos)
            if len(head) < REC_SIZE or _REC_CRC.unpack_from(head, _REC.size)[0] != crc32(head[: _REC.size]):
                break
            magic, kind, flags, _, offset, length, crc = _REC.unpack_from(head)
            plen = length if kind == BEGIN or (kind == DATA and not flags & ZERO) else 0
            if magic != _REC_MAGIC or (kind == BEGIN) != (self._transfer_id is None) or kind not in (BEGIN, DATA, COMMIT):
                break
            if kind != DATA and batch:  # put_many never writes another record inside a batch
                break
            payload = os.pread(self._fd, plen, pos + REC_SIZE) if plen else b""
            if len(payload) != plen or crc32(payload) != crc:
                break
            pos += REC_SIZE + plen
            if kind == BEGIN:
                meta = json.loads(payload)
                self._transfer_id, self._recovery_point = meta["transfer_id"], meta["recovery_point"]
                self._direct = bool(meta["direct"])
            elif kind == DATA:
                batch.extend((offset, length, ZERO_POS if flags & ZERO else pos - plen))
                if flags & CONT:
                    continue
                self._records.extend(batch)  # the batch is whole: its regions are held
                self._staged.update(r * self._region_size
                                    for r in self._regions_of(zip(batch[0::3], batch[1::3])))
                del batch[:]
            kept = pos
            if kind == COMMIT:
                committed = True
                break
        pos = self._end = kept
        transfer, count = self._transfer_id, len(self._records) // 3
        if committed:
            if not self._direct:
                self._apply()
            os.fsync(self._base)
            self._finish()
            return Recovery("reapplied", transfer, count)
        dropped = file_size - pos
        if dropped:
            os.ftruncate(self._fd, pos)
            os.fdatasync(self._fd)
        if transfer is None:
            return Recovery("clean", None, 0, dropped)
        if self._direct:
            self._load_progress()
        return Recovery("resumable", transfer, count, dropped)

    def _open_progress(self, regions: int) -> None:
        self._progress_fd = os.open(self._progress_path, os.O_RDWR)
        self._progress = np.zeros(regions, dtype=bool)

    def _load_progress(self) -> None:
        fd = os.open(self._progress_path, os.O_RDWR)
        try:
            head = os.pread(fd, PROGRESS_HEADER.size, 0)
            check_format(head, PROGRESS_MAGIC, VERSION, "initial sync progress file", self._progress_path)
            _, _, region_size, regions = PROGRESS_HEADER.unpack(head)
            raw = os.pread(fd, (regions + 7) // 8, PROGRESS_HEADER.size)
        except BaseException:
            os.close(fd)
            raise
        if region_size != self._region_size:
            os.close(fd)
            raise InvalidInput(f"{self._progress_path} tracks {region_size}-byte regions, not {self._region_size}")
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little", count=len(raw) * 8)
        progress = np.zeros(regions, dtype=bool)
        n = min(regions, bits.size)
        progress[:n] = bits[:n].astype(bool)
        self._progress_fd, self._progress = fd, progress

    # -- reporting ---------------------------------------------------------------
    def last_committed(self) -> dict | None:
        """The recovery point the secondary volume holds, or None (none yet, or an
        initial sync is writing it directly)."""
        try:
            with open(self._rp_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        check_format(raw, RP_MAGIC, VERSION, "recovery point record", self._rp_path)
        if len(raw) < RP_HEADER.size or RP_HEADER.unpack_from(raw)[2] != crc32(raw[RP_HEADER.size:]):
            raise FormatMismatch(f"{self._rp_path}: recovery point record is damaged (CRC mismatch)")
        return json.loads(raw[RP_HEADER.size:])

    @property
    def transfer_id(self) -> str | None:
        """The unfinished transfer held (after recovery too), or None."""
        return self._transfer_id

    @property
    def recovery_point(self) -> dict | None:
        """The recovery point the current transfer will commit."""
        return None if self._recovery_point is None else dict(self._recovery_point)

    @property
    def direct(self) -> bool:
        return self._direct

    @property
    def prepared(self) -> bool:
        return self._prepared

    @property
    def bytes_used(self) -> int:
        """Reserved capacity taken by the journal and the progress bitmap."""
        used = self._end
        if self._progress_fd >= 0:
            used += PROGRESS_HEADER.size + (self._progress.size + 7) // 8
        return used
