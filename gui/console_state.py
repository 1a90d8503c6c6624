"""The GUI's copy of what the engine shows: the latest snapshots, refreshed on events.

One owner per piece of state: panels never ask the engine for the tree's data
themselves, they listen to this object. It refetches only the list an event is
about (volumes for a "volume" event, groups for "group"/"pair"/"progress") and
takes the live group snapshots the bridge polls for charts and progress bars.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from core.snapshots import ArraySnapshot, GroupSnapshot, VolumeSnapshot
from gui.bridge import EngineBridge


class ConsoleState(QObject):
    """Latest arrays, volumes and group snapshots (one per array side)."""

    sig_arrays_changed = Signal(tuple)
    """tuple[ArraySnapshot]: the arrays of the lab, after any array/link change."""
    sig_volumes_changed = Signal(tuple)
    """tuple[VolumeSnapshot]: every volume of every array."""
    sig_groups_changed = Signal(tuple)
    """tuple[GroupSnapshot]: every group side (with its pairs), on change and on every live poll."""

    def __init__(self, bridge: EngineBridge, parent: QObject | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.arrays: tuple[ArraySnapshot, ...] = ()
        self.volumes: tuple[VolumeSnapshot, ...] = ()
        self.groups: tuple[GroupSnapshot, ...] = ()
        self._dirty: set[str] = set()
        # Events already arrive coalesced; this second, tiny delay merges "group" + "pair" + "volume"
        # raised by one operation into one refetch of each list.
        self._refetch = QTimer(self, singleShot=True, interval=30)
        self._refetch.timeout.connect(self._refetch_dirty)
        bridge.sig_ready.connect(self.refresh_all)
        bridge.sig_engine_event.connect(self._on_event)
        bridge.sig_groups_polled.connect(self._set_groups)

    def refresh_all(self) -> None:
        self._dirty |= {"arrays", "volumes", "groups"}
        self._refetch_dirty()

    def _on_event(self, ev) -> None:
        kind = ev.kind
        if kind in ("array", "link"):
            self._dirty |= {"arrays", "groups"}
        elif kind == "volume":
            self._dirty.add("volumes")
        elif kind in ("group", "pair", "progress"):
            self._dirty |= {"groups", "volumes"} if kind != "progress" else {"groups"}
        else:
            return
        if not self._refetch.isActive():
            self._refetch.start()

    def _refetch_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        if "arrays" in dirty:
            self.bridge.call("arrays_list", on_done=self._set_arrays)
        if "volumes" in dirty:
            self.bridge.call("volumes", on_done=self._set_volumes)
        if "groups" in dirty:
            self.bridge.call("groups", on_done=self._set_groups)

    def apply(self, arrays=None, volumes=None, groups=None) -> None:
        """Take snapshots fetched elsewhere (a wizard's own answer, a test's fabricated lab)."""
        if arrays is not None:
            self._set_arrays(arrays)
        if volumes is not None:
            self._set_volumes(volumes)
        if groups is not None:
            self._set_groups(groups)

    def _set_arrays(self, arrays) -> None:
        self.arrays = tuple(arrays)
        self.sig_arrays_changed.emit(self.arrays)

    def _set_volumes(self, volumes) -> None:
        self.volumes = tuple(volumes)
        self.sig_volumes_changed.emit(self.volumes)

    def _set_groups(self, groups) -> None:
        groups = tuple(groups)
        if groups == self.groups:
            return  # a poll with nothing new costs the UI nothing
        self.groups = groups
        self.sig_groups_changed.emit(groups)

    # -- lookups for panels -------------------------------------------------------------
    def group(self, name: str, array: str | None = None) -> GroupSnapshot | None:
        sides = [g for g in self.groups if g.name == name and (array is None or g.array == array)]
        primary = [g for g in sides if g.role == "primary"]
        return (primary or sides or [None])[0]

    def pair(self, array: str, volume: str):
        for g in self.groups:
            if g.array == array:
                for p in g.pairs:
                    if p.local_volume == volume:
                        return p
        return None

    def array_names(self) -> list[str]:
        return [a.name for a in self.arrays]
