"""Sharing one mirroring link between several group syncs (SPEC §2 sync priority).

A :class:`LinkScheduler` is weighted fair queueing over the link: a sender asks
to transmit ``nbytes`` and is granted the link in order of its virtual finish
time ``start + nbytes / weight``, so while several senders are busy each gets a
share proportional to its :attr:`Priority.weight` (highest 16 : lowest 1), and a
sender that was idle gets no credit for the time it did not use. The link is
granted to one frame at a time, held until that frame is written and drained, so
even without a rate limit TCP back-pressure is shared by weight. With a rate
limit (bytes/s) grants are also paced so the link never runs faster than that.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator

from core.domain import Priority

METER_WINDOW = 2.0  # seconds of history behind a throughput figure


@dataclass
class _Sender:
    weight: int
    finish: float = 0.0
    total_bytes: int = 0
    samples: deque = field(default_factory=deque)  # (monotonic time, bytes)


class LinkScheduler:
    """Weighted-fair, optionally rate-limited access to one link.

    ``rate`` is the link limit in bytes/s, ``None`` for unlimited (the default,
    what loopback and a LAN want). Use one scheduler for all traffic to a remote
    array so that all group syncs to it share the same link.
    """

    def __init__(self, rate: float | None = None):
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive bytes/s, or None for unlimited")
        self.rate = rate
        self._senders: dict[str, _Sender] = {}
        self._heap: list[tuple[float, int, str, int, asyncio.Future]] = []
        self._seq = itertools.count()
        self._vtime = 0.0
        self._busy = False
        self._free_at = 0.0          # monotonic time the paced link is free again
        self._timer: asyncio.TimerHandle | None = None

    # -- statistics -------------------------------------------------------
    def throughput(self, sender: str) -> float:
        """Bytes/s granted to ``sender`` over the last couple of seconds."""
        s = self._senders.get(sender)
        if s is None:
            return 0.0
        now = time.monotonic()
        self._trim(s, now)
        return sum(b for _, b in s.samples) / METER_WINDOW

    def throughputs(self) -> dict[str, float]:
        """Current throughput of every sender seen, for the statistics charts."""
        return {name: self.throughput(name) for name in list(self._senders)}

    def total_bytes(self, sender: str) -> int:
        s = self._senders.get(sender)
        return s.total_bytes if s else 0

    def forget(self, sender: str) -> None:
        """Drop a finished sender's statistics."""
        self._senders.pop(sender, None)

    @staticmethod
    def _trim(s: _Sender, now: float) -> None:
        while s.samples and s.samples[0][0] < now - METER_WINDOW:
            s.samples.popleft()

    # -- the link ---------------------------------------------------------
    @asynccontextmanager
    async def transmit(self, sender: str, priority: Priority, nbytes: int) -> AsyncIterator[None]:
        """Hold the link while ``nbytes`` of ``sender`` are written and drained."""
        await self._acquire(sender, priority, nbytes)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, sender: str, priority: Priority, nbytes: int) -> None:
        s = self._senders.get(sender)
        if s is None:
            s = self._senders[sender] = _Sender(priority.weight)
        s.weight = priority.weight
        start = max(self._vtime, s.finish)
        s.finish = start + max(nbytes, 1) / s.weight
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (s.finish, next(self._seq), sender, nbytes, fut))
        self._kick()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # granted just as we were cancelled: give it back
            raise
        now = time.monotonic()
        s.total_bytes += nbytes
        s.samples.append((now, nbytes))
        self._trim(s, now)

    def _release(self) -> None:
        self._busy = False
        self._kick()

    def _kick(self) -> None:
        if self._busy or self._timer is not None:
            return
        while self._heap and self._heap[0][4].done():  # cancelled waiters
            heapq.heappop(self._heap)
        if not self._heap:
            return
        now = time.monotonic()
        if self.rate is not None and now < self._free_at:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._free_at - now, self._on_timer)
            return
        finish, _, sender, nbytes, fut = heapq.heappop(self._heap)
        self._vtime = finish - nbytes / max(self._senders[sender].weight, 1)
        if self.rate is not None:
            self._free_at = max(now, self._free_at) + nbytes / self.rate
        self._busy = True
        fut.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._kick()
