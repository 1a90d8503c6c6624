"""DR drills: a writable copy of a group's last recovery point, exposed to hosts on the secondary array.

A drill clone reads the secondary volume at its recovery point and keeps its own
writes in an overlay in reserved capacity; a sync committing meanwhile first
preserves, in the overlay, the regions it is about to change (see the receiver).
Which groups have a drill is recorded in the lab's fault file so that other
processes of the in-process lab see it.
"""
from __future__ import annotations

from typing import Callable, Mapping

from core.array import StorageArray
from core.domain import Severity
from core.errors import MirrorError
from core.lab_faults import LabFaultFile
from core.publisher import Publish
from core.replication.drill import DrillClone

NbdUri = Callable[[str, str], "str | None"]


class Drills:
    """The drill clones of this process's arrays, by (array, export name)."""

    def __init__(self, arrays: Mapping[str, StorageArray], lab: LabFaultFile, publish: Publish,
                 nbd_uri: NbdUri, region_size: int):
        self._arrays = arrays
        self._lab = lab
        self._publish = publish
        self._nbd_uri = nbd_uri
        self._region_size = region_size
        self.clones: dict[tuple[str, str], DrillClone] = {}

    async def start(self, group: str) -> dict:
        """Expose, on the secondary array, a writable copy of the group's last recovery point."""
        result = await self._open(group)
        self._lab.record_drill(group, True)
        return result

    async def stop(self, group: str) -> None:
        await self._close(group)
        self._lab.record_drill(group, False)

    def close_all(self) -> None:
        for clone in self.clones.values():
            clone.close()
        self.clones.clear()

    async def follow_lab(self) -> None:
        """Start the drills the lab's record asks for and stop the others (another process may edit it)."""
        running = self.groups_with_drills()
        for group in set(self._lab.faults.drills) - running:
            try:
                await self._open(group)
            except MirrorError as e:
                log_array = next(iter(self._arrays.values()), None)
                if log_array is not None:
                    log_array.log(Severity.WARNING, group, e.code, f"DR drill of {group} not started: {e.message}")
                self._lab.record_drill(group, False)
        for group in running - set(self._lab.faults.drills):
            await self._close(group)

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
        return {"group": group, "array": array.name, "recoveryPoint": g.last_recovery_point.isoformat(),
                "exports": out}

    async def _close(self, group: str) -> None:
        found = False
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
        if not found:
            raise MirrorError(f"no DR drill of {group} is running", code="drillNotRunning")
