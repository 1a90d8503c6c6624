"""The engine: owns the running arrays and everything they do, on one asyncio loop.

The CLI, the tests and the console all drive this one service API. Every public
method is a coroutine that must run on the engine's loop (see ``core.runtime`` for
calling it from another thread); results are immutable snapshots, and changes are
published to subscribers as :class:`EngineEvent`. Nothing outside the engine
touches an array's database session.
"""
from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Callable

from core.array import StorageArray
from core.endpoint import ArrayEndpoint
from core import remote_arrays
from core.errors import CommunicationError, InvalidInput, NotFound
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
    """The arrays run by this process: all arrays of a lab home, or the one array of a daemon.

    ``data_dirs`` names the arrays to open (an array daemon passes its own); without it
    every array under ``home/arrays`` is opened (the in-process lab). A remote array
    that is not opened here is reached only over the mirroring channel, at the address
    its remote-array entry gives. ``listen``/``channel_port``/``nbd_host`` are where the
    listeners bind; ``channel_ssl``/``peer_ssl`` turn on TLS between array daemons.
    """

    def __init__(self, home: Path, purpose: str = "", nbd_port: int | None = None, *,
                 data_dirs: list[Path] | None = None, listen: str = "127.0.0.1", channel_port: int = 0,
                 channel_ssl: ssl.SSLContext | None = None, peer_ssl: ssl.SSLContext | None = None):
        self.home = Path(home)
        self.nbd_port = nbd_port
        self.purpose = purpose
        self.data_dirs = data_dirs
        self.listen = listen
        self.channel_port = channel_port
        self.channel_ssl = channel_ssl
        self.peer_ssl = peer_ssl
        self.lab = LabState(self.home)
        self.arrays: dict[str, StorageArray] = {}
        self.endpoints: dict[str, ArrayEndpoint] = {}
        self._subscribers: list[Subscriber] = []
        self.started = False

    # -- life cycle ---------------------------------------------------------
    async def start(self) -> None:
        opened = [StorageArray.open(d, self.purpose) for d in self.data_dirs] if self.data_dirs is not None \
            else open_arrays(self.home, self.purpose)
        for array in opened:
            array.on_event = self._on_array_event
            self.arrays[array.name] = array
            self.endpoints[array.name] = ArrayEndpoint(array)
        await self.start_data_path()
        self._watch_remote_links()
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
        """Whether ``local`` can talk to ``remote`` over the mirroring channel right now.

        A remote in another process is up while its channel session answers (the
        link monitor); both arrays in this process follow the in-process lab's faults.
        """
        if remote not in self.arrays:
            channels = getattr(self, "channels", None)
            return channels is not None and channels.monitor.up(local, remote)
        f = self.lab.faults
        return not f.link_cut and remote not in f.stopped_arrays and local not in f.stopped_arrays

    async def can_reach(self, local: str, remote: str) -> bool:
        """Whether a command can talk to ``remote`` now: a remote in another process is probed at once."""
        if remote in self.arrays:
            return self.reachable(local, remote)
        return await self.channels.monitor.probe_now(local, remote)

    def link_known(self, local: str, remote: str) -> bool:
        """False only before the first probe of a remote in another process (just after a start)."""
        return remote in self.arrays or self.channels.monitor.checked(local, remote)

    async def peer_call(self, local: str, remote: str, method: str, params: dict, timeout: float = 60.0) -> dict:
        """Send ``method`` from array ``local`` to array ``remote`` over the mirroring channel.

        A remote in another process is simply dialled: the attempt, not the link
        monitor's last probe, says whether it answers (just after a start, the monitor
        has not probed yet).
        """
        if remote in self.arrays and not self.reachable(local, remote):
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

    # -- remote arrays (configuration of each local array) -------------------------------
    def _watch_remote_links(self) -> None:
        """Watch the link to every remote array that lives in another process."""
        for array in self.arrays.values():
            remotes = {e["name"] for e in remote_arrays.remote_entries(array)} | {g.remote_array for g in array.groups()}
            for remote in sorted(remotes - set(self.arrays)):
                self.channels.monitor.watch(array.name, remote)

    def local_array(self, name: str | None = None) -> StorageArray:
        """``name``, or the one array this process runs (an array daemon)."""
        if name is not None:
            return self.get_array(name)
        if len(self.arrays) != 1:
            raise InvalidInput(f"this engine runs {len(self.arrays)} arrays; name the local array",
                               code="arrayNotGiven")
        return next(iter(self.arrays.values()))

    async def remote_arrays(self, array: str | None = None) -> list[dict]:
        """The remote arrays ``array`` mirrors with, and whether each answers now."""
        a = self.local_array(array)
        out = []
        for entry in remote_arrays.remote_entries(a):
            link = self.channels.monitor.links.get((a.name, entry["name"]))
            out.append({**entry, "reachable": self.reachable(a.name, entry["name"]),
                        "linkReason": link.reason if link is not None else ""})
        return out

    async def add_remote_array(self, name: str, addresses: list[str], password: str, wwn: str = "",
                               array: str | None = None) -> dict:
        a = self.local_array(array)
        entry = remote_arrays.set_remote(a, name, addresses, password, wwn)
        session = self.channels.sessions.pop((a.name, name), None)
        if session is not None:  # the next call dials the new addresses
            await session.close()
        if name not in self.arrays:
            self.channels.monitor.watch(a.name, name)
        self.publish("array", a.name, name)
        return entry

    async def remove_remote_array(self, name: str, array: str | None = None) -> None:
        a = self.local_array(array)
        remote_arrays.remove_remote(a, name)
        self.channels.monitor.links.pop((a.name, name), None)
        session = self.channels.sessions.pop((a.name, name), None)
        if session is not None:
            await session.close()
        self.publish("array", a.name, name)

    async def events(self, array: str | None = None, limit: int = 200) -> list[EventRecord]:
        names = [array] if array else sorted(self.arrays)
        out: list[EventRecord] = []
        for n in names:
            out.extend(self.get_array(n).events(limit))
        out.sort(key=lambda e: (e.time, e.array, e.id))
        return out[-limit:]
