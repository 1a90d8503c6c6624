"""Host access over NBD: each array serves its volumes as exports named by volume.

Every NBD write goes through the volume's :class:`HostVolume` (change tracking,
copy-on-write for a running sync, the role's access rule checked per request), so
a role change takes effect for connected clients at once.
"""
from __future__ import annotations

from core.nbd.server import NbdServer


class _ArrayExports:
    """The NBD export provider of one array."""

    def __init__(self, engine, array: str):
        self.engine = engine
        self.array = array

    def lookup(self, name: str):
        return self.engine.export_backend(self.array, name)

    def names(self) -> list[str]:
        clones = [v for (a, v) in self.engine._drills() if a == self.array]
        return sorted([v for (a, v) in self.engine.hosts if a == self.array] + clones)


class NbdService:
    """Mixed into :class:`core.engine.Engine`: started when the engine serves hosts."""

    nbd_port: int | None = None  # None: no NBD (one-shot CLI); 0: a free port; N: N, N+1, ...

    async def start_nbd(self) -> None:
        self.nbd_servers: dict[str, NbdServer] = {}
        if self.nbd_port is None:
            return
        for i, name in enumerate(sorted(self.arrays)):
            server = NbdServer(_ArrayExports(self, name), host=getattr(self, "listen", "127.0.0.1"),
                               port=self.nbd_port + i if self.nbd_port else 0)
            await server.start()
            self.nbd_servers[name] = server

    async def stop_nbd(self) -> None:
        for server in getattr(self, "nbd_servers", {}).values():
            await server.stop()
        self.nbd_servers = {}

    def export_backend(self, array: str, volume: str):
        """What an NBD client opens: the volume's HostVolume (drill clones join later)."""
        if array in self.lab.faults.stopped_arrays:
            return None
        return self.hosts.get((array, volume)) or self.drill_clone(array, volume)

    def nbd_uri(self, array: str, volume: str) -> str | None:
        server = getattr(self, "nbd_servers", {}).get(array)
        return server.uri(volume) if server is not None else None

    async def nbd_uris(self) -> dict[str, str]:
        return {f"{a}/{v}": self.nbd_uri(a, v) for (a, v) in sorted(self.hosts) if self.nbd_uri(a, v)}


class DrillService:
    """Mixed into :class:`core.engine.Engine`: DR drill clones of a group's recovery point."""

    def _drills(self) -> dict:
        if not hasattr(self, "drills"):
            self.drills: dict[tuple[str, str], object] = {}  # (array, export name) -> DrillClone
        return self.drills

    async def drill_start(self, group: str) -> dict:
        """Expose, on the secondary array, a writable copy of the group's last recovery point."""
        result = await self._open_drill(group)
        self._record_drill(group, True)
        return result

    def _record_drill(self, group: str, running: bool) -> None:
        """Drills are kept in lab.json like the other lab state, so other processes see them."""
        from core.lab import LabState

        self.lab = LabState(self.home)
        drills = [d for d in self.lab.faults.drills if d != group] + ([group] if running else [])
        self.lab.faults.drills = drills
        self.lab.save()
        self._lab_mtime = self._lab_file_mtime()

    async def sync_drills(self) -> None:
        """Start the drills lab.json asks for and stop the others (another process may edit it)."""
        from core.errors import MirrorError

        running = {g for g in self.arrays_groups_with_drills()}
        for group in set(self.lab.faults.drills) - running:
            try:
                await self._open_drill(group)
            except MirrorError as e:
                log_array = next(iter(self.arrays.values()), None)
                if log_array is not None:
                    from core.domain import Severity

                    log_array.log(Severity.WARNING, group, e.code, f"DR drill of {group} not started: {e.message}")
                self._record_drill(group, False)
        for group in running - set(self.lab.faults.drills):
            await self._close_drill(group)

    def arrays_groups_with_drills(self) -> set[str]:
        out = set()
        for a in self.arrays.values():
            for g in a.groups():
                if any((a.name, f"{p.volume.name}-drill") in self._drills() for p in g.pairs):
                    out.add(g.name)
        return out

    async def _open_drill(self, group: str) -> dict:
        from core.errors import MirrorError
        from core.replication.drill import DrillClone

        secondary = [a for a in self.arrays.values() if (g := a.find_group(group)) is not None
                     and g.role == "secondary"]
        if not secondary:
            raise MirrorError(f"group {group} has no secondary side on this engine", code="arvmGroupNotFound")
        array = secondary[0]
        g = array.group(group)
        if g.last_recovery_point is None or not all(p.recovery_point_available for p in g.pairs):
            raise MirrorError(f"group {group} has no complete recovery point yet; wait for the initial "
                              "synchronization", code="arvmNoRecoveryPoint")
        drills = self._drills()
        if any(k[0] == array.name and k[1].startswith(tuple(p.volume.name + "-drill" for p in g.pairs))
               for k in drills):
            raise MirrorError(f"a DR drill of {group} is already running; stop it first", code="drillRunning")
        out = {}
        for p in g.pairs:
            name = f"{p.volume.name}-drill"
            clone = DrillClone(name, str(array.volume_path(p.volume)),
                               str(array.reserved_dir(p) / "drill.overlay"), self.region_size,
                               g.last_recovery_point.isoformat())
            drills[(array.name, name)] = clone
            out[f"{array.name}/{name}"] = self.nbd_uri(array.name, name)
        from core.domain import Severity

        array.log(Severity.INFO, group, "drillStarted",
                  f"DR drill of {group} started on {array.name} at recovery point {g.last_recovery_point:%H:%M:%S}")
        self.publish("group", array.name, group)
        return {"group": group, "array": array.name, "recoveryPoint": g.last_recovery_point.isoformat(),
                "exports": out}

    async def drill_stop(self, group: str) -> None:
        await self._close_drill(group)
        self._record_drill(group, False)

    async def _close_drill(self, group: str) -> None:
        from core.errors import MirrorError

        drills = self._drills()
        found = False
        for a in self.arrays.values():
            g = a.find_group(group)
            if g is None:
                continue
            for p in g.pairs:
                clone = drills.pop((a.name, f"{p.volume.name}-drill"), None)
                if clone is not None:
                    clone.close()
                    found = True
            if found:
                from core.domain import Severity

                a.log(Severity.INFO, group, "drillStopped", f"DR drill of {group} stopped; its writes discarded")
                self.publish("group", a.name, group)
        if not found:
            raise MirrorError(f"no DR drill of {group} is running", code="drillNotRunning")

    def drill_clone(self, array: str, name: str):
        return self._drills().get((array, name))

    def preserve_for_drills(self, array: str, volume: str, offsets) -> None:
        clone = self._drills().get((array, f"{volume}-drill"))
        if clone is not None:
            clone.preserve(offsets)
