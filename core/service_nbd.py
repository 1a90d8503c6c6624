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
        return sorted(v for (a, v) in self.engine.hosts if a == self.array)


class NbdService:
    """Mixed into :class:`core.engine.Engine`: started when the engine serves hosts."""

    nbd_port: int | None = None  # None: no NBD (one-shot CLI); 0: a free port; N: N, N+1, ...

    async def start_nbd(self) -> None:
        self.nbd_servers: dict[str, NbdServer] = {}
        if self.nbd_port is None:
            return
        for i, name in enumerate(sorted(self.arrays)):
            server = NbdServer(_ArrayExports(self, name), port=self.nbd_port + i if self.nbd_port else 0)
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
        return self.hosts.get((array, volume))

    def nbd_uri(self, array: str, volume: str) -> str | None:
        server = getattr(self, "nbd_servers", {}).get(array)
        return server.uri(volume) if server is not None else None

    async def nbd_uris(self) -> dict[str, str]:
        return {f"{a}/{v}": self.nbd_uri(a, v) for (a, v) in sorted(self.hosts) if self.nbd_uri(a, v)}
