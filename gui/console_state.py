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
    sig_drills_changed = Signal(dict)
    """dict[group name, drill]: the DR drills running now (see :meth:`drill`)."""

    def __init__(self, bridge: EngineBridge, parent: QObject | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.arrays: tuple[ArraySnapshot, ...] = ()
        self.volumes: tuple[VolumeSnapshot, ...] = ()
        self.groups: tuple[GroupSnapshot, ...] = ()
        # group -> drill_start()'s answer ({group, array, recoveryPoint, exports}); a drill started
        # elsewhere (another console, the CLI) is known only by name from lab_faults(): {}.
        self.drills: dict[str, dict] = {}
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
            self.bridge.call("lab_faults", on_done=self._set_faults, on_error=lambda _e: None)

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

    def _set_faults(self, faults: dict) -> None:
        names = set(faults.get("drills") or ())
        drills = {g: self.drills.get(g, {}) for g in sorted(names)}
        if drills != self.drills:
            self.drills = drills
            self.sig_drills_changed.emit(dict(drills))

    def drill_started(self, result: dict) -> None:
        """Record ``drill_start``'s answer (its exports are shown in the group's details)."""
        self.drills = {**self.drills, result["group"]: dict(result)}
        self.sig_drills_changed.emit(dict(self.drills))

    def drill_stopped(self, group: str) -> None:
        self.drills = {g: d for g, d in self.drills.items() if g != group}
        self.sig_drills_changed.emit(dict(self.drills))

    def drill(self, group: str) -> dict | None:
        """The running drill of ``group`` with its exports ({"ARRAY/VOL-drill": uri}), or None.

        For a drill this console did not start, the exports are derived from the secondary
        volumes' NBD URIs (the engine names a drill export ``<volume>-drill``).
        """
        if group not in self.drills:
            return None
        d = dict(self.drills[group])
        if not d.get("exports"):
            side = next((g for g in self.groups if g.name == group and g.role == "secondary"), None)
            exports = {}
            if side is not None:
                for p in side.pairs:
                    uri = self.nbd_uri(side.array, p.local_volume)
                    name = f"{p.local_volume}-drill"
                    exports[f"{side.array}/{name}"] = uri.rsplit("/", 1)[0] + "/" + name if uri else None
                d.setdefault("array", side.array)
            d["exports"] = exports
            d.setdefault("group", group)
        return d

    def nbd_uri(self, array: str, volume: str) -> str | None:
        v = next((x for x in self.volumes if x.array == array and x.name == volume), None)
        return v.nbd_uri if v is not None else None

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
