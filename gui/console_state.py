"""The GUI's copy of what the engine shows: the latest snapshots, refreshed on events.

One owner per piece of state: panels never ask the engine for the tree's data
themselves, they listen to this object. It refetches only the list an event is about
(volumes for a "volume" event, the running drills for a "group" event); the groups come
from the bridge's live poll, a few times a second, so an event about a group needs no
fetch of its own unless the bridge does not poll. Each list has at most one fetch in
flight: an event that arrives meanwhile fetches it once more when the answer is in, so
a busy engine is never asked faster than it answers (64 pairs syncing raise a group
event every few milliseconds). Answers are applied once per pass of the event loop.
Volumes are read once a second too: their host write counters feed the charts, and
their owners change with every sync without an event; they are read at once when a
group's pairs or roles changed.
"""
from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, QTimer, Signal

from core.snapshots import ArraySnapshot, GroupSnapshot, VolumeSnapshot
from gui.bridge import EngineBridge

log = logging.getLogger(__name__)
VOLUMES_EVERY_MS = 1000
# What each list is fetched with.
FETCH = {"arrays": "arrays_list", "volumes": "volumes", "groups": "groups", "drills": "drills_running"}


class ConsoleState(QObject):
    """Latest arrays, volumes and group snapshots (one per array side)."""

    sig_arrays_changed = Signal(tuple)
    """tuple[ArraySnapshot]: the arrays of the lab, after any array/link change."""
    sig_volumes_changed = Signal(tuple)
    """tuple[VolumeSnapshot]: every volume of every array, when they changed."""
    sig_volumes_read = Signal(tuple, float)
    """(tuple[VolumeSnapshot], time.time() of the answer): every answer of ``volumes()``, changed or not
    (host write rates need each reading of the byte counters: no change is a rate of 0)."""
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
        # elsewhere (another console, the CLI) is known only by name from drills_running(): {}.
        self.drills: dict[str, dict] = {}
        self._pairs: dict[tuple[str, str], object] | None = None  # (array, local volume) -> pair, built on demand
        self._shape: frozenset = frozenset()  # which volumes are in which group side, and its role
        self._dirty: set[str] = set()
        self._in_flight: set[str] = set()
        # Events already arrive coalesced; this second, tiny delay merges "group" + "pair" + "volume"
        # raised by one operation into one refetch of each list.
        self._refetch = QTimer(self, singleShot=True, interval=30)
        self._refetch.timeout.connect(self._refetch_dirty)
        self._volumes_timer = QTimer(self, interval=VOLUMES_EVERY_MS)
        self._volumes_timer.timeout.connect(lambda: self._mark({"volumes"}))
        # Answers are applied once per pass of the event loop, the newest of each list: when the UI thread
        # was held up (a busy machine), the poll's and a fetch's groups arrived together and each one
        # refreshed every panel.
        self._answers: dict[str, tuple] = {}  # list -> (answer, time read)
        self._apply_answers = QTimer(self, singleShot=True, interval=0)
        self._apply_answers.timeout.connect(self._take_answers)
        bridge.sig_ready.connect(self.refresh_all)
        bridge.sig_ready.connect(self._volumes_timer.start)
        bridge.sig_engine_event.connect(self._on_event)
        bridge.sig_groups_polled.connect(lambda groups: self._answer("groups", groups))

    def refresh_all(self) -> None:
        self._dirty |= set(FETCH)
        self._refetch_dirty()

    def _on_event(self, ev) -> None:
        kind = ev.kind
        # The poll brings the groups within 1/poll_hz s: fetching them again for each event doubled the
        # groups the UI thread applied while syncs started and ended (a group event each, on both sides).
        groups = set() if self.bridge.polling else {"groups"}
        if kind in ("array", "link"):
            self._mark({"arrays", "drills"} | groups)
        elif kind == "volume":
            self._mark({"volumes"})
        elif kind == "pair":
            self._mark({"volumes", "drills"} | groups)
        elif kind == "group":
            self._mark({"drills"} | groups)  # volumes too when the groups' shape changed (see _set_groups)
        elif kind == "progress":
            self._mark(groups)

    def _mark(self, lists: set[str]) -> None:
        if not lists:
            return
        self._dirty |= lists
        if not self._refetch.isActive():
            self._refetch.start()

    def _refetch_dirty(self) -> None:
        for what in [w for w in FETCH if w in self._dirty and w not in self._in_flight]:
            self._dirty.discard(what)
            self._in_flight.add(what)
            self.bridge.call(FETCH[what], on_done=lambda value, w=what: self._fetched(w, value),
                             on_error=lambda err, w=what: self._fetched(w, None, err))

    def _fetched(self, what: str, value, err=None) -> None:
        self._in_flight.discard(what)
        if err is not None:
            if what != "drills":  # an engine without drills has none running
                log.warning("fetching %s failed: %s", what, err)
        else:
            self._answer(what, value)
        if what in self._dirty and not self._refetch.isActive():
            self._refetch.start()  # an event came while this was fetched: once more

    def _answer(self, what: str, value) -> None:
        self._answers[what] = (value, time.time())
        if not self._apply_answers.isActive():
            self._apply_answers.start()

    def _take_answers(self) -> None:
        answers, self._answers = self._answers, {}
        for what in FETCH:  # arrays first: the other lists are shown under them
            if what not in answers:
                continue
            value, when = answers[what]
            if what == "arrays":
                self._set_arrays(value)
            elif what == "volumes":
                self._set_volumes(value)
                self.sig_volumes_read.emit(self.volumes, when)
            elif what == "groups":
                self._set_groups(value)
            else:
                self._set_drills(value)

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
        volumes = tuple(volumes)
        if volumes == self.volumes:
            return
        self.volumes = volumes
        self.sig_volumes_changed.emit(self.volumes)

    def _set_groups(self, groups) -> None:
        groups = tuple(groups)
        if groups == self.groups:
            return  # a poll with nothing new costs the UI nothing
        self.groups = groups
        self._pairs = None
        shape = frozenset((g.array, g.name, g.role, p.local_volume) for g in groups for p in g.pairs)
        if shape != self._shape:  # a pair added or removed, roles changed: the volumes say so too
            self._shape = shape
            self._mark({"volumes"})
        self.sig_groups_changed.emit(groups)

    def _set_drills(self, running) -> None:
        names = {d["group"] for d in running or ()}
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
        if self._pairs is None:  # asked per row by the tables: one index per groups update, not a scan per row
            self._pairs = {}
            for g in self.groups:
                for p in g.pairs:
                    self._pairs.setdefault((g.array, p.local_volume), p)
        return self._pairs.get((array, volume))

    def offline_arrays(self) -> set[str]:
        """Arrays that do not answer: what the console shows of them is their last known state."""
        return {a.name for a in self.arrays if not a.online}

    def array_names(self) -> list[str]:
        return [a.name for a in self.arrays]
