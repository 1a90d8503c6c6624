"""Web Services JSON <-> snapshots, both ways.

Every object the REST API returns carries two vocabularies side by side:

* the SANtricity Web Services v2 fields, with their names and enum values, so
  automation written against the real product keeps working (``groupRef``,
  ``groupState``, ``memberState``, capacities as decimal strings...);
* the project's own snapshot fields, the camelCase ``to_json()`` names, so a REST
  client rebuilds exactly the snapshot the engine produced (``*_from_ws``).

Where a name exists in both, the Web Services meaning wins and ``*_from_ws``
recovers our value from the field that carries it: a pair's ``localVolume`` is a
volume ref (ours comes back from ``localVolumeName``), ``capacity`` is a string,
``raidLevel`` is ``raid6``. Where the Web Services form cannot hold our value, a
plainly named carrier sits beside it: ``raidLevelNumber`` (WS shows RAID 10 as
``raid1``), ``scheduledSyncIntervalMinutes`` (WS shows a manual group's interval as 0).

Status mapping (our ten group statuses onto the three WS enums; no WS field
changes meaning, and our ``status`` travels beside them):

=========================  ==================  ====================  ==================
our group status           groupState          syncActivity          roleChangeProgress
=========================  ==================  ====================  ==================
initial_sync               initialSync         active (idle if not   none
                                               yet started)
synchronizing              optimal             active                none
optimal                    optimal             idle                  none
system_suspended           degraded, or        internallySuspended   none
                           rpFailed when a
                           full reserved
                           capacity cost a
                           recovery point
user_suspended             optimal*            userSuspended         none
paused                     optimal*            paused                none
orphan                     degraded            internallySuspended   none (orphanGroup)
role_change_pending        optimal*            active/idle           pending
role_change_in_progress    optimal*            active/idle           inProgress
role_conflict              degraded            internallySuspended   none; remoteRole =
                                                                     localRole = primary
=========================  ==================  ====================  ==================

\\* initialSync while a member has not finished its initial synchronization.

Pair statuses map onto ``memberState`` one to one, except synchronizing, which is
``initialSync`` until the pair has its first recovery point and ``optimal`` during an
interval sync (a member in an interval sync is healthy; the activity is the group's).

Ids: Web Services refs are 40 upper-case hex digits. Ours are derived from names
(SHA-256 of the kind, the array and the object's name), so they survive restarts
without a schema change and every array computes its peer's refs alike; a group's
``worldWideName`` is the same on both of its arrays, as on the real product.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from datetime import datetime
from enum import Enum

from core.guru import GuruAction, Problem
from core.snapshots import (ArraySnapshot, Candidate, EventRecord, GroupSnapshot, IscsiSettingsSnapshot, PairSnapshot,
                            PoolSnapshot, ReservedCapacitySnapshot, SyncProgress, SyncStats, VolumeSnapshot, _camel,
                            fields_json, from_json)

SYSTEM_ID = "1"  # the embedded Web Services call their own array "1"
_VOLUME, _POOL, _GROUP, _PAIR = "02", "04", "37", "3B"
_WS_RAID = {"0": "raid0", "1": "raid1", "5": "raid5", "6": "raid6", "10": "raid1"}


# -- ids ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1 << 16)  # a listing asks the same few refs per pair at every GET
def object_ref(prefix: str, *parts: str) -> str:
    """A stable Web Services ref: ``prefix`` + hex digest of the parts (40 characters)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest().upper()
    return prefix + digest[:40 - len(prefix)]


def volume_ref(array: str, volume: str) -> str:
    return object_ref(_VOLUME, "volume", array, volume)


def pool_ref(array: str, pool: str) -> str:
    return object_ref(_POOL, "pool", array, pool)


def group_ref(array: str, group: str) -> str:
    return object_ref(_GROUP, "group", array, group)


def group_wwn(group: str) -> str:
    """The same on both arrays: the group is one object with two sides."""
    return object_ref("", "group-wwn", group)[:32]


def pair_ref(array: str, local_volume: str) -> str:
    return object_ref(_PAIR, "pair", array, local_volume)


def controller_ref(label: str) -> str:
    return "0700000000000000000000" + ("01" if label == "A" else "02")


def _epoch(when: datetime | None) -> str | None:
    return None if when is None else str(int(when.timestamp()))


