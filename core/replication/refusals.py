"""Refused mirroring-channel logins of one array: the event log and a burst for the Recovery Guru.

Wrong passwords and protocol errors used to be counted and never read. Each refusal
is now an event naming the address (at most one per address per ``EVENT_EVERY``
seconds, with the count since the last one, so a flood cannot flood the log), and
``BURST`` refusals within ``WINDOW`` seconds are a Guru problem.
"""
from __future__ import annotations

import time
from collections import deque

WINDOW = 60.0
BURST = 10
EVENT_EVERY = 10.0
ADDRESSES = 256  # addresses remembered for event pacing (oldest forgotten first)


class RefusalLog:
    """What one array's channel listener refused lately."""

    def __init__(self):
        self.recent: deque[tuple[float, str, str]] = deque(maxlen=1000)  # (time, address, code)
        self._last_event: dict[str, tuple[float, int]] = {}  # address -> (logged at, refusals since)

    def record(self, address: str, code: str) -> int:
        """Note a refusal; returns how many refusals the event for it should report (0: not now)."""
        now = time.monotonic()
        self.recent.append((now, address, code))
        logged_at, since = self._last_event.get(address, (-EVENT_EVERY, 0))
        since += 1
        if now - logged_at < EVENT_EVERY:
            self._last_event[address] = (logged_at, since)
            return 0
        if len(self._last_event) >= ADDRESSES and address not in self._last_event:
            self._last_event.pop(next(iter(self._last_event)))
        self._last_event[address] = (now, 0)
        return since

    def burst(self) -> tuple[int, list[str]]:
        """Refusals in the last ``WINDOW`` seconds and their addresses, when they make a burst."""
        cutoff = time.monotonic() - WINDOW
        inside = [(a, c) for t, a, c in self.recent if t >= cutoff]
        if len(inside) < BURST:
            return 0, []
        return len(inside), sorted({a for a, _ in inside})
