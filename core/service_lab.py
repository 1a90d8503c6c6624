"""Lab tools of the engine's service API: a host workload and Test communication."""
from __future__ import annotations

import asyncio
import os
import random
import time

from core.domain import Severity
from core.errors import InvalidInput, MirrorError
from core.service_volumes import split_ref

WORKLOAD_BLOCK = 64 * 1024
WORKLOAD_TICK = 0.05


class LabService:
    """Mixed into :class:`core.engine.Engine`."""

    async def start_workload(self, refs: list[str], rate_mib: float, pattern: str = "random") -> dict:
        """Hosts writing ``rate_mib`` MiB/s in total to ``refs`` through the host I/O path."""
        if not refs:
            raise InvalidInput("choose at least one volume for the workload")
        if not 0 < float(rate_mib) <= 4096:
            raise InvalidInput(f"workload rate {rate_mib} MiB/s must be more than 0 and at most 4096")
        if pattern not in ("random", "sequential"):
            raise InvalidInput(f"workload pattern '{pattern}' is not valid; use random or sequential")
        targets = []
        for ref in refs:
            a, v = split_ref(ref)
            self.get_array(a).volume(v)
            hv = self.host_volume(a, v)
            if hv.read_only:
                raise MirrorError(f"{ref} is read-only to hosts ({hv.refusal or 'failed'}); pick primary volumes",
                                  code="arvmVolumeNotWritable")
            targets.append(hv)
        await self.stop_workload()
        self._workload_info = {"volumes": list(refs), "rateMib": float(rate_mib), "pattern": pattern,
                               "bytesWritten": 0, "errors": 0}
        self._workload = asyncio.get_running_loop().create_task(
            self._run_workload(targets, float(rate_mib) * (1 << 20), pattern), name="workload")
        self.get_array(targets[0].array).log(Severity.INFO, ",".join(refs), "labWorkloadStarted",
                                             f"Host workload started: {rate_mib:g} MiB/s {pattern} on {', '.join(refs)}")
        self.publish("workload")
        return dict(self._workload_info)

    async def _run_workload(self, targets, rate: float, pattern: str) -> None:
        block = os.urandom(WORKLOAD_BLOCK * 4)
        cursor = {id(hv): 0 for hv in targets}
        budget, last = 0.0, time.monotonic()
        info = self._workload_info
        while True:
            await asyncio.sleep(WORKLOAD_TICK)
            now = time.monotonic()
            budget = min(budget + rate * (now - last), rate)  # at most one second of backlog
            last = now
            while budget >= WORKLOAD_BLOCK:
                hv = random.choice(targets)
                regions = max(1, hv.size // WORKLOAD_BLOCK)
                if pattern == "random":
                    offset = random.randrange(regions) * WORKLOAD_BLOCK
                else:
                    offset = cursor[id(hv)]
                    cursor[id(hv)] = (offset + WORKLOAD_BLOCK) % (regions * WORKLOAD_BLOCK)
                start = random.randrange(3) * WORKLOAD_BLOCK
                try:
                    hv.write(offset, block[start:start + WORKLOAD_BLOCK])
                    info["bytesWritten"] += WORKLOAD_BLOCK
                except (MirrorError, OSError):
                    info["errors"] += 1  # a role change or failure mid-workload: the host sees an error
                budget -= WORKLOAD_BLOCK

    async def stop_workload(self) -> dict | None:
        task = getattr(self, "_workload", None)
        if task is None:
            return None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._workload = None
        self.publish("workload")
        return dict(self._workload_info)

    async def workload(self) -> dict | None:
        task = getattr(self, "_workload", None)
        return dict(self._workload_info) if task is not None and not task.done() else None

    async def test_communication(self, local: str, remote: str) -> dict:
        """Connectivity, round-trip latency and bandwidth of the mirroring channel."""
        self.get_array(local)
        result = {"local": local, "remote": remote, "connected": False, "latency_ms": None,
                  "bandwidth_mib_s": None, "message": ""}
        try:
            if not await self.can_reach(local, remote):
                raise MirrorError(f"the link between {local} and {remote} is down")
            session = await self.channels.session(local, remote)
            pings = [await session.ping() for _ in range(5)]
            result["connected"] = True
            result["latency_ms"] = round(1000 * sorted(pings)[len(pings) // 2], 3)
            result["bandwidth_mib_s"] = round(await session.measure_bandwidth(8 << 20) / (1 << 20), 1)
            result["message"] = f"{remote} reachable over the mirroring channel"
        except MirrorError as e:
            result["message"] = e.message
        return result