def _bytes(n: int) -> str:
    return str(int(n))  # Web Services send 64-bit counts as strings


# -- arrays and pools ---------------------------------------------------------------------
def array_to_ws(a: ArraySnapshot, system_id: str = SYSTEM_ID) -> dict:
    capacity = sum(p.capacity for p in a.pools)
    free = sum(p.free for p in a.pools)
    ws = {"id": system_id, "name": a.name, "wwn": a.wwn, "model": a.model,
          "status": "optimal" if a.online else "offline", "fwVersion": a.firmware, "passwordStatus": "valid",
          "remoteMirroringEnabled": True, "freePoolSpace": _bytes(free), "usedPoolSpace": _bytes(capacity - free),
          "driveTypes": sorted({p.drive_type for p in a.pools})}
    return {**a.to_json(), **ws}


def array_from_ws(ws: dict) -> ArraySnapshot:
    return from_json(ArraySnapshot, ws)


ISCSI_TO_WS = {"vlan": "vlanId", "listen_port": "tcpListenPort", "jumbo_frames": "jumboFrames",
               "ethernet_priority": "ethernetPriority"}


def iscsi_to_ws(s: IscsiSettingsSnapshot) -> dict:
    ws = {key: getattr(s, name) for name, key in ISCSI_TO_WS.items()}
    return {**ws, "maximumFramePayload": 9000 if s.jumbo_frames else 1500}


def iscsi_from_ws(ws: dict) -> IscsiSettingsSnapshot:
    return IscsiSettingsSnapshot(**{name: ws.get(key) for name, key in ISCSI_TO_WS.items()})


def pool_to_ws(p: PoolSnapshot, array: str) -> dict:
    ref = pool_ref(array, p.name)
    ws = {"id": ref, "volumeGroupRef": ref, "label": p.name, "name": p.name, "raidLevel": "raidDiskPool",
          "diskPool": True, "totalRaidedSpace": _bytes(p.capacity), "usedSpace": _bytes(p.capacity - p.free),
          "freeSpace": _bytes(p.free), "driveMediaType": "ssd" if p.drive_type == "nvme" else "hdd"}
    return {**p.to_json(), **ws}


def pool_from_ws(ws: dict) -> PoolSnapshot:
    return from_json(PoolSnapshot, ws)


# -- volumes ------------------------------------------------------------------------------------
def volume_to_ws(v: VolumeSnapshot) -> dict:
    ref = volume_ref(v.array, v.name)
    wwn = object_ref("", "volume-wwn", v.array, v.name)[:32]
    security = "none" if v.security == "none" else ("enabled" if v.drive_security else "capable")
    ws = {"id": ref, "volumeRef": ref, "name": v.name, "label": v.name, "wwn": wwn, "worldWideName": wwn,
          "capacity": _bytes(v.capacity), "totalSizeInBytes": _bytes(v.capacity),
          "volumeGroupRef": pool_ref(v.array, v.pool), "raidLevel": _WS_RAID.get(v.raid_level, "raidUnsupported"),
          "raidLevelNumber": v.raid_level, "segmentSize": v.segment_size, "blkSize": 512,
          "status": "failed" if v.failed else "optimal", "offline": v.failed,
          "currentManager": controller_ref(v.current_owner), "preferredManager": controller_ref(v.preferred_owner),
          "dataAssurance": v.data_assurance, "securityType": security, "volumeUse": "standardVolume",
          "asyncMirrorSource": v.role == "primary", "asyncMirrorTarget": v.role == "secondary",
          "thinProvisioned": False, "mapped": False}
    return {**v.to_json(), **ws}


def volume_from_ws(ws: dict) -> VolumeSnapshot:
    return from_json(VolumeSnapshot, {**ws, "capacity": int(ws["capacity"]), "raidLevel": ws["raidLevelNumber"]})


# -- mirror consistency groups ------------------------------------------------------------------
def _member_state(p: PairSnapshot) -> str:
    if p.status != "synchronizing":
        return p.status  # optimal, incomplete, failed, orphan, stopped: the same words
    initial = not p.recovery_point_available or (p.progress is not None and p.progress.kind == "initial")
    return "initialSync" if initial else "optimal"


def _lost_recovery_point(p: PairSnapshot) -> bool:
    return p.reason.startswith("reserved capacity full")


