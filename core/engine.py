"""The engine: the composition root of the array a daemon runs, on one asyncio loop.

The engine opens its array's data directory and builds its collaborators, each
owning one piece of state and given only what it needs:

- :class:`HostVolumes` — every volume open for host I/O (NBD, the Python API);
- :class:`Links` — reaching the remote arrays over the mirroring channel (the ``Peer``);
- :class:`SyncRunner` — the scheduler and running syncs; :class:`Receiver` — a secondary's side;
- :class:`RoleCoordinator` and :class:`Reconciler` — role changes, and settling both sides;
- :class:`Guru`, :class:`Drills`, :class:`NbdExports`, :class:`Workload`, :class:`PreservedData`,
  :class:`ScheduledVerify` (online verify by itself);
- the commands (volumes, mirrors, sync, lab faults) that make up the service API.

Everything between two arrays crosses the mirroring channel, to the addresses of
the array's remote-array entries: nothing reads another array's memory.

The CLI, the REST API and the console drive that one service API. Every public
method is a coroutine that must run on the engine's loop (see ``core.runtime``);
results are immutable snapshots, and changes go to subscribers as ``EngineEvent``.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from core.api import AnsweredBy
from core.array import StorageArray
from core.commands.lab_faults import LabFaultCommands
from core.commands.mirrors import MirrorCommands
from core.commands.preserved import PreservedData
from core.commands.sync import SyncCommands
from core.commands.verify_scheduling import ScheduledVerify
from core.commands.volumes import VolumeCommands
from core.domain import REGION_SIZE
from core.drills import Drills
from core.endpoint import ArrayEndpoint, array_handlers, handler_table
from core.errors import InvalidInput
from core.guru import Guru
from core.nbd.exports import NbdExports
from core.publisher import Publisher
from core.replication import receiver
from core.replication.channels import ChannelHub
from core.replication.host_volumes import HostVolumes
from core.replication.links import Links
from core.replication.sync_runner import SyncRunner
from core.roles.coordinator import RoleCoordinator
from core.roles.reconciler import Reconciler
from core.snapshots import ArraySnapshot, EventRecord
from core.workload import Workload

log = logging.getLogger(__name__)
TICK_SECONDS = 0.25


class Engine:
    """The storage array in data directory ``data_dir``, as its daemon runs it.

    Its remote arrays are reached only over the mirroring channel, at the addresses
    its remote-array entries give. ``listen``/``channel_port`` are where the listeners
    bind; ``channel_ssl``/``peer_ssl`` turn on TLS between array daemons.
    """

    region_size = REGION_SIZE

    def __init__(self, data_dir: Path, purpose: str = "", nbd_port: int | None = None, *,
                 listen: str = "127.0.0.1", channel_port: int = 0,
                 channel_ssl: ssl.SSLContext | None = None, peer_ssl: ssl.SSLContext | None = None):
        self.home = self.data_dir = Path(data_dir)
        self.purpose = purpose
        self.listen = listen
        self.channel_port = channel_port
        self.channel_ssl = channel_ssl
        self.peer_ssl = peer_ssl
        self.arrays: dict[str, StorageArray] = {}
        self.endpoints: dict[str, ArrayEndpoint] = {}
        self.publisher = Publisher()
        publish = self.publish = self.publisher.publish
        self.subscribe = self.publisher.subscribe
        rs = self.region_size
        self.hosts = HostVolumes(rs, lambda hv, err: self.runner.pit_full(hv, err))
        self.links = Links(self.arrays)
        self.reconciler: Reconciler | None = None
        self.runner = SyncRunner(self.arrays, self.hosts, self.links, publish, rs,
                                 lambda array, g: self.reconciler.holds(array, g),
                                 lambda array, group: self.receiver.incoming(array, group))
        self.drills = Drills(self.arrays, publish, lambda a, v: self.nbd.uri(a, v), rs)
        self.nbd = NbdExports(self.hosts, self.drills, listen, nbd_port)
        self.workload_runner = Workload(self.get_array, self.hosts, publish)
        self.storage = VolumeCommands(self.arrays, self.hosts, self.nbd, self.links, publish)
        self.mirrors = MirrorCommands(self.arrays, self.storage, self.hosts, self.runner, self.links, publish,
                                      self._array_snapshot)
        self.sync = SyncCommands(self.storage, self.hosts, self.runner, self.links, publish, self.mirrors.group_home)
        self.scheduled_verify = ScheduledVerify(self.arrays, self.runner, self.links, self.sync.online_verify)
        self.faults = LabFaultCommands(self.storage, self.hosts, self.runner, self.links, publish)
        self.roles = RoleCoordinator(self.arrays, self.endpoints, self.hosts, self.runner, self.links, publish,
                                     self.mirrors.group_home)
        self.reconciler = Reconciler(self.arrays, self.links, self.roles, publish)
        self.recovery_guru = Guru(self.arrays, self.links, self.runner, self.mirrors, self.roles,
                                  self.reconciler, self)
        self.preserved = PreservedData(self.arrays, self.hosts, publish)
        self.receiver = receiver.Receiver(self.hosts, self.drills, publish, self.mirrors.remove_local_pair_side)
        self.started = False

    # -- the service API, answered by the collaborators ----------------------------
    volumes = AnsweredBy("storage")
    volume = AnsweredBy("storage")
    create_volume = AnsweredBy("storage")
    resize_volume = AnsweredBy("storage")
    delete_volume = AnsweredBy("storage")
    change_password = AnsweredBy("storage")
    iscsi_settings = AnsweredBy("storage")
    set_iscsi_settings = AnsweredBy("storage")
    remote_volumes = AnsweredBy("storage")

    remote_array = AnsweredBy("mirrors")
    candidates = AnsweredBy("mirrors")
    create_group = AnsweredBy("mirrors")
    update_group = AnsweredBy("mirrors")
    delete_group = AnsweredBy("mirrors")
    groups = AnsweredBy("mirrors")
    group = AnsweredBy("mirrors")
    add_pair = AnsweredBy("mirrors")
    remove_pair = AnsweredBy("mirrors")
    pairs = AnsweredBy("mirrors")
    pair = AnsweredBy("mirrors")
    group_snapshot = AnsweredBy("mirrors")

    host_write = AnsweredBy("sync")
    host_read = AnsweredBy("sync")
    host_flush = AnsweredBy("sync")
    host_trim = AnsweredBy("sync")
    sync_now = AnsweredBy("sync")
    suspend = AnsweredBy("sync")
    resume = AnsweredBy("sync")
    sync_history = AnsweredBy("sync")
    increase_reserved_capacity = AnsweredBy("sync")
    long_running_operations = AnsweredBy("sync")
    verify = AnsweredBy("sync")
    online_verify = AnsweredBy("sync")

    role_change = AnsweredBy("roles")
    promote = AnsweredBy("roles")
    demote = AnsweredBy("roles")
    role_cancel = AnsweredBy("roles")
    resolve_role_conflict = AnsweredBy("roles")
    forced_promotion_refusal = AnsweredBy("roles")
    reconcile = AnsweredBy("reconciler")

    set_volume_owner = AnsweredBy("faults")
    volume_fail = AnsweredBy("faults")
    volume_repair = AnsweredBy("faults")
    controller_reset = AnsweredBy("faults")
    controller_restore = AnsweredBy("faults")

    guru = AnsweredBy("recovery_guru")
    guru_fix = AnsweredBy("recovery_guru")
    guru_problems = AnsweredBy("recovery_guru")

    preserved_data = AnsweredBy("preserved", "list")
    preserved_read = AnsweredBy("preserved", "read")
    preserved_export = AnsweredBy("preserved", "export")
    preserved_restore = AnsweredBy("preserved", "restore")
    preserved_delete = AnsweredBy("preserved", "delete")

    drill_start = AnsweredBy("drills", "start")
    drill_stop = AnsweredBy("drills", "stop")
    drills_running = AnsweredBy("drills", "running")
    start_workload = AnsweredBy("workload_runner", "start")
    stop_workload = AnsweredBy("workload_runner", "stop")

    # -- life cycle ---------------------------------------------------------
    async def start(self) -> None:
        array = StorageArray.open(self.data_dir, self.purpose)
        array.on_event = self.publisher.array_event
        self.arrays[array.name] = array
        self.endpoints[array.name] = self._handler_table(array)
        self.channels = self.links.channels = ChannelHub(
            self.endpoints, lambda *region_data: self.receiver.regions(*region_data), self.links,
            self.listen, self.channel_port, self.channel_ssl, self.peer_ssl)
        for array in self.arrays.values():
            self.hosts.open_array(array)
            receiver.recover_groups(self.receiver, array)
            await self.channels.start_array(array)
            self.hosts.refresh_access(array)
        self._scheduler = asyncio.get_running_loop().create_task(self._schedule_forever(), name="scheduler")
        self.links.watch_remotes()
        await self.nbd.start(list(self.arrays))
        self.started = True
        await self.drills.resume_recorded()

    def _handler_table(self, array: StorageArray) -> ArrayEndpoint:
        """Every message array ``array`` answers over the mirroring channel, in one table."""
        return ArrayEndpoint(array, handler_table(array_handlers(array), self.receiver.handlers(array),
                                                  self.roles.handlers(array), self.reconciler.handlers(array)))

    async def stop(self) -> None:
        if self.started:
            await self.workload_runner.stop()
            self.drills.close_all()
            await self.nbd.stop()
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
            await self.scheduled_verify.stop()
            await self.reconciler.stop()
            await self.roles.stop()
            await self.runner.stop()
            await self.receiver.stop()
            await self.channels.stop()
            self.hosts.close_all()
        for array in self.arrays.values():
            array.close()
        self.arrays.clear()
        self.endpoints.clear()
        self.started = False

    # -- the scheduler ------------------------------------------------------------------
    async def _schedule_forever(self) -> None:
        while True:
            try:
                self.reconciler.watch_links()
                self.runner.tick()
                self.scheduled_verify.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed")
            await asyncio.sleep(TICK_SECONDS)

    # -- what lower layers ask of the arrays' data path -----------------------------
    def host_volume(self, array: str, volume: str, missing_ok: bool = False):
        return self.hosts.volume(array, volume, missing_ok)

    async def nbd_uris(self) -> dict[str, str]:
        return self.nbd.uris()

    async def workload(self) -> dict | None:
        return self.workload_runner.info()

    async def test_communication(self, local: str, remote: str) -> dict:
        """Connectivity, round-trip latency and bandwidth of the mirroring channel."""
        self.get_array(local)
        return await self.links.test(local, remote)

    # -- arrays ------------------------------------------------------------------
    def get_array(self, name: str) -> StorageArray:
        return self.storage.array(name)

    async def arrays_list(self) -> list[ArraySnapshot]:
        return [self._array_snapshot(a) for _, a in sorted(self.arrays.items())]

    async def array(self, name: str) -> ArraySnapshot:
        return self._array_snapshot(self.get_array(name))

    def _array_snapshot(self, array: StorageArray) -> ArraySnapshot:
        return array.snapshot(online=True)  # it answers: the fleet reports the arrays that do not

    def local_array(self, name: str | None = None) -> StorageArray:
        """``name``, or the one array this process runs (an array daemon)."""
        if name is not None:
            return self.get_array(name)
        if len(self.arrays) != 1:
            raise InvalidInput(f"this engine runs {len(self.arrays)} arrays; name the local array",
                               code="arrayNotGiven")
        return next(iter(self.arrays.values()))

    # -- remote arrays (configuration of each local array) -------------------------------
    async def remote_arrays(self, array: str | None = None) -> list[dict]:
        """The remote arrays ``array`` mirrors with, and whether each answers now."""
        return self.links.remote_arrays(self.local_array(array))

    async def add_remote_array(self, name: str, addresses: list[str], password: str, wwn: str = "",
                               array: str | None = None) -> dict:
        a = self.local_array(array)
        entry = await self.links.add_remote_array(a, name, addresses, password, wwn)
        self.publish("array", a.name, name)
        return entry

    async def remove_remote_array(self, name: str, array: str | None = None) -> None:
        a = self.local_array(array)
        await self.links.remove_remote_array(a, name)
        self.publish("array", a.name, name)

    async def events(self, array: str | None = None, limit: int = 200) -> list[EventRecord]:
        out: list[EventRecord] = []
        for n in [array] if array else sorted(self.arrays):
            out.extend(self.get_array(n).events(limit))
        out.sort(key=lambda e: (e.time, e.array, e.id))
        return out[-limit:]
