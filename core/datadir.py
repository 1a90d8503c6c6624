"""An array's data directory and the lock that makes one process its only runner."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from pathlib import Path

from core.errors import DataDirLocked

LOCK_NAME = "array.lock"


class DataDirLock:
    """An exclusive ``flock`` on ``<data dir>/array.lock`` naming its holder.

    The kernel drops the lock when the holder dies (kill -9 included), so a stale
    file never blocks a restart; a live holder is named in the error.
    """

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, purpose: str = "") -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise DataDirLocked(
                f"data directory {self.path.parent} is in use by {holder}; "
                "stop that process (or use it) before running this array here"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "program": purpose or Path(sys.argv[0]).name + " " + " ".join(sys.argv[1:3])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)  # closing drops the flock
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"'{info.get('program', '?').strip()}' (pid {info.get('pid', '?')} on {info.get('host', '?')})"
    except (OSError, ValueError):
        return "another process"
