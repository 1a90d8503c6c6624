"""The mirroring channel as the engine uses it: one listener per array, one session per direction.

Every message between two arrays — configuration and region data alike — crosses a
real authenticated TCP session, even when both arrays run in this process (the
lab talks over loopback). The lab's link faults act here: a cut link closes every
session and refuses new ones until restored.
"""
from __future__ import annotations

import asyncio
import logging

from core.channel.bandwidth import LinkScheduler
from core.channel.connect import ChannelClient, ChannelServer
from core.channel.session import Session
from core.errors import CommunicationError

log = logging.getLogger(__name__)


class _ArrayHandler:
    """Adapts one array's endpoint to the channel's handler protocol."""

    def __init__(self, hub: "ChannelHub", array: str):
        self.hub = hub
        self.array = array

    async def handle_call(self, peer: str, method: str, params: dict) -> dict:
        return await self.hub.engine.endpoints[self.array].handle_call(peer, method, params)

    async def handle_region(self, peer, transfer, volume, offset, length, data) -> None:
        self.hub.engine.receiver.regions(self.array, transfer, volume, [(offset, length, data)])

    async def handle_regions(self, peer, transfer, volume, regions) -> None:
        self.hub.engine.receiver.regions(self.array, transfer, volume, regions)


class ChannelHub:
    """Listeners, sessions and link schedulers for all arrays of one engine."""

    def __init__(self, engine):
        self.engine = engine
        self.servers: dict[str, ChannelServer] = {}
        self.sessions: dict[tuple[str, str], Session] = {}
        self.schedulers: dict[tuple[str, str], LinkScheduler] = {}
        self._connecting: dict[tuple[str, str], asyncio.Lock] = {}

    async def start_array(self, array) -> None:
        row = array.row
        server = ChannelServer(array.name, row.password_salt, row.password_hash, _ArrayHandler(self, array.name))
        await server.start()
        self.servers[array.name] = server
        array.channel_address = f"127.0.0.1:{server.port}"

    async def stop(self) -> None:
        await self.close_sessions()
        for server in self.servers.values():
            await server.stop()
        self.servers.clear()

    async def close_sessions(self) -> None:
        """Drop every session (a cut link): pending calls fail with CommunicationError."""
        sessions = list(self.sessions.values())
        for server in self.servers.values():
            sessions.extend(server.sessions)
        self.sessions.clear()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

    def scheduler(self, local: str, remote: str) -> LinkScheduler:
        key = (local, remote)
        if key not in self.schedulers:
            self.schedulers[key] = LinkScheduler(self.engine.lab.faults.link_bandwidth)
        return self.schedulers[key]

    def set_rate(self, rate: float | None) -> None:
        """Open sessions keep their scheduler object, so the limit changes in place."""
        for scheduler in self.schedulers.values():
            scheduler.rate = rate

    async def session(self, local: str, remote: str) -> Session:
        """The open session from ``local`` to ``remote``, connecting if needed."""
        key = (local, remote)
        s = self.sessions.get(key)
        if s is not None and not s.closed:
            return s
        lock = self._connecting.setdefault(key, asyncio.Lock())
        async with lock:
            s = self.sessions.get(key)
            if s is not None and not s.closed:
                return s
            addresses = self.engine.remote_addresses(local, remote)
            password = self.engine.remote_password(local, remote)
            s = await ChannelClient.connect(addresses, local, remote, password, timeout=5.0,
                                            scheduler=self.scheduler(local, remote))
            self.sessions[key] = s
            return s

    async def call(self, local: str, remote: str, method: str, params: dict, timeout: float = 60.0) -> dict:
        session = await self.session(local, remote)
        try:
            return await session.call(method, params, timeout=timeout)
        except CommunicationError:
            self.sessions.pop((local, remote), None)
            raise
