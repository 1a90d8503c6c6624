"""Scheduled online verify of this process's primary group sides (``core.replication.verify_schedule``).

Every primary group side is verified in the background every ``every_hours`` (weekly
by default, as a drive media scan), one at a time, never during its own sync nor while
it is not ready. The last finished verification's time is kept in the array's data
directory (``verify.json``), so a restart does not start the interval again.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Awaitable, Callable

from core.array import StorageArray
from core.datapath.extents import create_atomically
from core.domain import Role
from core.replication.links import Peer
from core.replication.sync_runner import SyncRunner
from core.replication.verify_schedule import DEFAULT_HOURS, VerifyCandidate, VerifySchedule

RECORD = "verify.json"


class ScheduledVerify:
    def __init__(self, arrays: Mapping[str, StorageArray], runner: SyncRunner, peer: Peer,
                 online_verify: Callable[[str], Awaitable[dict]]):
        self._arrays = arrays
        self._runner = runner
        self._peer = peer
        self.every_hours = float(DEFAULT_HOURS)
        self.schedule = VerifySchedule(run=lambda array, group: online_verify(group), on_finished=self._finished,
                                       clock=runner.clock)

    def tick(self) -> None:
        self.schedule.tick(self._candidates())

    async def stop(self) -> None:
        await self.schedule.stop()

    def _candidates(self) -> list[VerifyCandidate]:
        out = []
        for array in self._arrays.values():
            verified = _record(array)
            for g in array.groups():
                if g.role != Role.PRIMARY.value:
                    continue
                st = self._runner.states.get((array.name, g.name))
                ready = bool(g.pairs) and g.last_recovery_point is not None and not g.user_suspended \
                    and not g.role_change and not g.role_conflict and not g.orphan \
                    and not any(p.failed_reason or p.volume.failed or p.incomplete for p in g.pairs) \
                    and self._peer.reachable(array.name, g.remote_array)
                last = verified.get(g.name)
                out.append(VerifyCandidate(array.name, g.name, self.every_hours, ready,
                                           syncing=st is not None and st.running,
                                           last_verified=datetime.fromisoformat(last) if last else None))
        return out

    def _finished(self, array: str, group: str, report, error, when: datetime) -> None:
        if error is not None or array not in self._arrays:
            return  # tried again after the retry interval; online_verify logged what it found
        a = self._arrays[array]
        record = _record(a) | {group: when.isoformat()}
        create_atomically(a.data_dir / RECORD, json.dumps(record).encode(), durable=False)


def _record(array: StorageArray) -> dict:
    try:
        data = json.loads((array.data_dir / RECORD).read_text())
    except (OSError, ValueError):
        return {}  # none yet, or damaged: verified again within the first delay
    return data if isinstance(data, dict) else {}
