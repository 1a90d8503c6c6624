"""The engine: owns the running arrays and everything they do, on one asyncio loop.

The CLI, the tests and the console all drive this one service API. Every public
method is a coroutine that must run on the engine's loop (see ``core.runtime`` for
calling it from another thread); results are immutable snapshots, and changes are
published to subscribers as :class:`EngineEvent`. Nothing outside the engine
touches an array's database session.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from core.array import StorageArray
from core.drills import Drills
from core.endpoint import ArrayEndpoint
from core import remote_arrays
from core.errors import CommunicationError, InvalidInput, MirrorError, NotFound
from core.lab import open_arrays
from core.lab_faults import LabFaultFile
from core.nbd.exports import NbdExports
from core.publisher import Publisher, Subscriber
from core.domain import REGION_SIZE
from core.replication import receiver
from core.replication.channels import ChannelHub
from core.replication.host_volumes import HostVolumes
from core.replication.links import Links
from core.replication.sync_runner import SyncRunner
from core.service_faults import FaultService
from core.service_mirrors import MirrorService
from core.service_operations import OperationsService
from core.service_reconcile import ReconcileService
from core.service_roles import RoleService  # roles, failover, Recovery Guru (first: it wraps the others)
from core.service_volumes import VolumeService
from core.snapshots import ArraySnapshot, EventRecord
from core.workload import Workload

log = logging.getLogger(__name__)
TICK_SECONDS = 0.25


class Engine(FaultService, ReconcileService, RoleService, OperationsService, VolumeService, MirrorService):
    """The arrays run by this process: all arrays of a lab home, or the one array of a daemon.

    ``data_dirs`` names the arrays to open (an array daemon passes its own); without it
    every array under ``home/arrays`` is opened (the in-process lab). A remote array
    that is not opened here is reached only over the mirroring channel, at the address
    its remote-array entry gives. ``listen``/``channel_port``/``nbd_host`` are where the
    listeners bind; ``channel_ssl``/``peer_ssl`` turn on TLS between array daemons.
    """

    region_size = REGION_SIZE

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
        self.lab = LabFaultFile(self.home)
        self.arrays: dict[str, StorageArray] = {}
        self.endpoints: dict[str, ArrayEndpoint] = {}
        self.publisher = Publisher()
        self.publish = self.publisher.publish
        self.subscribe = self.publisher.subscribe
        self.hosts = HostVolumes(self.lab, self.region_size, lambda hv, err: self.runner.pit_full(hv, err))
        self.links = Links(self.arrays, self.lab)
        self.runner = SyncRunner(self.arrays, self.hosts, self.links, self.publish, self.region_size, self.role_hold)
        self.drills = Drills(self.arrays, self.lab, self.publish, self.nbd_uri, self.region_size)
        self.nbd = NbdExports(self.hosts, self.drills, self.lab, listen, nbd_port)
        self.workload_runner = Workload(self.get_array, self.hosts, self.publish)
        self.started = False

    # -- life cycle ---------------------------------------------------------
    async def start(self) -> None:
        opened = [StorageArray.open(d, self.purpose) for d in self.data_dirs] if self.data_dirs is not None \
            else open_arrays(self.home, self.purpose)
        for array in opened:
            array.on_event = self.publisher.array_event
            self.arrays[array.name] = array
            self.endpoints[array.name] = ArrayEndpoint(array)
        self.channels = self.links.channels = ChannelHub(
            self.endpoints, lambda *a: self.receiver.regions(*a), self.links,
            self.listen, self.channel_port, self.channel_ssl, self.peer_ssl)
        self.receiver = receiver.Receiver(self)
        for array in self.arrays.values():
            self.receiver.register(self.endpoints[array.name])
            self.hosts.open_array(array)
            receiver.recover_groups(self, array)
            await self.channels.start_array(array)
            self.hosts.refresh_access(array)
        self._start_roles()
        self._scheduler = asyncio.get_running_loop().create_task(self._schedule_forever(), name="scheduler")
        self.links.watch_remotes()
        await self.nbd.start(list(self.arrays))
        self.started = True
        await self.drills.follow_lab()

    async def stop(self) -> None:
        if self.started:
            await self.workload_runner.stop()
            self.drills.close_all()
            await self.nbd.stop()
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
            await self._stop_roles()
            await self.runner.stop()
            await self.channels.stop()
            self.hosts.close_all()
        for array in self.arrays.values():
            array.close()
        self.arrays.clear()
        self.endpoints.clear()
        self.started = False

    # -- the scheduler and the in-process lab's faults -------------------------------
    async def _schedule_forever(self) -> None:
        while True:
            try:
                await self._follow_lab_faults()
                self._watch_links()
                self.runner.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed")
            await asyncio.sleep(TICK_SECONDS)

    async def _follow_lab_faults(self) -> None:
        """Another process (``mirrorctl lab link cut``) may change lab.json: follow it."""
        before = self.lab.poll()
        if before is None:
            return
        await self._apply_faults(before)
        await self.drills.follow_lab()

    async def _apply_faults(self, before) -> None:
        f = self.lab.faults
        if f.link_cut and not before.link_cut:
            await self.channels.close_sessions()
            self.publish("link", obj="cut")
        elif before.link_cut and not f.link_cut:
            self.publish("link", obj="restored")
        if f.link_bandwidth != before.link_bandwidth:
            self.channels.set_rate(f.link_bandwidth)
        self.hosts.apply_failures(self.arrays)

    async def lab_link(self, cut: bool) -> dict:
        """Cut or restore the link between the lab's arrays (kept in lab.json until restored)."""
        before = self.lab.reread()  # keep what other processes changed meanwhile
        self.lab.faults.link_cut = cut
        self.lab.save()
        await self._apply_faults(before)
        return await self.lab_faults()

    async def lab_faults(self) -> dict:
        return self.lab.as_dict()

    # -- host access -----------------------------------------------------------------
    def host_volume(self, array: str, volume: str, missing_ok: bool = False):
        return self.hosts.volume(array, volume, missing_ok)

    def refresh_access(self, array: StorageArray) -> None:
        self.hosts.refresh_access(array)

    def attach_pair_volume(self, array: StorageArray, volume: str) -> None:
        self.hosts.attach_pair_volume(array, volume)

    def detach_pair_volume(self, array: str, volume: str) -> None:
        self.hosts.detach_pair_volume(array, volume)

    def nbd_uri(self, array: str, volume: str) -> str | None:
        return self.nbd.uri(array, volume)

    async def nbd_uris(self) -> dict[str, str]:
        return self.nbd.uris()

    def drill_clone(self, array: str, name: str):
        return self.drills.clone(array, name)

    def preserve_for_drills(self, array: str, volume: str, offsets) -> None:
        self.drills.preserve(array, volume, offsets)

    async def drill_start(self, group: str) -> dict:
        return await self.drills.start(group)

    async def drill_stop(self, group: str) -> None:
        await self.drills.stop(group)

    # -- lab tools ----------------------------------------------------------------------
    async def start_workload(self, refs: list[str], rate_mib: float, pattern: str = "random") -> dict:
        return await self.workload_runner.start(refs, rate_mib, pattern)

    async def stop_workload(self) -> dict | None:
        return await self.workload_runner.stop()

    async def workload(self) -> dict | None:
        return self.workload_runner.info()

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

    # -- arrays ------------------------------------------------------------------
    def get_array(self, name: str) -> StorageArray:
        array = self.arrays.get(name)
        if array is None:
            known = ", ".join(sorted(self.arrays)) or "none"
            raise NotFound(f"no array named '{name}' here (arrays: {known})", code="arrayNotFound")
        return array

    def reachable(self, local: str, remote: str) -> bool:
        return self.links.reachable(local, remote)

    async def can_reach(self, local: str, remote: str) -> bool:
        return await self.links.can_reach(local, remote)

    def link_known(self, local: str, remote: str) -> bool:
        return self.links.known(local, remote)

    async def peer_call(self, local: str, remote: str, method: str, params: dict, timeout: float = 60.0) -> dict:
        return await self.links.call(local, remote, method, params, timeout=timeout)

    async def arrays_list(self) -> list[ArraySnapshot]:
        return [self._array_snapshot(a) for _, a in sorted(self.arrays.items())]

    async def array(self, name: str) -> ArraySnapshot:
        return self._array_snapshot(self.get_array(name))

    def _array_snapshot(self, array: StorageArray) -> ArraySnapshot:
        return array.snapshot(online=array.name not in self.lab.faults.stopped_arrays)

    # -- remote arrays (configuration of each local array) -------------------------------
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
