"""Group commit of write-intent bits (issue 14): one durable update serves every batch queued meanwhile.

A host write into a region whose change-log bit is not durable yet waits until it
is (the crash rule). Under a queue-depth-16 random workload many first writes arrive
together: each batch of them is queued with a ticket, and a single flush (the log's
blocks written, one fdatasync off the event loop) makes every batch queued before it
durable, so N concurrent first writes cost fewer than N fdatasyncs. The change log
decides which regions a batch needs and owns the bits; this module only orders the
flushes and tells each waiter when its batch is durable.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import numpy as np


class GroupCommit:
    """Tickets for batches of regions; ``flush(regions)`` makes a set of regions durable (and may fail)."""

    def __init__(self, flush: Callable[[np.ndarray], Awaitable[None]]):
        self._flush = flush
        self._queued: list[np.ndarray] = []  # regions of batches not flushed yet
        self._queued_gen = self._durable_gen = 0  # batches queued / made durable
        self._flushing: asyncio.Task | None = None
        self._flight = np.zeros(0, dtype=np.int64)  # regions of the flush in flight, and its batch
        self._flight_gen = 0

    def covering(self, regions: np.ndarray) -> int | None:
        """The ticket of the flush in flight when it covers every one of ``regions``, else None."""
        return self._flight_gen if np.isin(regions, self._flight).all() else None

    def queue(self, regions: np.ndarray) -> int:
        """Queue a batch; its ticket for :meth:`wait`."""
        self._queued.append(regions)
        self._queued_gen += 1
        return self._queued_gen

    async def wait(self, ticket: int) -> None:
        """Until batch ``ticket`` is durable; batches queued meanwhile share one flush."""
        while self._durable_gen < ticket:
            if self._flushing is None:
                self._flushing = asyncio.get_running_loop().create_task(self._run())
            await asyncio.shield(self._flushing)

    async def _run(self) -> None:
        gen = self._flight_gen = self._queued_gen
        queued, self._queued = self._queued, []
        regions = self._flight = np.unique(np.concatenate(queued)) if queued else np.zeros(0, dtype=np.int64)
        try:
            await self._flush(regions)
        except BaseException:
            self._queued.insert(0, regions)  # flushed again by the next attempt
            raise
        finally:
            self._flushing = None
            self._flight = np.zeros(0, dtype=np.int64)
        self._durable_gen = max(self._durable_gen, gen)
