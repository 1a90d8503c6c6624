"""Immutable snapshots: the only shape in which engine state leaves the engine.

The CLI prints them, the console shows them, tests assert on them. They are frozen
dataclasses of plain values so they can cross the engine/GUI thread bridge safely.
``to_json`` gives the stable camelCase form documented in the README.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Callable


@functools.lru_cache(maxsize=None)  # field names only: a bounded set
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@functools.lru_cache(maxsize=None)  # one entry per dataclass
def _names(cls) -> tuple[tuple[str, str], ...]:
    """``(attribute, camelCase key)`` of each field of a dataclass, worked out once per class.

    ``to_json`` runs for every pair of every group a REST listing returns (512 pairs at
    issue 14's scale): ``dataclasses.fields`` and the name conversion per call were
    most of a ``GET async-mirrors``.
    """
    return tuple((f.name, _camel(f.name)) for f in dataclasses.fields(cls))


def _fields(value) -> dict:
    return {key: _plain(getattr(value, name)) for name, key in _names(type(value))}


def fields_json(value, leave_out: str) -> dict:
    """``value.to_json()`` without one field (a REST listing converts a group's pairs on their own)."""
    return {key: _plain(getattr(value, name)) for name, key in _names(type(value)) if name != leave_out}


_SCALARS = (str, int, float, bool, type(None))


def _plain(value):
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Snapshot):
        return value.to_json()
    if dataclasses.is_dataclass(value):
        return _fields(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


class Snapshot:
    def to_json(self) -> dict:
        return _fields(self)


@dataclass(frozen=True)
class ControllerSnapshot(Snapshot):
    label: str  # "A" or "B"
    status: str  # ControllerStatus value


@dataclass(frozen=True)
class HostPortSnapshot(Snapshot):
    label: str
    kind: str  # Channel value: fc / iscsi
    controller: str
    mirroring: bool  # FC: highest-numbered port of each controller is reserved for mirroring


@dataclass(frozen=True)
class PoolSnapshot(Snapshot):
    name: str
    drive_type: str
    capacity: int
    free: int


@dataclass(frozen=True)
class IscsiSettingsSnapshot(Snapshot):
    """The iSCSI global settings mirroring over iSCSI uses; both arrays of an iSCSI group must agree on them."""

    vlan: int | None  # None: no VLAN
    listen_port: int
    jumbo_frames: bool
    ethernet_priority: int | None  # 802.1p, 0-7; None: not set


@dataclass(frozen=True)
class ArraySnapshot(Snapshot):
    name: str
    wwn: str
    model: str
    firmware: str
    controllers: tuple[ControllerSnapshot, ...]
    host_ports: tuple[HostPortSnapshot, ...]
    pools: tuple[PoolSnapshot, ...]
    data_dir: str
    channel_address: str  # host:port of the mirroring channel while running, else ""
    online: bool
    iscsi: IscsiSettingsSnapshot | None = None  # None: an array that does not say (a release before them)

    @property
    def channel_types(self) -> frozenset[str]:
        return frozenset(p.kind for p in self.host_ports)

    @property
    def dual_controller(self) -> bool:
        return len(self.controllers) >= 2


@dataclass(frozen=True)
class ReservedCapacitySnapshot(Snapshot):
    array: str
    volume: str
    pool: str
    drive_type: str
    capacity: int
    pit_bytes: int
    log_bytes: int
    staging_bytes: int

    @property
    def used(self) -> int:
        return self.pit_bytes + self.log_bytes + self.staging_bytes

    @property
    def available(self) -> int:
        return max(0, self.capacity - self.used)

    @property
    def utilization_pct(self) -> float:
        return 100.0 * self.used / self.capacity if self.capacity else 0.0

    def to_json(self) -> dict:
        out = super().to_json()
        out.update(usedBytes=self.used, availableBytes=self.available,
                   utilizationPercent=round(self.utilization_pct, 2))
        return out


@dataclass(frozen=True)
class VolumeSnapshot(Snapshot):
    array: str
    name: str
    capacity: int
    pool: str
    drive_type: str
    raid_level: str
    segment_size: int
    security: str
    drive_security: bool
    data_assurance: bool
    resource_partitioning: bool
    preferred_owner: str
    current_owner: str
    path: str
    failed: bool
    mirror_group: str | None  # group name when the volume is in a mirrored pair
    role: str | None  # primary/secondary when mirrored
    host_writable: bool
    nbd_uri: str | None = None
    host_bytes_written: int = 0  # by hosts (NBD, the Python API, the lab workload) since the array started


@dataclass(frozen=True)
class SyncProgress(Snapshot):
    kind: str  # "initial" or "interval"
    bytes_done: int
    bytes_total: int
    rate: float  # bytes/s over the last few seconds
    eta_seconds: float | None
    started: datetime | None = None

    @property
    def percent(self) -> float:
        return 100.0 * self.bytes_done / self.bytes_total if self.bytes_total else 100.0


@dataclass(frozen=True)
class SyncStats(Snapshot):
    """One completed (or failed) synchronization of a group."""

    group: str
    kind: str
    started: datetime
    ended: datetime
    bytes_sent: int  # on the wire, after compression
    bytes_payload: int  # region data sent, before compression
    unique_changed_bytes: int
    bytes_resent: int
    duration_seconds: float
    recovery_point_time: datetime | None
    outcome: str  # "committed" / "failed: ..."
    # What the secondary's journal took: region data that is not zeros, before compression
    # (pieces of dirty blocks count as themselves). None in history recorded before it was counted.
    staged_bytes: int | None = None


@dataclass(frozen=True)
class PairSnapshot(Snapshot):
    array: str  # the side this snapshot describes
    group: str
    local_volume: str
    remote_array: str
    remote_volume: str
    role: str
    status: str  # PairStatus value
    recovery_point_available: bool
    last_recovery_point: datetime | None
    unsynchronized_bytes: int
    progress: SyncProgress | None
    reserved_capacity: ReservedCapacitySnapshot
    reason: str = ""  # why Failed / Incomplete / Orphan, in words
    volume_capacity: int = 0  # of the local volume, bytes (0 when not known, as in older answers)
    # Of unsynchronized_bytes, those in the blocks written: what the secondary stages at most
    # (None: an answer from before it was counted).
    unsynchronized_block_bytes: int | None = None

    @property
    def primary_ref(self) -> str:
        return f"{self.array}/{self.local_volume}" if self.role == "primary" else f"{self.remote_array}/{self.remote_volume}"

    @property
    def secondary_ref(self) -> str:
        return f"{self.remote_array}/{self.remote_volume}" if self.role == "primary" else f"{self.array}/{self.local_volume}"


@dataclass(frozen=True)
class GroupSnapshot(Snapshot):
    array: str  # the side this snapshot describes
    name: str
    remote_array: str
    role: str
    channel: str
    sync_mode: str
    sync_interval_minutes: int
    priority: str
    resync_policy: str
    sync_alert_minutes: int
    recovery_point_alert_minutes: int
    reserved_alert_percent: int
    status: str  # GroupStatus value
    pairs: tuple[PairSnapshot, ...]
    last_recovery_point: datetime | None
    next_sync: datetime | None
    progress: SyncProgress | None
    last_sync: SyncStats | None
    unsynchronized_bytes: int
    host_writable: bool

    @property
    def recovery_point_age_seconds(self) -> float | None:
        if self.last_recovery_point is None:
            return None
        return (datetime.now(self.last_recovery_point.tzinfo) - self.last_recovery_point).total_seconds()


@dataclass(frozen=True)
class Candidate(Snapshot):
    """A remote volume considered as the secondary of a primary volume."""

    volume: VolumeSnapshot
    eligible: bool
    reasons: tuple[str, ...]  # why not, each with what to change
    codes: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # rules the real product does not enforce: verify yourself


@dataclass(frozen=True)
class EventRecord(Snapshot):
    array: str
    id: int
    time: datetime
    severity: str
    object: str
    code: str
    message: str


@dataclass(frozen=True)
class EngineEvent:
    """What the engine publishes when something changed (not a refresh-all).

    ``kind`` is one of: "array", "volume", "group", "pair", "progress", "event",
    "guru", "link"; ``array``/``object`` name what changed; ``event`` carries the
    persisted log record when ``kind == "event"``.
    """

    kind: str
    array: str = ""
    object: str = ""
    event: EventRecord | None = None
    data: tuple = field(default_factory=tuple)


def from_json(cls, data: dict):
    """Rebuild a snapshot from its ``to_json`` form (what crosses the channel)."""
    return cls(**{name: decode(data[key]) for name, key, decode in _decoders(cls) if key in data})


@functools.lru_cache(maxsize=None)  # one entry per dataclass
def _decoders(cls) -> tuple[tuple[str, str, Callable[[Any], Any]], ...]:
    """``(attribute, camelCase key, decoder)`` of each field of a dataclass, worked out once per class.

    ``from_json`` runs for every pair and volume of every REST answer a client reads (the
    console's engine, five times a second at 64 pairs): ``typing.get_type_hints`` per
    call cost 120-230 us per object and was most of the console's engine thread (py-spy),
    which then held the GIL the GUI thread waited for.
    """
    import typing

    hints = typing.get_type_hints(cls)
    return tuple((f.name, _camel(f.name), _decoder(hints[f.name])) for f in dataclasses.fields(cls))


def _identity(value):
    return value


@functools.lru_cache(maxsize=None)  # one entry per field type
def _decoder(hint) -> Callable[[Any], Any]:
    """What turns the JSON form of a ``hint`` value back into it; None stays None at every level."""
    import types
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple:
        item = _decoder(args[0])
        return lambda value: None if value is None else tuple(item(v) for v in value)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _decoder(inner[0]) if inner else _identity
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return lambda value: None if value is None else from_json(hint, value)
    if hint is datetime:
        return lambda value: None if value is None else datetime.fromisoformat(value)
    return _identity


def _decode(hint, value):
    return _decoder(hint)(value)
