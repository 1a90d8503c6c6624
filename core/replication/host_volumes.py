"""Every volume of this process's arrays, open for host I/O, by (array, volume).

Owns the :class:`HostVolume` objects: opens them when the data path starts or a
volume is created, attaches a mirrored volume's reserved capacity (change log, PIT
store, staging journal), and applies host access from roles, role changes and
failures. NBD, the sync runner, the receiver and the role coordinator all reach a
volume's data through here.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Iterator

from core.array import StorageArray
from core.datapath.extents import allocated_regions
from core.domain import Role
from core.errors import NotFound, ReservedCapacityFull
from core.replication.host_volume import HostVolume

Key = tuple[str, str]
PitFull = Callable[[HostVolume, ReservedCapacityFull], None]


class HostVolumes(Mapping[Key, HostVolume]):
    """The open volumes; read like a mapping, changed only through the methods below."""

    def __init__(self, region_size: int, on_pit_full: PitFull):
        self.region_size = region_size
        self._on_pit_full = on_pit_full
        self._open: dict[Key, HostVolume] = {}

    # -- the mapping --------------------------------------------------------------------
    def __getitem__(self, key: Key) -> HostVolume:
        return self._open[key]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._open)

    def __len__(self) -> int:
        return len(self._open)

    def volume(self, array: str, volume: str, missing_ok: bool = False) -> HostVolume | None:
        hv = self._open.get((array, volume))
        if hv is None and not missing_ok:
            raise NotFound(f"volume {array}/{volume} is not open on this engine", code="volumeNotFound")
        return hv

    def names(self, array: str) -> list[str]:
        return [v for (a, v) in self._open if a == array]

    # -- life cycle ---------------------------------------------------------------------
    def open_array(self, array: StorageArray) -> None:
        for row in array.volumes():
            self.open(array, row)
        self.refresh_access(array)

    def open(self, array: StorageArray, row) -> HostVolume:
        hv = HostVolume(array.name, row.name, str(array.volume_path(row)))
        hv.failed = row.failed
        pair = array.pair_of(row)
        if pair is not None:
            self._attach(array, pair, hv)
        hv.on_pit_full = self._on_pit_full
        self._open[(array.name, row.name)] = hv
        return hv

    def close(self, array: str, volume: str) -> None:
        hv = self._open.pop((array, volume), None)
        if hv is not None:
            hv.close()

    def close_all(self) -> None:
        for hv in self._open.values():
            hv.close()
        self._open.clear()

    def resized(self, array: str, row) -> None:
        hv = self._open.get((array, row.name))
        if hv is None:
            return
        hv.refresh_size()
        if hv.changelog is not None:
            hv.changelog.resize(row.capacity)
            hv.since_capture.resize(row.capacity)

    def follow_failure(self, array: StorageArray, row) -> None:
        """Host I/O follows the volume's failed state (``lab volume fail|repair``)."""
        hv = self._open.get((array.name, row.name))
        if hv is not None:
            hv.failed = row.failed

    # -- mirrored volumes ---------------------------------------------------------------
    def _attach(self, array: StorageArray, pair, hv: HostVolume) -> None:
        hv.reserved_capacity = pair.reserved_capacity
        hv.attach(str(array.reserved_dir(pair)), self.region_size, lambda: reserved_budget(hv))

    def attach_pair_volume(self, array: StorageArray, volume: str) -> None:
        """A pair side was created on ``array``: open its reserved capacity, apply host access."""
        pair = array.pair_of(array.volume(volume))
        hv = self.volume(array.name, volume)
        if hv.changelog is None:
            self._attach(array, pair, hv)
            if pair.group.role == Role.PRIMARY.value:
                # Initial synchronization: every region ever written, none of the holes.
                hv.changelog.mark_all(allocated_regions(hv.path, hv.size, self.region_size))
        self.refresh_access(array)

    def detach_pair_volume(self, array: str, volume: str) -> None:
        hv = self._open.get((array, volume))
        if hv is not None:
            hv.detach()

    def refresh_access(self, array: StorageArray) -> None:
        """Recompute which volumes hosts may write (roles, role changes, conflicts)."""
        for row in array.volumes():
            hv = self._open.get((array.name, row.name))
            if hv is None:
                continue
            pair = array.pair_of(row)
            refusal = None
            if pair is not None:
                g = pair.group
                if g.role == Role.SECONDARY.value:
                    refusal = (f"it is the secondary of mirror group {g.name}; hosts write to the primary "
                               f"({g.remote_array}), or promote the group")
                elif g.role_change:
                    refusal = f"mirror group {g.name} is changing roles"
                elif g.role_conflict:
                    refusal = f"mirror group {g.name} is in a role conflict; resolve it in the Recovery Guru"
            hv.refusal = refusal

    def writable(self, array: str, volume: str) -> bool | None:
        hv = self._open.get((array, volume))
        return None if hv is None else not hv.read_only


def reserved_budget(hv: HostVolume) -> int:
    """Bytes the PIT store or staging journal may use: reserved capacity minus the logs.

    Asked on every staged region, so it reads the capacity cached on the volume
    (``increase_reserved_capacity`` updates it), not the database.
    """
    logs = sum(log.bytes_used for log in (hv.changelog, hv.since_capture) if log is not None)
    return max(0, hv.reserved_capacity - logs)
