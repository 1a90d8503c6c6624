"""DR drills: a writable copy of a group's last recovery point, exposed to hosts on the secondary array.

A drill clone reads the secondary volume at its recovery point and keeps its own
writes in an overlay in reserved capacity; a sync committing meanwhile first
preserves, in the overlay, the regions it is about to change (see the receiver).
Which groups have a drill is recorded in each array's data directory
(``drills.json``), so a drill still runs after the array restarts.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Mapping

from core.array import StorageArray
from core.domain import Severity
from core.errors import MirrorError
from core.publisher import Publish
from core.replication.drill import DrillClone

NbdUri = Callable[[str, str], "str | None"]
DRILLS_FILE = "drills.json"
OLD_FAULTS_FILE = "lab.json"  # where drills were recorded before (with the one-process lab's faults)


def recorded_drills(array: StorageArray) -> list[str]:
    """The groups of ``array`` whose drill was running when it was last recorded."""
    for name in (DRILLS_FILE, OLD_FAULTS_FILE):
        try:
            data = json.loads((array.data_dir / name).read_text() or "{}")
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return []  # unreadable: no drill comes back by itself; start it again
        groups = data.get("drills") if name == DRILLS_FILE else data.get("faults", {}).get("drills")
        return [g for g in groups or [] if isinstance(g, str)]
    return []


def record_drills(array: StorageArray, groups: list[str]) -> None:
    path = array.data_dir / DRILLS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"drills": sorted(groups)}))
    os.replace(tmp, path)
    (array.data_dir / OLD_FAULTS_FILE).unlink(missing_ok=True)


class Drills:
    """The drill clones of this process's arrays, by (array, export name)."""

    def __init__(self, arrays: Mapping[str, StorageArray], publish: Publish, nbd_uri: NbdUri, region_size: int):
        self._arrays = arrays
        self._publish = publish
        self._nbd_uri = nbd_uri
        self._region_size = region_size
        self.clones: dict[tuple[str, str], DrillClone] = {}
        self._running: dict[str, dict] = {}  # group -> what start answered (array, recovery point, exports)

    async def start(self, group: str) -> dict:
        """Expose, on the secondary array, a writable copy of the group's last recovery point."""
        result = await self._open(group)
        self._record(result["array"])
        return result

    async def stop(self, group: str) -> None:
        for name in await self._close(group):
            self._record(name)

    def close_all(self) -> None:
        for clone in self.clones.values():
            clone.close()
        self.clones.clear()
        self._running.clear()

    def _record(self, array: str) -> None:
        a = self._arrays[array]
        record_drills(a, [g.name for g in a.groups() if any((array, f"{p.volume.name}-drill") in self.clones
                                                            for p in g.pairs)])

    async def resume_recorded(self) -> None:
        """Start again the drills that ran when each array stopped (its volumes and overlays are on disk)."""
        for a in self._arrays.values():
            for group in recorded_drills(a):
                try:
                    await self._open(group)
                except MirrorError as e:
                    a.log(Severity.WARNING, group, e.code, f"DR drill of {group} not started again: {e.message}")
            self._record(a.name)

    async def running(self) -> list[dict]:
        """The drills running now: ``{group, array, recoveryPoint, exports}`` each, by group."""
        return [self._running[g] for g in sorted(self._running)]

    def groups_with_drills(self) -> set[str]:
        return {g.name for a in self._arrays.values() for g in a.groups()
                if any((a.name, f"{p.volume.name}-drill") in self.clones for p in g.pairs)}

    def clone(self, array: str, name: str) -> DrillClone | None:
        return self.clones.get((array, name))

    def exports_of(self, array: str) -> list[str]:
        return [v for (a, v) in self.clones if a == array]

    def preserve(self, array: str, volume: str, offsets) -> None:
        """A commit is about to change these regions of ``volume``: keep their recovery point image."""
        clone = self.clones.get((array, f"{volume}-drill"))
        if clone is not None:
            clone.preserve(offsets)

    async def _open(self, group: str) -> dict:
        sides = [a for a in self._arrays.values() if a.find_group(group) is not None]
        secondary = [a for a in sides if a.group(group).role == "secondary"]
        if not secondary:
            if sides:  # the primary's array: the drill runs where the recovery point is
                remote = sides[0].group(group).remote_array
                raise MirrorError(f"group {group} is primary on {sides[0].name}; its DR drill runs on the secondary "
                                  f"array {remote}: start it there", code="drillOnSecondary")
            raise MirrorError(f"no mirror consistency group named '{group}' here", code="arvmGroupNotFound")
        array = secondary[0]
        g = array.group(group)
        if g.last_recovery_point is None or not all(p.recovery_point_available for p in g.pairs):
            raise MirrorError(f"group {group} has no complete recovery point yet; wait for the initial "
                              "synchronization", code="arvmNoRecoveryPoint")
        names = tuple(p.volume.name + "-drill" for p in g.pairs)
        if any(a == array.name and name.startswith(names) for a, name in self.clones):
            raise MirrorError(f"a DR drill of {group} is already running; stop it first", code="drillRunning")
        out = {}
        for p in g.pairs:
            name = f"{p.volume.name}-drill"
            self.clones[(array.name, name)] = DrillClone(
                name, str(array.volume_path(p.volume)), str(array.reserved_dir(p) / "drill.overlay"),
                self._region_size, g.last_recovery_point.isoformat())
            out[f"{array.name}/{name}"] = self._nbd_uri(array.name, name)
        array.log(Severity.INFO, group, "drillStarted",
                  f"DR drill of {group} started on {array.name} at recovery point {g.last_recovery_point:%H:%M:%S}")
        self._publish("group", array.name, group)
        self._running[group] = {"group": group, "array": array.name,
                                "recoveryPoint": g.last_recovery_point.isoformat(), "exports": out}
        return dict(self._running[group])

    async def _close(self, group: str) -> list[str]:
        """Close the group's drill clones; the arrays that had them."""
        found = False
        closed = []
        self._running.pop(group, None)
        for a in self._arrays.values():
            g = a.find_group(group)
            if g is None:
                continue
            for p in g.pairs:
                clone = self.clones.pop((a.name, f"{p.volume.name}-drill"), None)
                if clone is not None:
                    clone.close()
                    found = True
            if found:
                a.log(Severity.INFO, group, "drillStopped", f"DR drill of {group} stopped; its writes discarded")
                self._publish("group", a.name, group)
                closed.append(a.name)
        if not found:
            raise MirrorError(f"no DR drill of {group} is running", code="drillNotRunning")
        return closed
