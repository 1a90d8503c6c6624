"""DR drill clones: a writable copy of a secondary's recovery point, mirroring undisturbed.

A clone reads the secondary volume except where it holds its own copy of a region
(an overlay file in the secondary's reserved capacity, region by region). Hosts'
writes to the clone go to the overlay; before a newer recovery point is applied to
the secondary, the regions it changes are copied into the overlay first, so the
clone keeps showing the recovery point it started from while periodic syncs go on.
"""
from __future__ import annotations

import errno
import os

import numpy as np

from core.errors import InvalidInput


class DrillClone:
    """One secondary volume's drill copy; an NBD export backend."""

    def __init__(self, name: str, base_path: str, overlay_path: str, region_size: int, recovery_point: str):
        self.name = name
        self.recovery_point = recovery_point
        self._base = os.open(base_path, os.O_RDONLY)
        self._size = os.fstat(self._base).st_size
        self._overlay_path = overlay_path
        self._overlay = os.open(overlay_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self._overlay, self._size)
        self._rs = region_size
        self._held = np.zeros(-(-self._size // region_size), dtype=bool)
        self.read_only = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def bytes_used(self) -> int:
        return int(self._held.sum()) * self._rs

    def close(self, discard: bool = True) -> None:
        """Close the files; a client still connected gets ESHUTDOWN, never a reused descriptor."""
        base, overlay = self._base, self._overlay
        self._base = self._overlay = -1
        os.close(base)
        os.close(overlay)
        if discard:
            os.unlink(self._overlay_path)

    def _check(self, offset: int, length: int) -> None:
        if self._overlay < 0:
            raise OSError(errno.ESHUTDOWN, f"the DR drill {self.name} was stopped")
        if offset < 0 or length < 0 or offset + length > self._size:
            raise InvalidInput(f"[{offset}, +{length}) is outside the {self._size}-byte drill volume {self.name}")

    def _own(self, first: int, last: int) -> None:
        """Copy regions from the secondary into the overlay (once each)."""
        for r in np.flatnonzero(~self._held[first:last + 1]) + first:
            off = int(r) * self._rs
            os.pwrite(self._overlay, os.pread(self._base, min(self._rs, self._size - off), off), off)
        self._held[first:last + 1] = True

    def preserve(self, offsets) -> None:
        """A newer recovery point is about to overwrite these regions of the secondary."""
        for off in offsets:
            r = off // self._rs
            if not self._held[r]:
                self._own(r, r)

    def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        out = bytearray()
        pos, end = offset, offset + length
        while pos < end:
            r = pos // self._rs
            stop = min(end, (r + 1) * self._rs)
            fd = self._overlay if self._held[r] else self._base
            out += os.pread(fd, stop - pos, pos)
            pos = stop
        return bytes(out)

    def write(self, offset: int, data, fua: bool = False) -> None:
        self._check(offset, len(data))
        if len(data):
            self._own(offset // self._rs, (offset + len(data) - 1) // self._rs)
            os.pwrite(self._overlay, data, offset)

    def write_zeroes(self, offset: int, length: int, fua: bool = False) -> None:
        self.write(offset, bytes(length), fua)

    def trim(self, offset: int, length: int) -> None:
        self.write_zeroes(offset, length)

    def flush(self) -> None:
        self._check(0, 0)
        os.fdatasync(self._overlay)