def group_state(g: GroupSnapshot) -> str:
    if g.status == "system_suspended":
        return "rpFailed" if any(_lost_recovery_point(p) for p in g.pairs) else "degraded"
    if g.status in ("orphan", "role_conflict", "sync_failing"):
        return "degraded"
    if g.status == "initial_sync" or any(_member_state(p) == "initialSync" for p in g.pairs):
        return "initialSync"
    return "optimal"


def sync_activity(g: GroupSnapshot) -> str:
    fixed = {"system_suspended": "internallySuspended", "orphan": "internallySuspended",
             "role_conflict": "internallySuspended", "user_suspended": "userSuspended", "paused": "paused",
             "optimal": "idle", "synchronizing": "active"}
    if g.status in fixed:
        return fixed[g.status]
    return "active" if g.progress is not None else "idle"  # initial sync, role change (its final sync)


def group_to_ws(g: GroupSnapshot, remote_wwn: str = "", volume_sizes: dict[str, int] | None = None) -> dict:
    """``volume_sizes`` (local volume name -> capacity) fills each pair's ``totalSizeInBytes``.

    Without it each pair's own ``volume_capacity`` does (when known).
    """
    return {**group_head_to_ws(g, remote_wwn),
            "pairs": [pair_to_ws(p, _size(p, volume_sizes)) for p in g.pairs]}


def _size(p: PairSnapshot, volume_sizes: dict[str, int] | None) -> int | None:
    if volume_sizes is not None and p.local_volume in volume_sizes:
        return volume_sizes[p.local_volume]
    return p.volume_capacity or None


def group_head_to_ws(g: GroupSnapshot, remote_wwn: str = "") -> dict:
    """A group's JSON without its ``pairs`` (a listing converts each pair on its own, see core.rest.listing)."""
    ref = group_ref(g.array, g.name)
    other = "secondary" if g.role == "primary" else "primary"
    ws = {"id": ref, "groupRef": ref, "label": g.name, "worldWideName": group_wwn(g.name),
          "groupState": group_state(g), "localRole": g.role,
          "remoteRole": g.role if g.status == "role_conflict" else other,
          "roleChangeProgress": {"role_change_pending": "pending",
                                 "role_change_in_progress": "inProgress"}.get(g.status, "none"),
          "syncActivity": sync_activity(g), "orphanGroup": g.status == "orphan",
          "syncIntervalMinutes": 0 if g.sync_mode == "manual" else g.sync_interval_minutes,
          "scheduledSyncIntervalMinutes": g.sync_interval_minutes,
          "syncCompletionTimeAlertThresholdMinutes": g.sync_alert_minutes,
          "recoveryPointAgeAlertThresholdMinutes": g.recovery_point_alert_minutes,
          "repositoryUtilizationWarnThreshold": g.reserved_alert_percent, "connectionType": g.channel,
          "remoteTargetName": g.remote_array, "remoteTargetWwn": remote_wwn, "remoteTargetId": g.remote_array}
    # Not g.to_json(): it would convert every pair once more only for the caller to replace them.
    return {**fields_json(g, "pairs"), **ws}


def group_from_ws(ws: dict) -> GroupSnapshot:
    pairs = tuple(pair_from_ws(p) for p in ws.get("pairs", ()))
    data = {**ws, "syncIntervalMinutes": ws["scheduledSyncIntervalMinutes"], "pairs": []}
    return dataclasses.replace(from_json(GroupSnapshot, data), pairs=pairs)


# -- mirrored pairs -------------------------------------------------------------------------------
def pair_to_ws(p: PairSnapshot, total_size: int | None = None) -> dict:
    ref = pair_ref(p.array, p.local_volume)
    ws = {"id": ref, "memberRef": ref, "mirrorGroup": group_ref(p.array, p.group),
          "localVolume": volume_ref(p.array, p.local_volume), "remoteVolume": volume_ref(p.remote_array, p.remote_volume),
          "localVolumeName": p.local_volume, "remoteVolumeName": p.remote_volume, "memberState": _member_state(p),
          "lastRecoveryPointTime": _epoch(p.last_recovery_point) if p.recovery_point_available else None,
          "repositoryFull": _lost_recovery_point(p) or (p.reserved_capacity.capacity > 0
                                                        and p.reserved_capacity.available == 0)}
    if total_size is not None:
        ws["totalSizeInBytes"] = _bytes(total_size)
    return {**p.to_json(), **ws}


