"""Whether an array can talk to a remote array now, and talking to it: the ``Peer`` of the collaborators.

A remote array is up while its channel session answers (the
:class:`~core.replication.channels.LinkMonitor` probes it); every message crosses
the mirroring channel, to the addresses of the array's remote-array entry.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from core.array import StorageArray
from core import remote_arrays
from core.channel.session import Session
from core.errors import MirrorError
from core.replication.channels import ChannelHub


class Peer(Protocol):
    """Talk to a remote array over the mirroring channel."""

    def reachable(self, local: str, remote: str) -> bool: ...

    async def can_reach(self, local: str, remote: str) -> bool: ...

    def known(self, local: str, remote: str) -> bool: ...

    async def call(self, local: str, remote: str, method: str, params: dict, timeout: float = 60.0) -> dict: ...

    async def session(self, local: str, remote: str) -> Session: ...


class Links:
    """The links of this process's arrays to their remote arrays (implements :class:`Peer`)."""

    def __init__(self, arrays: Mapping[str, StorageArray]):
        self._arrays = arrays
        self.channels: ChannelHub | None = None  # set when the data path starts

    def reachable(self, local: str, remote: str) -> bool:
        """Whether ``local`` could talk to ``remote`` over the mirroring channel at the last probe."""
        return self.channels is not None and self.channels.monitor.up(local, remote)

    async def can_reach(self, local: str, remote: str) -> bool:
        """Whether a command can talk to ``remote`` now: probed at once."""
        return await self.channels.monitor.probe_now(local, remote)

    def known(self, local: str, remote: str) -> bool:
        """False only before the first probe of ``remote`` (just after a start)."""
        return self.channels.monitor.checked(local, remote)

    async def call(self, local: str, remote: str, method: str, params: dict, timeout: float = 60.0) -> dict:
        """Send ``method`` from array ``local`` to array ``remote`` over the mirroring channel.

        The remote is simply dialled: the attempt, not the link monitor's last probe,
        says whether it answers (just after a start, the monitor has not probed yet).
        """
        return await self.channels.call(local, remote, method, params, timeout=timeout)

    async def session(self, local: str, remote: str) -> Session:
        return await self.channels.session(local, remote)

    # -- what the channel dials ------------------------------------------------------------
    def addresses(self, local: str, remote: str) -> list[tuple[str, int]]:
        return remote_arrays.addresses_of(self._arrays[local], remote)

    def password(self, local: str, remote: str) -> str:
        return remote_arrays.password_of(self._arrays[local], remote) or ""

    def watched(self, local: str) -> list[str]:
        """The remote arrays in other processes whose link to ``local`` is watched."""
        return self.channels.monitor.remotes_of(local)

    def watch_remotes(self) -> None:
        """Watch the link to every remote array this process's arrays mirror with."""
        for array in self._arrays.values():
            remotes = {e["name"] for e in remote_arrays.remote_entries(array)} | {g.remote_array for g in array.groups()}
            for remote in sorted(remotes - {array.name}):
                self.channels.monitor.watch(array.name, remote)

    # -- the remote-array entries of each local array -------------------------------------------
    def remote_arrays(self, a: StorageArray) -> list[dict]:
        """The remote arrays ``a`` mirrors with, and whether each answers now."""
        out = []
        for entry in remote_arrays.remote_entries(a):
            link = self.channels.monitor.links.get((a.name, entry["name"]))
            out.append({**entry, "reachable": self.reachable(a.name, entry["name"]),
                        "linkReason": link.reason if link is not None else ""})
        return out

    async def add_remote_array(self, a: StorageArray, name: str, addresses: list[str], password: str,
                               wwn: str = "") -> dict:
        entry = remote_arrays.set_remote(a, name, addresses, password, wwn)
        await self._drop_session(a.name, name)  # the next call dials the new addresses
        self.channels.monitor.watch(a.name, name)
        return entry

    async def remove_remote_array(self, a: StorageArray, name: str) -> None:
        remote_arrays.remove_remote(a, name)
        self.channels.monitor.links.pop((a.name, name), None)
        await self._drop_session(a.name, name)

    async def _drop_session(self, local: str, remote: str) -> None:
        session = self.channels.sessions.pop((local, remote), None)
        if session is not None:
            await session.close()

    async def test(self, local: str, remote: str) -> dict:
        """Test communication: connectivity, round-trip latency and bandwidth of the mirroring channel."""
        result = {"local": local, "remote": remote, "connected": False, "latency_ms": None,
                  "bandwidth_mib_s": None, "message": ""}
        try:
            if not await self.can_reach(local, remote):
                raise MirrorError(f"the link between {local} and {remote} is down")
            session = await self.session(local, remote)
            pings = [await session.ping() for _ in range(5)]
            result["connected"] = True
            result["latency_ms"] = round(1000 * sorted(pings)[len(pings) // 2], 3)
            result["bandwidth_mib_s"] = round(await session.measure_bandwidth(8 << 20) / (1 << 20), 1)
            result["message"] = f"{remote} reachable over the mirroring channel"
        except MirrorError as e:
            result["message"] = e.message
        return result
