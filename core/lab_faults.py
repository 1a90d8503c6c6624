"""The in-process lab's injected faults (``lab.json``), followed while they change.

Only the one-process lab (``lab run``, ``--in-process``, most tests) reads these: its
two arrays share one process, so a cut link or a stopped array is a recorded fault.
Array daemons are cut by the lab link relay and stopped for real. Another process
(``mirrorctl lab link cut``) may edit the file: :meth:`LabFaultFile.poll` notices.
"""
from __future__ import annotations

import copy
import os
from dataclasses import asdict
from pathlib import Path

from core.lab import LabFaults, LabState


class LabFaultFile:
    """Owns the lab's fault record: read it, change it, save it, notice outside edits."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self._state = LabState(self.home)
        self._mtime = self._stat()

    @property
    def faults(self) -> LabFaults:
        return self._state.faults

    def _stat(self) -> float:
        try:
            return os.stat(self._state.path).st_mtime
        except FileNotFoundError:
            return 0.0

    def reread(self) -> LabFaults:
        """Read the file again (keeping what other processes changed); returns the faults before."""
        before = copy.deepcopy(self._state.faults)
        self._state = LabState(self.home)
        return before

    def save(self) -> None:
        self._state.save()
        self._mtime = self._stat()

    def poll(self) -> LabFaults | None:
        """The faults before an outside edit, when the file changed since last seen; else None."""
        mtime = self._stat()
        if mtime == self._mtime:
            return None
        self._mtime = mtime
        return self.reread()

    def as_dict(self) -> dict:
        return asdict(self._state.faults)

    def record_drill(self, group: str, running: bool) -> None:
        """Drills are kept in the file like the other lab state, so other processes see them."""
        self.reread()
        self.faults.drills = [d for d in self.faults.drills if d != group] + ([group] if running else [])
        self.save()
