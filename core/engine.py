"""The engine: owns the running arrays and everything they do, on one asyncio loop.

The CLI, the tests and the console all drive this one service API. Every public
method is a coroutine that must run on the engine's loop (see ``core.runtime`` for
calling it from another thread); results are immutable snapshots, and changes are
published to subscribers as :class:`EngineEvent`. Nothing outside the engine
touches an array's database session.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from core.array import StorageArray
from core.endpoint import ArrayEndpoint
from core.errors import CommunicationError, NotFound
from core.lab import LabState, open_arrays
from core.service_faults import FaultService
from core.service_lab import LabService
from core.service_mirrors import MirrorService
from core.service_nbd import DrillService, NbdService
from core.service_operations import OperationsService
from core.service_reconcile import ReconcileService
from core.service_roles import RoleService  # roles, failover, Recovery Guru (first: it wraps the others)
from core.service_sync import SyncService
from core.service_volumes import VolumeService
from core.snapshots import ArraySnapshot, EngineEvent, EventRecord

log = logging.getLogger(__name__)
Subscriber = Callable[[EngineEvent], None]


class Engine(FaultService, ReconcileService, RoleService, LabService, DrillService, NbdService, SyncService, OperationsService, VolumeService, MirrorService):
    """All arrays of one home directory (the lab), run by this process."""

    def __init__(self, home: Path, purpose: str = "", nbd_port: int | None = None):
        self.home = Path(home)
        self.nbd_port = nbd_port
        self.purpose = purpose
        self.lab = LabState(self.home)
        self.arrays: dict[str, StorageArray] = {}
        self.endpoints: dict[str, ArrayEndpoint] = {}
        self._subscribers: list[Subscriber] = []
        self.started = False

    # -- life cycle ---------------------------------------------------------
    async def start(self) -> None:
        for array in open_arrays(self.home, self.purpose):
            array.on_event = self._on_array_event
            self.arrays[array.name] = array
            self.endpoints[array.name] = ArrayEndpoint(array)
        await self.start_data_path()
        await self.start_nbd()
        self.started = True
        await self.sync_drills()

    async def stop(self) -> None:
        if self.started:
            await self.stop_workload()
            for clone in self._drills().values():
                clone.close()
            self._drills().clear()
            await self.stop_nbd()
            await self.stop_data_path()
        for array in self.arrays.values():
            array.close()
        self.arrays.clear()
        self.endpoints.clear()
        self.started = False

    # -- publishing ------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` (on the engine thread) for every change; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def publish(self, kind: str, array: str = "", obj: str = "", event: EventRecord | None = None,
                data: tuple = ()) -> None:
        ev = EngineEvent(kind=kind, array=array, object=obj, event=event, data=data)
        for cb in list(self._subscribers):
            try:
                cb(ev)
            except Exception:  # a broken subscriber must not stop the engine
                log.exception("engine event subscriber failed")

    def _on_array_event(self, record: EventRecord) -> None:
        self.publish("event", record.array, record.object, event=record)

    # -- arrays ------------------------------------------------------------------
    def get_array(self, name: str) -> StorageArray:
        array = self.arrays.get(name)
        if array is None:
            known = ", ".join(sorted(self.arrays)) or "none"
            raise NotFound(f"no array named '{name}' here (arrays: {known})", code="arrayNotFound")
        return array

    def reachable(self, local: str, remote: str) -> bool:
        f = self.lab.faults
        return not f.link_cut and remote in self.arrays and remote not in f.stopped_arrays \
            and local not in f.stopped_arrays

    async def peer_call(self, local: str, remote: str, method: str, params: dict, timeout: float = 60.0) -> dict:
        """Send ``method`` from array ``local`` to array ``remote`` over the mirroring channel."""
        if not self.reachable(local, remote):
            raise CommunicationError(
                f"array {local} cannot reach array {remote} over the mirroring channel; "
                "check the link (lab link restore) and that the remote array is running")
        return await self.channels.call(local, remote, method, params, timeout=timeout)

    async def arrays_list(self) -> list[ArraySnapshot]:
        return [self._array_snapshot(a) for _, a in sorted(self.arrays.items())]

    async def array(self, name: str) -> ArraySnapshot:
        return self._array_snapshot(self.get_array(name))

    def _array_snapshot(self, array: StorageArray) -> ArraySnapshot:
        return array.snapshot(online=array.name not in self.lab.faults.stopped_arrays)

    async def events(self, array: str | None = None, limit: int = 200) -> list[EventRecord]:
        names = [array] if array else sorted(self.arrays)
        out: list[EventRecord] = []
        for n in names:
            out.extend(self.get_array(n).events(limit))
        out.sort(key=lambda e: (e.time, e.array, e.id))
        return out[-limit:]
