"""The managed arrays as one service API, answered by their daemons over REST (DESIGN "core/client").

``Fleet`` offers the same coroutines as an array's engine (``groups()``,
``create_group(...)``, ``sync_now(...)``...), returning the same frozen snapshots,
for every array it manages: each call goes to the REST API of the array it concerns. ``mirrorctl`` and the
console's engine drive arrays through it, so they work while the arrays run on their
own — alongside each other, and on other machines.

A group lives on two arrays: calls about a group go to its primary side when it is
reachable (where the Web Services act on it), else to any side that has it.
Events come from each array's event stream (SSE) and are re-published as
:class:`core.snapshots.EngineEvent` to subscribers, as the engine does.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Callable

from core import iscsi_settings
from core.client.rest import API_ROOT, ArrayClient
from core.client.events import follow_events
from core.api import AnsweredBy
from core.client.fleet_guru import FleetGuru
from core.client.lab import LabLink
from core.client.fleet_lab import FleetLab
from core.client.fleet_roles import FleetRoles
from core.client.preserved import FleetPreserved
from core.client.fleet_arrays import ManagedArrays
from core.errors import CommunicationError, InvalidInput, MirrorError, NotFound
from core.rest import models
from core.rest.routes_events import EVENT_LIMIT_MAX
from core.snapshots import (ArraySnapshot, EngineEvent, EventRecord, GroupSnapshot, IscsiSettingsSnapshot, PairSnapshot,
                            VolumeSnapshot)
from core.refs import split_ref
from core.units import parse_size

log = logging.getLogger(__name__)
Subscriber = Callable[[EngineEvent], None]
STOP_SECONDS = 5.0  # what stopping waits for each stream and connection
# Engine settings (core.groups.GroupSettings words) -> the Web Services body fields.
SETTINGS_TO_WS = {"sync_interval_minutes": "syncIntervalMinutes", "priority": "priority",
                  "resync_policy": "resyncPolicy", "sync_alert_minutes": "syncWarnThresholdMinutes",
                  "recovery_point_alert_minutes": "recoveryWarnThresholdMinutes",
                  "reserved_alert_percent": "repoUtilizationWarnThreshold"}


UNREACHABLE_CODES = frozenset({"arrayUnreachable", "certificateMismatch", "certificateUntrusted"})


def unreachable(e: MirrorError) -> bool:
    """The array did not answer, or presented a certificate that is not trusted: no answer to use."""
    return isinstance(e, CommunicationError) or e.code in UNREACHABLE_CODES


def lab_clients(arrays: list[dict]) -> dict[str, ArrayClient]:
    """Clients of the lab's daemons as ``lab status`` lists them (URL, password, pinned certificate)."""
    return {a["name"]: ArrayClient(a["restUrl"], a["password"], fingerprint=a["certificateSha256"]) for a in arrays}


def settings_body(settings: dict) -> dict:
    body = {}
    if settings.get("sync_interval_minutes") == 0 and settings.get("sync_mode") is None:
        # The Web Services read a bare interval of 0 as "manual"; the service API means an interval, refused.
        body["manualSync"] = False
    for key, value in settings.items():
        if value is None:
            continue
        if key == "sync_mode":
            body["manualSync"] = str(getattr(value, "value", value)) == "manual"
        elif key == "channel":
            body["interfaceType"] = {"fc": "fibre"}.get(str(getattr(value, "value", value)), str(value))
        elif key in SETTINGS_TO_WS:
            body[SETTINGS_TO_WS[key]] = getattr(value, "value", value)
        else:
            raise InvalidInput(f"unknown group setting '{key}'", code="invalidInput")
    return body


