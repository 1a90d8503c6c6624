"""The mirroring channel as the engine uses it: one listener per array, one session per direction.

Every message between two arrays — configuration and region data alike — crosses a
real authenticated TCP session. Each remote array is watched by a :class:`LinkMonitor`:
the link is up while a session connects and answers pings, so a cut TCP path is
noticed within seconds and no flag is consulted.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from core.channel.bandwidth import LinkScheduler
from core.channel.connect import ChannelClient, ChannelServer
from core.channel.session import Session
from core.domain import Severity
from core.errors import CommunicationError
from core.replication.refusals import RefusalLog

if TYPE_CHECKING:
    from core.endpoint import ArrayEndpoint

log = logging.getLogger(__name__)


class _ArrayHandler:
    """Adapts one array's endpoint to the channel's handler protocol."""

    def __init__(self, hub: "ChannelHub", array: str):
        self.hub = hub
        self.array = array

    async def handle_call(self, peer: str, method: str, params: dict) -> dict:
        return await self.hub.endpoints[self.array].handle_call(peer, method, params)

    async def handle_region(self, peer, transfer, volume, offset, length, data) -> None:
        self.hub.regions(self.array, transfer, volume, [(offset, length, data)])

    async def handle_regions(self, peer, transfer, volume, regions) -> None:
        self.hub.regions(self.array, transfer, volume, regions)


class Dialer(Protocol):
    """Where a remote array answers and with which password."""

    def addresses(self, local: str, remote: str) -> list[tuple[str, int]]: ...

    def password(self, local: str, remote: str) -> str: ...


Regions = Callable[[str, str, str, list], None]  # (array, transfer, volume, regions): region data received


class ChannelHub:
    """Listeners, sessions and link schedulers for all arrays of one engine.

    Calls go to each array's endpoint (its handler table), region data to ``regions``
    (the receiver). ``host``/``port`` are where the listener binds (an array daemon's
    ``--listen`` and ``--channel-port``); ``server_ssl`` and ``client_ssl`` turn on TLS
    between daemons.
    """

    def __init__(self, endpoints: Mapping[str, "ArrayEndpoint"], regions: Regions, dialer: Dialer,
                 host: str = "127.0.0.1", port: int = 0,
                 server_ssl: ssl.SSLContext | None = None, client_ssl: ssl.SSLContext | None = None):
        self.endpoints = endpoints
        self.regions = regions
        self.dialer = dialer
        self.host = host
        self.port = port
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.servers: dict[str, ChannelServer] = {}
        self.sessions: dict[tuple[str, str], Session] = {}
        self.schedulers: dict[tuple[str, str], LinkScheduler] = {}
        self.rate: float | None = None  # bytes/s of every sender; None: unpaced
        self._connecting: dict[tuple[str, str], asyncio.Lock] = {}
        self.monitor = LinkMonitor(self)
        self.refusals: dict[str, RefusalLog] = {}

    async def start_array(self, array) -> None:
        row = array.row
        refusals = self.refusals[array.name] = RefusalLog()

        def refused(address: str, code: str, message: str) -> None:
            count = refusals.record(address, code)
            if count:
                array.log(Severity.WARNING, array.name, "arvmChannelLoginRefused",
                          f"The mirroring channel refused {address}"
                          + (f" ({count} times since the last report)" if count > 1 else "") + f": {message}")
        server = ChannelServer(array.name, row.password_salt, row.password_hash, _ArrayHandler(self, array.name),
                               host=self.host, port=self.port, ssl=self.server_ssl, on_refused=refused)
        await server.start()
        self.servers[array.name] = server
        array.channel_address = f"{advertised_host(self.host)}:{server.port}"

    async def stop(self) -> None:
        await self.monitor.stop()
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
            self.schedulers[key] = LinkScheduler(self.rate)  # priorities share the link
        return self.schedulers[key]

    def set_rate(self, rate: float | None) -> None:
        """Pace this engine's senders at ``rate`` bytes/s (None: the network's pace); open sessions too."""
        self.rate = rate
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
            addresses = self.dialer.addresses(local, remote)
            password = self.dialer.password(local, remote)
            s = await ChannelClient.connect(addresses, local, remote, password, timeout=5.0,
                                            ssl=self.client_ssl, scheduler=self.scheduler(local, remote))
            self.sessions[key] = s
            return s

    async def call(self, local: str, remote: str, method: str, params: dict, timeout: float = 60.0) -> dict:
        session = await self.session(local, remote)
        try:
            return await session.call(method, params, timeout=timeout)
        except CommunicationError:
            self.sessions.pop((local, remote), None)
            raise


def advertised_host(host: str) -> str:
    """The address peers dial: the bound one, or this machine's name when bound to every address."""
    return socket.gethostname() if host in ("", "0.0.0.0", "::") else host