def pair_from_ws(ws: dict) -> PairSnapshot:
    return from_json(PairSnapshot, {**ws, "localVolume": ws["localVolumeName"], "remoteVolume": ws["remoteVolumeName"]})


def utilization_to_ws(p: PairSnapshot) -> dict:
    """Reserved capacity ("repository") use of one pair side: PIT data, change log, room left."""
    rc = p.reserved_capacity
    ws = {"mirrorRef": pair_ref(p.array, p.local_volume), "pitDataBytes": _bytes(rc.pit_bytes),
          "deltaLogBytes": _bytes(rc.log_bytes), "bytesAvailable": _bytes(rc.available)}
    return {**rc.to_json(), **ws}


def utilization_from_ws(ws: dict) -> ReservedCapacitySnapshot:
    return from_json(ReservedCapacitySnapshot, ws)


# -- progress -----------------------------------------------------------------------------------
def _percent(prog: SyncProgress | None, idle_percent: int) -> int:
    return idle_percent if prog is None else min(100, math.floor(prog.percent))


def _minutes_left(prog: SyncProgress | None) -> int | None:
    if prog is None:
        return 0
    return None if prog.eta_seconds is None else math.ceil(prog.eta_seconds / 60)


def progress_to_ws(g: GroupSnapshot) -> dict:
    """Synchronization progress: percent done, minutes left, bytes of the running sync."""
    idle = 0 if g.status == "initial_sync" else 100
    members = [{"memberRef": pair_ref(p.array, p.local_volume), "localVolumeName": p.local_volume,
                "percentComplete": _percent(p.progress, 0 if _member_state(p) == "initialSync" else 100),
                "timeToCompletion": _minutes_left(p.progress),
                "syncBytes": _bytes(p.progress.bytes_total if p.progress else 0),
                "progress": p.progress.to_json() if p.progress else None} for p in g.pairs]
    return {"groupRef": group_ref(g.array, g.name), "label": g.name, "array": g.array,
            "groupPercentComplete": _percent(g.progress, idle), "groupTimeToCompletion": _minutes_left(g.progress),
            "groupSyncBytes": _bytes(g.progress.bytes_total if g.progress else 0), "memberProgress": members,
            "progress": g.progress.to_json() if g.progress else None}


def progress_from_ws(ws: dict) -> SyncProgress | None:
    return None if ws.get("progress") is None else from_json(SyncProgress, ws["progress"])


# -- events, candidates, sync statistics, Recovery Guru ------------------------------------------
def event_to_ws(e: EventRecord) -> dict:
    ws = {"sequenceNumber": str(e.id), "timeStamp": _epoch(e.time), "eventType": e.code, "description": e.message,
          "priority": "critical" if e.severity == "critical" else "informational", "componentLocation": e.object}
    return {**e.to_json(), **ws}


def event_from_ws(ws: dict) -> EventRecord:
    return from_json(EventRecord, ws)


def candidate_to_ws(c: Candidate) -> dict:
    return {"volumeRef": volume_ref(c.volume.array, c.volume.name), "label": c.volume.name,
            "volume": volume_to_ws(c.volume), "eligible": c.eligible, "reasons": list(c.reasons),
            "codes": list(c.codes), "warnings": list(c.warnings)}


def candidate_from_ws(ws: dict) -> Candidate:
    return Candidate(volume=volume_from_ws(ws["volume"]), eligible=ws["eligible"], reasons=tuple(ws["reasons"]),
                     codes=tuple(ws["codes"]), warnings=tuple(ws["warnings"]))


def stats_to_ws(s: SyncStats) -> dict:
    return s.to_json()


def stats_from_ws(ws: dict) -> SyncStats:
    return from_json(SyncStats, ws)


def problem_to_ws(p: Problem) -> dict:
    return jsonable(p)


def problem_from_ws(ws: dict) -> Problem:
    return Problem(id=ws["id"], severity=ws["severity"], title=ws["title"], objects=tuple(ws["objects"]),
                   cause=ws["cause"], steps=tuple(ws["steps"]),
                   actions=tuple(GuruAction(**a) for a in ws["actions"]))


def jsonable(value):
    """Any engine answer (snapshot, dataclass, dict, list) as camelCase JSON values."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_camel(f.name): jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value