class Fleet:
    """Arrays by name -> their REST clients; the engine's service API across all of them."""

    def __init__(self, clients: dict[str, ArrayClient], discover: bool = False, lab: LabLink | None = None,
                 bring_lab_up: bool = False, stopped: dict[str, str] | None = None, store=None,
                 stale_groups: bool = False):
        """``discover``: the keys are provisional; ``start`` names each array as its ``about`` page does.

        ``lab``: the embedded lab's link relay, for ``lab_link`` (None for real arrays);
        ``bring_lab_up``: ``start`` starts the lab's daemons first and manages those.
        ``stopped``: managed arrays known not to run (name -> how to start them): calls to
        them fail as unreachable, and they are listed offline.
        ``store``: a :class:`core.client.managed.ManagedArrayStore`: its saved arrays are
        managed too, and arrays can be added and removed while the fleet runs (the console).
        ``stale_groups``: an array that stops answering keeps its groups' last known sides in
        ``groups()`` and its volumes in ``volumes()`` (the console greys them; mirrorctl does not want them).
        """
        self.stopped = dict(stopped or {})
        self.clients = dict(clients)
        self.discover = discover
        self.lab = lab
        self.bring_lab_up = bring_lab_up
        self._last_known: dict[str, ArraySnapshot] = {}
        self.preserved = FleetPreserved(self)
        self.lab_tools = FleetLab(self)
        self.recovery_guru = FleetGuru(self)
        self.roles = FleetRoles(self)
        self._subscribers: list[Subscriber] = []
        self._streams: dict[str, asyncio.Task] = {}
        self._stopping = False
        self.stale_groups = stale_groups
        self._last_groups: dict[str, list[GroupSnapshot]] = {}
        self._last_volumes: dict[str, list[VolumeSnapshot]] = {}
        self._lab_names: set[str] = set(self.clients) if lab is not None else set()
        self.managed = ManagedArrays(store, self, lambda: self._lab_names) if store is not None else None

    promote = AnsweredBy("roles")
    demote = AnsweredBy("roles")
    role_change = AnsweredBy("roles")
    role_cancel = AnsweredBy("roles")

    lab_faults = AnsweredBy("lab_tools")
    lab_link = AnsweredBy("lab_tools")
    start_workload = AnsweredBy("lab_tools")
    stop_workload = AnsweredBy("lab_tools")
    workload = AnsweredBy("lab_tools")
    volume_fail = AnsweredBy("lab_tools")
    volume_repair = AnsweredBy("lab_tools")
    controller_reset = AnsweredBy("lab_tools")
    controller_restore = AnsweredBy("lab_tools")
    array_stop = AnsweredBy("lab_tools")
    array_start = AnsweredBy("lab_tools")
    drill_start = AnsweredBy("lab_tools")
    drill_stop = AnsweredBy("lab_tools")
    drills_running = AnsweredBy("lab_tools")

    guru = AnsweredBy("recovery_guru")
    guru_fix = AnsweredBy("recovery_guru")

    preserved_data = AnsweredBy("preserved", "list")
    preserved_read = AnsweredBy("preserved", "read")
    preserved_export = AnsweredBy("preserved", "export")
    preserved_restore = AnsweredBy("preserved", "restore")
    preserved_delete = AnsweredBy("preserved", "delete")

    # -- life cycle (what EngineLoop expects of an engine) --------------------------
    async def start(self) -> None:
        """Each client connects on its first call; arrays given by address are asked their name first."""
        if self.bring_lab_up and self.lab is not None:
            self.clients = lab_clients(await self.lab.bring_up())
            self._lab_names = set(self.clients)
        if self.discover:
            named = {}
            for client in self.clients.values():
                named[(await client.about())["arrayName"]] = client
            self.clients = named
        if self.managed is not None:
            self.managed.load()

    async def stop(self) -> None:
        """Stop following and close the connections, in bounded time: a console never hangs on its way out."""
        self._stopping = True
        for task in self._streams.values():
            task.cancel()
        if self._streams:
            _, stuck = await asyncio.wait(self._streams.values(), timeout=STOP_SECONDS)
            if stuck:
                log.warning("%d event stream(s) did not stop within %.0f s; left behind", len(stuck), STOP_SECONDS)
        self._streams.clear()
        for name, c in self.clients.items():
            try:
                await asyncio.wait_for(c.close(), STOP_SECONDS)
            except asyncio.TimeoutError:
                log.warning("closing the connection to %s took longer than %.0f s; left behind", name, STOP_SECONDS)

    # -- arrays joining and leaving at run time (core.client.fleet_arrays.FleetHooks) ------------
    def follow(self, name: str) -> None:
        """Follow a newly managed array's event stream (when anyone listens)."""
        if self._subscribers and name not in self._streams:
            self._streams[name] = asyncio.get_running_loop().create_task(self._follow(name))

    async def forget(self, name: str) -> None:
        """Stop managing ``name``: its stream, its client, what was last known of it."""
        task = self._streams.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        client = self.clients.pop(name, None)
        if client is not None:
            await client.close()
        for known in (self._last_known, self._last_groups, self._last_volumes):
            known.pop(name, None)

    def changed(self, name: str) -> None:
        """An array joined, left or came back: its listing and its volumes are to be read again."""
        self._publish(name, "array", {"object": name})
        self._publish(name, "volume", {"object": name})

    def _managed(self) -> ManagedArrays:
        if self.managed is None:
            raise MirrorError("this fleet has no managed-arrays store (the console's does)", code="notImplemented")
        return self.managed

    # -- the Storage arrays page and the Certificates view (core.client.fleet_arrays) ------------
    async def managed_arrays(self):
        return tuple(self._managed().states())

    async def passwords_stored_in(self) -> str:
        return self._managed().password_location

    async def inspect_array(self, address: str, port: int | None = None):
        return await self._managed().inspect(address, port)

    async def add_managed_array(self, name: str, address: str, password: str, port: int | None = None,
                                fingerprint: str | None = None, ca_file: str | None = None):
        return await self._managed().add(name, address, password, port, fingerprint, ca_file)

    async def remove_managed_array(self, name: str) -> None:
        await self._managed().remove(name)

    async def rename_managed_array(self, name: str, new_name: str) -> None:
        await self._managed().rename(name, new_name)

    async def test_connection(self, name: str) -> dict:
        return await self._managed().test(name)

    async def discover_arrays(self, targets: str, ports: str | int | None = None):
        return tuple(await self._managed().discover(targets, ports))

    async def read_certificate_file(self, path: str):
        return await self._managed().read_certificate_file(path)

    async def array_certificates(self):
        return tuple(await self._managed().certificates())

    async def _answers(self, path: str, **params) -> list[tuple[str, object]]:
        """``(array, answer)`` for every managed array that answers ``GET path``; the others are skipped."""
        out = []
        for name in sorted(self.clients):
            try:
                out.append((name, await self.client(name).get(path, **params)))
            except MirrorError as e:
                if not unreachable(e):
                    raise
        return out

    def lab_array_names(self) -> set[str]:
        """The embedded lab's arrays, running or not (none for a fleet of real arrays)."""
        return (self._lab_names | set(self.stopped)) if self.lab is not None else set()

    def client(self, array: str) -> ArrayClient:
        c = self.clients.get(array)
        if c is None and array in self.stopped:
            raise CommunicationError(f"array {array} is not running; {self.stopped[array]}", code="arrayUnreachable")
        if c is None:
            known = ", ".join(sorted(self.clients)) or "none"
            raise NotFound(f"no managed array named '{array}' (arrays: {known})", code="arrayNotFound")
        return c

    # -- events ---------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` (on this loop) for every change any array streams; returns an unsubscribe."""
        self._subscribers.append(callback)
        for name in self.clients:
            if name not in self._streams:
                self._streams[name] = asyncio.get_running_loop().create_task(self._follow(name))
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    async def _follow(self, name: str) -> None:
        """Read the array's event stream, reconnecting with a growing pause while it does not answer."""
        last_id, pause = None, 0.5
        while not self._stopping:  # a cancel lost in a race must not keep it running
            try:
                async for kind, event_id, data in follow_events(self.client(name), last_id,
                                                                on_open=lambda: self.changed(name)):
                    pause = 0.5
                    last_id = event_id or last_id
                    self._publish(name, kind, data)
            except asyncio.CancelledError:
                raise
            except (MirrorError, OSError, ValueError) as e:
                log.info("event stream of %s interrupted: %s", name, e)
                self._publish(name, "array", {"object": name})
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)

    def _publish(self, array: str, kind: str, data: dict) -> None:
        record = data.get("event")
        ev = EngineEvent(kind=kind, array=data.get("array") or array, object=data.get("object", ""),
                         event=models.event_from_ws(record) if record else None)
        for cb in list(self._subscribers):
            try:
                cb(ev)
            except Exception:  # a broken subscriber must not stop the stream
                log.exception("fleet event subscriber failed")

    # -- arrays and volumes ------------------------------------------------------------
    async def arrays_list(self) -> list[ArraySnapshot]:
        """Every managed array; one that does not answer is listed offline, as last seen."""
        out = []
        for name in sorted(set(self.clients) | set(self.stopped)):
            try:
                out.append(await self.array(name))
            except MirrorError as e:
                if not unreachable(e):
                    raise
                known = self._last_known.get(name)
                out.append(dataclasses.replace(known, online=False) if known is not None else ArraySnapshot(
                    name=name, wwn="", model="", firmware="", controllers=(), host_ports=(), pools=(),
                    data_dir="", channel_address="", online=False))
        return out

    async def array(self, name: str) -> ArraySnapshot:
        snap = models.array_from_ws(await self.client(name).get(API_ROOT.rstrip("/")))
        self._last_known[name] = snap
        return snap

    async def volumes(self, array: str | None = None) -> list[VolumeSnapshot]:
        if array:
            return [models.volume_from_ws(v) for v in await self.client(array).get("volumes")]
        out = []
        for name in sorted(self.clients):
            try:
                self._last_volumes[name] = [models.volume_from_ws(v) for v in await self.client(name).get("volumes")]
            except MirrorError as e:
                if not (self.stale_groups and unreachable(e)):
                    raise  # mirrorctl lists every array's volumes or says why it cannot
            out.extend(self._last_volumes.get(name, ()))
        return out

    async def volume(self, ref: str) -> VolumeSnapshot:
        a, v = split_ref(ref)
        return models.volume_from_ws(await self.client(a).get(f"volumes/{v}"))

    async def create_volume(self, ref: str, capacity, pool: str | None = None, drive_type: str | None = None,
                            security: str = "none", drive_security: bool = False, data_assurance: bool = False,
                            resource_partitioning: bool = False, raid_level: str = "6",
                            segment_size="128KiB", owner: str | None = None) -> VolumeSnapshot:
        a, v = split_ref(ref)
        body = {"name": v, "size": parse_size(capacity), "sizeUnit": "bytes", "security": security,
                "driveSecurity": drive_security, "dataAssuranceEnabled": data_assurance,
                "resourcePartitioning": resource_partitioning, "raidLevel": str(raid_level)}
        if pool:
            body["poolId"] = pool
        if drive_type:
            body["driveType"] = drive_type
        body["segSize"] = parse_size(segment_size, "segment size") // 1024
        if owner:
            body["owner"] = owner
        return models.volume_from_ws(await self.client(a).post("volumes", body))

    async def resize_volume(self, ref: str, capacity) -> VolumeSnapshot:
        a, v = split_ref(ref)  # expansionSize is the new capacity, not the growth
        return models.volume_from_ws(await self.client(a).post(f"volumes/{v}/expand",
                                                               {"expansionSize": parse_size(capacity),
                                                                "sizeUnit": "bytes"}))

    async def delete_volume(self, ref: str) -> None:
        a, v = split_ref(ref)
        await self.client(a).delete(f"volumes/{v}")

    async def host_write(self, ref: str, offset: int, data: bytes) -> int:
        a, v = split_ref(ref)
        await self.client(a).put_bytes(f"volumes/{v}/data", bytes(data), offset=int(offset))
        return len(data)

    async def host_read(self, ref: str, offset: int, length: int) -> bytes:
        a, v = split_ref(ref)
        return await self.client(a).get_bytes(f"volumes/{v}/data", offset=int(offset), length=int(length))

    async def host_trim(self, ref: str, offset: int, length: int) -> None:
        a, v = split_ref(ref)
        await self.client(a).request("DELETE", f"volumes/{v}/data", params={"offset": int(offset),
                                                                             "length": int(length)})

    async def set_volume_owner(self, ref: str, ctrl: str) -> None:
        a, v = split_ref(ref)
        await self.client(a).post(f"volumes/{v}/ownership", {"owningControllerId": ctrl})

    async def host_flush(self, ref: str) -> None:
        """Writes over REST are flushed before the daemon answers."""

    async def nbd_uris(self) -> dict[str, str]:
        return {f"{v.array}/{v.name}": v.nbd_uri for v in await self.volumes() if v.nbd_uri}

    async def candidates(self, primary_ref: str, remote: str, channel: str | None = None,
                         reserved_percent: float = 20):
        a, v = split_ref(primary_ref)
        params = {"primaryVolume": v, "remoteArray": remote, "reservedPercent": reserved_percent}
        if channel:
            params["channel"] = channel
        return [models.candidate_from_ws(c) for c in await self.client(a).get("candidates", **params)]

    # -- iSCSI global settings (each array's own) ---------------------------------------
    async def iscsi_settings(self, array: str) -> IscsiSettingsSnapshot:
        return models.iscsi_from_ws(await self.client(array).get("iscsi/mirroring-settings"))

    async def set_iscsi_settings(self, array: str, **changes) -> IscsiSettingsSnapshot:
        """Any of vlan, listen_port, jumbo_frames, ethernet_priority (None clears the VLAN or the priority)."""
        iscsi_settings.check(changes)  # the array checks again; a wrong name must not reach the mapping
        body = {models.ISCSI_TO_WS[k]: v for k, v in changes.items()}
        return models.iscsi_from_ws(await self.client(array).post("iscsi/mirroring-settings", body))

    # -- remote arrays (each array's own configuration) --------------------------------
    async def remote_arrays(self, array: str) -> list[dict]:
        return await self.client(array).get("remote-arrays")

    async def add_remote_array(self, name: str, addresses: list[str], password: str, wwn: str = "",
                               array: str | None = None) -> dict:
        return await self.client(array).post("remote-arrays", {"name": name, "addresses": list(addresses),
                                                               "password": password, "wwn": wwn})

    async def remove_remote_array(self, name: str, array: str | None = None) -> None:
        await self.client(array).delete(f"remote-arrays/{name}")

    # -- groups -----------------------------------------------------------------------
    async def _sides(self, name: str) -> list[GroupSnapshot]:
        found = []
        for array in sorted(self.clients):
            try:
                found.append(models.group_from_ws(await self.client(array).get(f"async-mirrors/{name}")))
            except NotFound:
                continue
            except MirrorError as e:  # an array that does not answer cannot hold the side asked for
                if not unreachable(e):
                    raise
        if not found:
            raise NotFound(f"no mirror consistency group named '{name}'; see 'mirrorctl group list'",
                           code="arvmGroupNotFound")
        return found

    async def group_home(self, name: str) -> str:
        """The array from which a group is managed: its primary side, else any side."""
        sides = await self._sides(name)
        primary = [g for g in sides if g.role == "primary"]
        return (primary or sides)[0].array

    async def groups(self, array: str | None = None) -> list[GroupSnapshot]:
        """The groups' sides on ``array``, or on every array that answers (an unreachable one has none to show)."""
        if array:
            return [models.group_from_ws(g) for g in await self.client(array).get("async-mirrors")]
        out = []
        for name in sorted(self.clients):
            try:
                self._last_groups[name] = [models.group_from_ws(g)
                                           for g in await self.client(name).get("async-mirrors")]
            except MirrorError as e:
                if not self.stale_groups and isinstance(e, CommunicationError):
                    continue  # mirrorctl: an unreachable array has no groups to show
                if not (self.stale_groups and unreachable(e)):
                    raise  # a certificate that changed is never passed over in silence
            out.extend(self._last_groups.get(name, ()))
        return out

    async def group(self, name: str, array: str | None = None) -> GroupSnapshot:
        if array:
            return models.group_from_ws(await self.client(array).get(f"async-mirrors/{name}"))
        sides = await self._sides(name)
        return ([g for g in sides if g.role == "primary"] or sides)[0]

    async def create_group(self, name: str, primary_array: str, secondary_array: str, **settings) -> GroupSnapshot:
        body = {"name": name, "secondaryArrayId": secondary_array, **settings_body(settings)}
        return models.group_from_ws(await self.client(primary_array).post("async-mirrors", body))

    async def update_group(self, name: str, **settings) -> GroupSnapshot:
        home = await self.group_home(name)
        return models.group_from_ws(await self.client(home).post(f"async-mirrors/{name}", settings_body(settings)))

    async def delete_group(self, name: str) -> None:
        await self.client(await self.group_home(name)).delete(f"async-mirrors/{name}")

    # -- pairs ------------------------------------------------------------------------
    async def add_pair(self, group: str, primary: str, secondary: str, reserved_percent: float = 20,
                       secondary_reserved_percent: float | None = None) -> PairSnapshot:
        pa, pv = split_ref(primary)
        sa, sv = split_ref(secondary)
        # The Web Services body names the secondary volume only: its array must be the group's remote.
        try:
            g = models.group_from_ws(await self.client(pa).get(f"async-mirrors/{group}"))
        except NotFound:
            raise NotFound(f"array {pa} has no mirror consistency group '{group}'; create it first or give the "
                           "group's primary array", code="arvmGroupNotFound") from None
        if g.remote_array != sa:
            raise InvalidInput(f"group {group} mirrors {pa} to {g.remote_array}, not {sa}; pick a secondary volume "
                               f"on {g.remote_array}", code="arvmInvalidRemoteArray")
        body = {"primaryVolumeRef": pv, "secondaryVolumeRef": sv, "percentCapacity": reserved_percent}
        if secondary_reserved_percent is not None:
            body["secondaryPercentCapacity"] = secondary_reserved_percent
        return models.pair_from_ws(await self.client(pa).post(f"async-mirrors/{group}/pairs", body))

    async def pairs(self, group: str | None = None, array: str | None = None) -> list[PairSnapshot]:
        return [p for g in await self.groups(array) if group is None or g.name == group for p in g.pairs]

    async def pair(self, ref: str) -> PairSnapshot:
        a, v = split_ref(ref)
        for g in await self.groups(a):
            for p in g.pairs:
                if p.local_volume == v:
                    return p
        raise NotFound(f"volume {ref} is not in a mirrored pair", code="arvmPairNotFound")

    async def remove_pair(self, ref: str) -> None:
        p = await self.pair(ref)
        await self.client(p.array).delete(f"async-mirrors/{p.group}/pairs/{p.local_volume}")

    async def increase_reserved_capacity(self, ref: str, percent: float) -> None:
        a, v = split_ref(ref)
        await self.client(a).post(f"async-mirrors/pairs/{v}/reserved-capacity", {"percent": percent})

    # -- synchronization ----------------------------------------------------------------
    async def sync_now(self, group: str, wait: bool = False, after_running: bool = False,
                       delete_recovery_point_if_necessary: bool = False):
        home = await self.group_home(group)
        path = f"async-mirrors/{group}/sync" + ("?wait=true" if wait else "")
        body = {"deleteRecoveryPointIfNecessary": True} if delete_recovery_point_if_necessary else {}
        stats = await self.client(home).request("POST", path, json=body, timeout=None if wait else 30)
        return models.stats_from_ws(stats) if wait and stats else None

    async def suspend(self, group: str) -> None:
        await self.client(await self.group_home(group)).post(f"async-mirrors/{group}/suspend", {})

    async def resume(self, group: str, delete_recovery_point_if_necessary: bool = False) -> None:
        option = "?deleteRecoveryPointIfNecessary=true" if delete_recovery_point_if_necessary else ""
        await self.client(await self.group_home(group)).post(f"async-mirrors/{group}/resume{option}", {})

    async def verify(self, group: str) -> dict:
        return await self.client(await self.group_home(group)).request(
            "POST", f"async-mirrors/{group}/verify", json={}, timeout=None)

    async def online_verify(self, group: str) -> dict:
        return await self.client(await self.group_home(group)).request(
            "POST", f"async-mirrors/{group}/verify?online=true", json={}, timeout=None)

    async def sync_history(self, group: str, limit: int = 500):
        home = await self.group_home(group)
        return [models.stats_from_ws(s) for s in await self.client(home).get(f"async-mirrors/{group}/sync-history",
                                                                             limit=limit)]

    async def long_running_operations(self) -> list[dict]:
        out = []
        for _, operations in await self._answers("long-running-operations"):
            out.extend(operations)
        return out

    async def test_communication(self, local: str, remote: str) -> dict:
        groups = [g for g in await self.groups(local) if g.remote_array == remote]
        if not groups:  # the Web Services test a group's link; without one, ask the array's remote list
            entries = {r["name"]: r for r in await self.client(local).get("remote-arrays")}
            if remote not in entries:
                raise NotFound(f"{local} has no remote array {remote}", code="arvmRemoteArrayUnknown")
            up = entries[remote]["reachable"]
            return {"local": local, "remote": remote, "connected": up, "latency_ms": None, "bandwidth_mib_s": None,
                    "message": f"{remote} {'reachable' if up else 'unreachable'}: {entries[remote].get('linkReason', '')}"}
        r = await self.client(local).post(f"async-mirrors/{groups[0].name}/test",
                                          {"requestedTestType": "linkBandwidthTest"})
        return {"local": local, "remote": remote, "connected": r["connected"], "latency_ms": r["latencyMilliseconds"],
                "bandwidth_mib_s": r["bandwidthMiBPerSecond"], "message": r["message"]}

    # -- events ------------------------------------------------------------------------------
    async def events(self, array: str | None = None, limit: int = 200) -> list[EventRecord]:
        """The newest ``limit`` events; an array serves at most its own maximum per call (its newest)."""
        out: list[EventRecord] = []
        per_array = min(int(limit), EVENT_LIMIT_MAX)
        answers = [(array, await self.client(array).get("events", limit=per_array))] if array else \
            await self._answers("events", limit=per_array)
        for _, records in answers:
            out.extend(models.event_from_ws(e) for e in records)
        out.sort(key=lambda e: (e.time, e.array, e.id))
        return out[-limit:]
