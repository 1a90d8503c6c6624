"""File-system primitives the data path stands on.

Volumes are sparse files: :func:`allocated_regions` finds the regions that hold
data (SEEK_DATA/SEEK_HOLE) so an initial sync skips what was never written, and
:func:`punch_hole` turns a zero region back into a hole. The reserved-capacity
formats share the rest: atomic creation (a crash never leaves a half-written
header) and the magic/version check that refuses a file we do not understand.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct

import numpy as np

from core.errors import InvalidInput

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
_ZERO_CHUNK = 1 << 20
_VERSION = struct.Struct("<I")


class FormatMismatch(InvalidInput):
    """A reserved-capacity file has another magic number or format version.

    Raised instead of guessing: reading a foreign or newer file as ours would
    replicate garbage or lose the recovery point.
    """

    code = "reservedCapacityFormatMismatch"


def _load_libc(name: str, argtypes: list):
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = getattr(libc, name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


libc_fallocate = _load_libc("fallocate", [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64])
_sync_file_range = _load_libc("sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint])
SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``[offset, offset+length)`` to disk now, without waiting.

    Durability still comes from fsync/fdatasync; starting early lets the disk work
    while the transfer goes on, so the final sync has little left to wait for.
    """
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)  # best effort: errors surface at fsync


def try_punch_hole(fd: int, offset: int, length: int) -> bool:
    """Deallocate ``[offset, offset+length)`` keeping the size; False if unsupported."""
    if length <= 0:
        return True
    if libc_fallocate is None:
        return False
    if libc_fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err))


def write_zeros(fd: int, offset: int, length: int) -> None:
    """Write real zero bytes (the fallback where holes cannot be punched)."""
    zero = bytes(min(length, _ZERO_CHUNK))
    view = memoryview(zero)
    while length > 0:
        n = os.pwrite(fd, view[: min(length, len(zero))], offset)
        offset += n
        length -= n


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Make ``[offset, offset+length)`` read as zeros, as a hole where possible."""
    if not try_punch_hole(fd, offset, length):
        write_zeros(fd, offset, length)


def next_data(fd: int, offset: int) -> int | None:
    """Where data starts at or after ``offset`` (SEEK_DATA); None if only a hole follows.

    Where the filesystem cannot tell, ``offset`` itself: everything is taken as data.
    """
    if not hasattr(os, "SEEK_DATA"):
        return offset
    try:
        return os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as exc:
        return None if exc.errno == errno.ENXIO else offset


def allocated_regions(path: str | os.PathLike, size: int, region_size: int) -> np.ndarray:
    """Indices of the regions of ``path`` (first ``size`` bytes) that hold data.

    A sparse volume costs only its written data in the initial sync (SPEC §2).
    Where SEEK_DATA is unsupported every region is returned: correct, just slower.
    """
    count = -(-size // region_size)
    everything = np.arange(count, dtype=np.int64)
    if not hasattr(os, "SEEK_DATA"):
        return everything
    mask = np.zeros(count, dtype=bool)
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after pos
                    break
                if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                    return everything
                raise
            if data >= size:
                break
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
            mask[data // region_size : (hole - 1) // region_size + 1] = True
            pos = hole
    finally:
        os.close(fd)
    return np.flatnonzero(mask).astype(np.int64)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or unlink in the directory of ``path`` durable."""
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_atomically(path: str | os.PathLike, content: bytes, durable: bool = True) -> None:
    """Write ``content`` to ``path`` so that a crash leaves the old file or the new one.

    ``durable=False`` keeps it atomic against a process crash but lets power loss
    undo it: for records that only save work (hints), never for commit decisions.
    """
    tmp = f"{os.fspath(path)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path)


def check_format(head: bytes, magic: bytes, version: int, what: str, path) -> None:
    """Refuse a file whose magic or version is not ``magic``/``version``."""
    if len(head) < len(magic) + 4 or head[: len(magic)] != magic:
        raise FormatMismatch(
            f"{path} is not a {what} (magic {bytes(head[:len(magic)])!r}, expected {magic!r}); "
            "check the reserved capacity path or restore the file"
        )
    found = _VERSION.unpack_from(head, len(magic))[0]
    if found != version:
        raise FormatMismatch(
            f"{path}: {what} format version {found} is not supported (this engine reads "
            f"version {version}); upgrade the engine or recreate the reserved capacity"
        )