@dataclass
class LinkState:
    up: bool = False
    checked: bool = False  # False until the first probe answered or failed
    since: float = 0.0  # monotonic time of the last change
    reason: str = "not checked yet"
    rtt: float | None = None


class LinkMonitor:
    """Whether each remote array in another process answers over the mirroring channel.

    Every ``interval`` seconds it connects (or pings the open session). A session that
    closes (a cut TCP path, a stopped daemon) marks the link down at once; a ping that
    goes unanswered for ``timeout`` seconds marks it down too (a path that silently
    drops packets). ``on_change(local, remote, up)`` runs on every transition, which is
    what starts reconciliation when a link comes back.
    """

    interval = 1.0
    timeout = 6.0
    startup_grace = 10.0

    def __init__(self, hub: ChannelHub):
        self.hub = hub
        self.links: dict[tuple[str, str], LinkState] = {}
        self.started = time.monotonic()
        self.on_change = None
        self._task: asyncio.Task | None = None
        self._probes: dict[tuple[str, str], asyncio.Task] = {}

    def watch(self, local: str, remote: str) -> LinkState:
        key = (local, remote)
        if key not in self.links:
            self.links[key] = LinkState(since=time.monotonic())
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._run(), name="link monitor")
        return self.links[key]

    def remotes_of(self, local: str) -> list[str]:
        return [r for (l, r) in self.links if l == local]

    def up(self, local: str, remote: str) -> bool:
        return self.watch(local, remote).up

    async def probe_now(self, local: str, remote: str) -> bool:
        """Probe at once (a command is about to need the remote): the answer, not the last tick's."""
        self.watch(local, remote)
        await self._probe(local, remote)
        return self.links[(local, remote)].up

    def checked(self, local: str, remote: str) -> bool:
        return self.watch(local, remote).checked

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._probes.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._probes.clear()

    async def _run(self) -> None:
        while True:
            for key in list(self.links):
                probe = self._probes.get(key)
                if probe is None or probe.done():
                    self._probes[key] = asyncio.get_running_loop().create_task(self._probe(*key))
            await asyncio.sleep(self.interval)

    async def _probe(self, local: str, remote: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                session = await self.hub.session(local, remote)
                rtt = await session.ping(timeout=self.timeout)
        except asyncio.CancelledError:
            raise
        except (CommunicationError, TimeoutError, OSError) as e:
            self.hub.sessions.pop((local, remote), None)
            self._set(local, remote, False, getattr(e, "message", None) or str(e) or "no answer")
            return
        except Exception as e:  # a refusal (wrong password, unknown remote): down, with the reason
            self._set(local, remote, False, getattr(e, "message", None) or str(e))
            return
        self._set(local, remote, True, "answering", rtt)

    def _set(self, local: str, remote: str, up: bool, reason: str, rtt: float | None = None) -> None:
        state = self.links[(local, remote)]
        state.reason, state.rtt = reason, rtt
        # Known once it answered, or once it stayed silent past the start-up grace: a
        # restarting lab (or site) brings its peers up within seconds, which is no "lost".
        state.checked = state.checked or up or time.monotonic() - self.started >= self.startup_grace
        if state.up == up:
            return
        state.up, state.since = up, time.monotonic()
        log.info("link %s -> %s is %s (%s)", local, remote, "up" if up else "down", reason)
        if self.on_change is not None:
            self.on_change(local, remote, up)
