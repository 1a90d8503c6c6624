"""A lab host workload: hosts writing at a steady rate to chosen volumes, through the host I/O path."""
from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Callable

from core.array import StorageArray
from core.domain import Severity
from core.errors import InvalidInput, MirrorError
from core.publisher import Publish
from core.replication.host_volumes import HostVolumes
from core.refs import split_ref

WORKLOAD_BLOCK = 64 * 1024
WORKLOAD_TICK = 0.05


class Workload:
    """At most one workload at a time; its figures (bytes written, errors) while it runs."""

    def __init__(self, get_array: Callable[[str], StorageArray], hosts: HostVolumes, publish: Publish):
        self._get_array = get_array
        self._hosts = hosts
        self._publish = publish
        self._task: asyncio.Task | None = None
        self._info: dict = {}

    async def start(self, refs: list[str], rate_mib: float, pattern: str = "random") -> dict:
        """Hosts writing ``rate_mib`` MiB/s in total to ``refs``."""
        if not refs:
            raise InvalidInput("choose at least one volume for the workload")
        if not 0 < float(rate_mib) <= 4096:
            raise InvalidInput(f"workload rate {rate_mib} MiB/s must be more than 0 and at most 4096")
        if pattern not in ("random", "sequential"):
            raise InvalidInput(f"workload pattern '{pattern}' is not valid; use random or sequential")
        targets = []
        for ref in refs:
            a, v = split_ref(ref)
            self._get_array(a).volume(v)
            hv = self._hosts.volume(a, v)
            if hv.read_only:
                raise MirrorError(f"{ref} is read-only to hosts ({hv.refusal or 'failed'}); pick primary volumes",
                                  code="arvmVolumeNotWritable")
            targets.append(hv)
        await self.stop()
        self._info = {"volumes": list(refs), "rateMib": float(rate_mib), "pattern": pattern,
                      "bytesWritten": 0, "errors": 0, "lastError": ""}
        self._task = asyncio.get_running_loop().create_task(
            self._run(targets, float(rate_mib) * (1 << 20), pattern), name="workload")
        self._get_array(targets[0].array).log(Severity.INFO, ",".join(refs), "labWorkloadStarted",
                                              f"Host workload started: {rate_mib:g} MiB/s {pattern} on "
                                              f"{', '.join(refs)}")
        self._publish("workload")
        return dict(self._info)

    async def stop(self) -> dict | None:
        task, self._task = self._task, None
        if task is None:
            return None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        info = self._info
        self._get_array(split_ref(info["volumes"][0])[0]).log(
            Severity.INFO, ",".join(info["volumes"]), "labWorkloadStopped",
            f"Host workload stopped: {info['bytesWritten'] / (1 << 20):.1f} MiB written to "
            f"{', '.join(info['volumes'])}, {info['errors']} write error(s)"
            + (f" (last: {info['lastError']})" if info["lastError"] else ""))
        self._publish("workload")
        return dict(info)

    def info(self) -> dict | None:
        return dict(self._info) if self._task is not None and not self._task.done() else None

    async def _run(self, targets, rate: float, pattern: str) -> None:
        block = os.urandom(WORKLOAD_BLOCK * 4)
        cursor = {id(hv): 0 for hv in targets}
        budget, last = 0.0, time.monotonic()
        info = self._info
        while True:
            await asyncio.sleep(WORKLOAD_TICK)
            now = time.monotonic()
            budget = min(budget + rate * (now - last), rate)  # at most one second of backlog
            last = now
            batch = []  # this tick's writes, announced together as a host's queue would be
            while budget >= WORKLOAD_BLOCK:
                hv = random.choice(targets)
                regions = max(1, hv.size // WORKLOAD_BLOCK)
                if pattern == "random":
                    offset = random.randrange(regions) * WORKLOAD_BLOCK
                else:
                    offset = cursor[id(hv)]
                    cursor[id(hv)] = (offset + WORKLOAD_BLOCK) % (regions * WORKLOAD_BLOCK)
                batch.append((hv, offset))
                budget -= WORKLOAD_BLOCK
            await _intents_durable(batch)
            for hv, offset in batch:
                start = random.randrange(3) * WORKLOAD_BLOCK
                try:
                    hv.write(offset, block[start:start + WORKLOAD_BLOCK])
                    info["bytesWritten"] += WORKLOAD_BLOCK
                except MirrorError as e:  # a role change or failure mid-workload: the host sees an error
                    info["errors"] += 1
                    info["lastError"] = e.message
                except OSError as e:
                    info["errors"] += 1
                    info["lastError"] = f"{hv.array}/{hv.name}: {e.strerror or e}"


async def _intents_durable(batch) -> None:
    """Make the write-intent bits of a batch of writes durable off the loop, once per volume (group commit)."""
    ranges: dict[int, tuple] = {}
    for hv, offset in batch:
        ranges.setdefault(id(hv), (hv, []))[1].append((offset, WORKLOAD_BLOCK))
    waits = [w for hv, rs in ranges.values() if (w := hv.intend_writes(rs)) is not None]
    if waits:
        await asyncio.gather(*waits, return_exceptions=True)  # a failure shows on the write itself
