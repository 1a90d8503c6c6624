"""What the NBD server serves: export backends and the provider that names them.

The engine implements :class:`ExportBackend` for its volumes; :class:`FileBackend`
serves a plain file (tests, the benchmark, ``qemu-nbd``-like use). Backend calls
are synchronous and run on the server's event-loop thread, so they must be fast
(page-cache writes, not network round trips). Exceptions they raise become NBD
error replies (see :func:`core.nbd.protocol.error_code`); the connection lives on.
"""
from __future__ import annotations

import ctypes
import errno
import os
from typing import Protocol, runtime_checkable

from core.datapath.extents import libc_fallocate  # one libc binding (use_errno) for the project


@runtime_checkable
class ExportBackend(Protocol):
    """One export: a range of bytes a host reads and writes."""

    name: str

    @property
    def size(self) -> int: ...

    @property
    def read_only(self) -> bool:
        """Checked on every write request: a role change flips it live."""
        ...

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes | memoryview, fua: bool = False) -> None:
        """Raise PermissionError if not writable. ``data`` is only valid during the call."""
        ...

    def write_zeroes(self, offset: int, length: int, fua: bool = False) -> None: ...

    def trim(self, offset: int, length: int) -> None: ...

    def flush(self) -> None: ...


@runtime_checkable
class ExportProvider(Protocol):
    """Finds exports by name at negotiation time."""

    def lookup(self, name: str) -> ExportBackend | None: ...

    def names(self) -> list[str]: ...


class DictProvider:
    """An :class:`ExportProvider` over a fixed mapping (tests, benchmark)."""

    def __init__(self, backends: dict[str, ExportBackend] | None = None):
        self._backends: dict[str, ExportBackend] = dict(backends or {})

    def add(self, backend: ExportBackend) -> None:
        self._backends[backend.name] = backend

    def remove(self, name: str) -> None:
        self._backends.pop(name, None)

    def lookup(self, name: str) -> ExportBackend | None:
        return self._backends.get(name)

    def names(self) -> list[str]:
        return list(self._backends)


# fallocate(2) with mode flags is not in the os module; reach it through libc.
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_FALLOC_FL_ZERO_RANGE = 0x10
_NOT_SUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV)




def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2); raises OSError (ENOSYS where libc lacks it)."""
    if libc_fallocate is None:
        raise OSError(errno.ENOSYS, "fallocate is not available")
    if libc_fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


_ZERO_CHUNK = bytes(1024 * 1024)


class FileBackend:
    """Serves a regular file (or block device) with pread/pwrite.

    ``read_only`` may be reassigned at any time; the server checks it on every
    write request, like a volume whose mirror role changes under a connection.
    """

    def __init__(self, name: str, path: str | os.PathLike, read_only: bool = False):
        self.name = name
        self.path = os.fspath(path)
        self._read_only = bool(read_only)
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError:
            if not read_only:
                raise
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(self._fd)
        self._size = st.st_size if st.st_size else os.lseek(self._fd, 0, os.SEEK_END)
        self._can_zero_range = True
        self._can_punch = True

    # -- properties ---------------------------------------------------------
    @property
    def size(self) -> int:
        return self._size

    @property
    def read_only(self) -> bool:
        return self._read_only

    @read_only.setter
    def read_only(self, value: bool) -> None:
        self._read_only = bool(value)

    # -- I/O ----------------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) < length:  # file shrank under us: the rest reads as zeroes
            data += bytes(length - len(data))
        return data

    def write(self, offset: int, data: bytes | memoryview, fua: bool = False) -> None:
        if self._read_only:
            raise PermissionError(errno.EPERM, f"export {self.name!r} is read-only")
        fd = self._fd
        done = os.pwrite(fd, data, offset)
        if done < len(data):  # rare partial write: finish it
            view = memoryview(data)
            while done < len(view):
                done += os.pwrite(fd, view[done:], offset + done)
        if fua:
            os.fdatasync(fd)

    def write_zeroes(self, offset: int, length: int, fua: bool = False) -> None:
        if self._read_only:
            raise PermissionError(errno.EPERM, f"export {self.name!r} is read-only")
        # ZERO_RANGE keeps the blocks allocated, so NBD_CMD_FLAG_NO_HOLE is honoured
        # whichever way the client asked.
        if self._can_zero_range:
            try:
                fallocate(self._fd, _FALLOC_FL_ZERO_RANGE | _FALLOC_FL_KEEP_SIZE, offset, length)
                length = 0
            except OSError as exc:
                if exc.errno not in _NOT_SUPPORTED:
                    raise
                self._can_zero_range = False
        while length > 0:
            n = min(length, len(_ZERO_CHUNK))
            self.write(offset, _ZERO_CHUNK[:n] if n < len(_ZERO_CHUNK) else _ZERO_CHUNK)
            offset += n
            length -= n
        if fua:
            os.fdatasync(self._fd)

    def trim(self, offset: int, length: int) -> None:
        if self._read_only:
            raise PermissionError(errno.EPERM, f"export {self.name!r} is read-only")
        # Trim is advisory: where holes cannot be punched, doing nothing is correct.
        if not self._can_punch:
            return
        try:
            fallocate(self._fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length)
        except OSError as exc:
            if exc.errno not in _NOT_SUPPORTED:
                raise
            self._can_punch = False

    def flush(self) -> None:
        os.fdatasync(self._fd)

    # -- lifetime -----------------------------------------------------------
    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "FileBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
