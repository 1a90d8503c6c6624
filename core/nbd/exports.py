"""Host access over NBD: each array serves its volumes as exports named by volume.

Every NBD write goes through the volume's :class:`HostVolume` (change tracking,
copy-on-write for a running sync, the role's access rule checked per request), so
a role change takes effect for connected clients at once. DR drill clones are
exported beside the volumes.
"""
from __future__ import annotations

from core.drills import Drills
from core.nbd.server import NbdServer
from core.replication.host_volumes import HostVolumes


class _ArrayExports:
    """The export provider of one array's NBD server."""

    def __init__(self, exports: "NbdExports", array: str):
        self._exports = exports
        self._array = array

    def lookup(self, name: str):
        return self._exports.backend(self._array, name)

    def names(self) -> list[str]:
        return self._exports.names(self._array)


class NbdExports:
    """One NBD server per array of this process (none when ``port`` is None: a one-shot command)."""

    def __init__(self, hosts: HostVolumes, drills: Drills, listen: str, port: int | None):
        self._hosts = hosts
        self._drills = drills
        self._listen = listen
        self._port = port
        self.servers: dict[str, NbdServer] = {}

    async def start(self, arrays: list[str]) -> None:
        if self._port is None:
            return
        for i, name in enumerate(sorted(arrays)):
            server = NbdServer(_ArrayExports(self, name), host=self._listen, port=self._port + i if self._port else 0)
            await server.start()
            self.servers[name] = server

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.stop()
        self.servers = {}

    def backend(self, array: str, volume: str):
        """What an NBD client opens: the volume's HostVolume, or a drill clone."""
        return self._hosts.get((array, volume)) or self._drills.clone(array, volume)

    def names(self, array: str) -> list[str]:
        return sorted(self._hosts.names(array) + self._drills.exports_of(array))

    def uri(self, array: str, volume: str) -> str | None:
        server = self.servers.get(array)
        return server.uri(volume) if server is not None else None

    def uris(self) -> dict[str, str]:
        return {f"{a}/{v}": uri for (a, v) in sorted(self._hosts) if (uri := self.uri(a, v))}
