"""The console's managed arrays inside the fleet: the saved ones next to the lab's, added and removed at run time.

:class:`ManagedArrays` is the fleet's collaborator for the Storage arrays page: it
reads the store (core.client.managed), gives the fleet a client per saved array, and
answers what the page shows — each array reachable or not, why, when it last answered,
how it is trusted, and whether it presented another certificate than the accepted one.
It runs on the fleet's loop (the console's engine thread); store calls are small
SQLite reads and writes that never happen on the UI thread.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable, Protocol

from core.client.certificates import CertificateInfo, fetch_certificate, load_certificate_file
from core.client.contact import FirstContact, add_array, client_for, host_port, inspect_array, parse_array_url
from core.client.discovery import DiscoveredArray, discover, parse_ports, parse_targets
from core.client.managed import ManagedArray, ManagedArrayStore
from core.client.rest import ArrayClient
from core.errors import MirrorError, NotFound


@dataclass(frozen=True)
class ManagedArrayState:
    """One managed array as the Storage arrays page shows it (plain data, crosses the bridge)."""

    name: str  # the display name (a saved array) or the lab array's name
    array_name: str  # the array's own name: its key in the fleet, in the tree and in volume refs
    url: str
    source: str  # "saved" or "lab"
    reachable: bool | None  # None: not answered yet since the console started
    reason: str  # why it is unreachable, or why it is not managed ("" when fine)
    last_answered: float | None  # time.time() of its last answer
    trust: str  # "pinned SHA-256 ...", "CA file ...", or "lab"
    certificate_sha256: str | None  # the accepted (pinned) fingerprint
    presented_sha256: str | None  # set when the array presented another certificate: refused
    managed: bool = True  # False: saved but not in the fleet (another managed array has its name)


@dataclass(frozen=True)
class ArrayCertificate:
    """An array's certificate as presented now, next to what was accepted (the Certificates view)."""

    name: str
    array_name: str
    url: str
    certificate: CertificateInfo | None
    accepted_sha256: str | None
    error: str  # why the certificate could not be read ("" when it was)

    @property
    def changed(self) -> bool:
        return bool(self.certificate and self.accepted_sha256 and self.certificate.sha256 != self.accepted_sha256)


class FleetHooks(Protocol):
    """What the managed arrays need of the fleet: its clients, and to follow or drop an array's events."""

    clients: dict[str, ArrayClient]

    def follow(self, name: str) -> None: ...

    async def forget(self, name: str) -> None: ...

    def changed(self, name: str) -> None: ...


class ManagedArrays:
    """The saved arrays of ``store`` managed by the fleet ``hooks`` (and the lab's, listed alongside)."""

    def __init__(self, store: ManagedArrayStore, hooks: FleetHooks, lab_names: Callable[[], set[str]]):
        self.store = store
        self.hooks = hooks
        self.lab_names = lab_names
        self.saved: dict[str, ManagedArray] = {}  # array name -> entry, for the saved arrays in the fleet
        self.unmanaged: dict[str, str] = {}  # display name -> why it is not in the fleet

    def load(self) -> None:
        """Give the fleet a client for every saved array (no network: names come from the store)."""
        for entry in self.store.list():
            self._admit(entry)

    def _admit(self, entry: ManagedArray) -> bool:
        key = entry.array_name or entry.name
        if key in self.hooks.clients:
            self.unmanaged[entry.name] = (f"not managed: another managed array is also named {key}"
                                          if key not in self.lab_names() else f"it is the lab's {key}")
            return False
        try:
            self.hooks.clients[key] = client_for(self.store, entry)
        except MirrorError as e:  # its password is missing: listed, with the reason
            self.unmanaged[entry.name] = e.message
            return False
        self.saved[key] = entry
        self.unmanaged.pop(entry.name, None)
        return True

    # -- what the page shows ----------------------------------------------------------------
    def states(self) -> list[ManagedArrayState]:
        out = []
        lab = self.lab_names()
        for key, client in sorted(self.hooks.clients.items()):
            entry = self.saved.get(key)
            if entry is None and key not in lab:
                continue
            reachable = None if client.last_answered is None and client.last_error is None else \
                client.last_error is None
            out.append(ManagedArrayState(
                name=entry.name if entry else key, array_name=key, url=client.base_url,
                source="saved" if entry else "lab", reachable=reachable, reason=client.last_error or "",
                last_answered=client.last_answered, trust=entry.trust if entry else "lab",
                certificate_sha256=client.pinned_sha256,
                presented_sha256=client.presented_sha256))
        for entry in self.store.list():
            if entry.name in self.unmanaged:
                out.append(ManagedArrayState(entry.name, entry.array_name, entry.url, "saved", None,
                                             self.unmanaged[entry.name], None, entry.trust, entry.certificate_sha256,
                                             None, managed=False))
        return out

    @property
    def password_location(self) -> str:
        return self.store.password_location

    # -- adding, removing, renaming --------------------------------------------------------
    async def inspect(self, address: str, port: int | None = None) -> FirstContact:
        return await inspect_array(parse_array_url(address, port))

    async def add(self, name: str, address: str, password: str, port: int | None = None,
                  fingerprint: str | None = None, ca_file: str | None = None) -> ManagedArrayState:
        url = parse_array_url(address, port)
        entry = await add_array(self.store, name, url, password, fingerprint=fingerprint, ca_file=ca_file)
        if self._admit(entry):
            self.hooks.clients[entry.array_name].answered()
            self.hooks.follow(entry.array_name)
        self.hooks.changed(entry.array_name)
        return next(s for s in self.states() if s.name == entry.name)

    async def remove(self, name: str) -> None:
        entry = self.store.get(name)
        if entry.name in self.unmanaged:
            self.unmanaged.pop(entry.name)
        elif self.saved.get(entry.array_name) == entry:
            del self.saved[entry.array_name]
            await self.hooks.forget(entry.array_name)
        self.store.remove(name)
        self.hooks.changed(entry.array_name)

    async def rename(self, name: str, new_name: str) -> None:
        entry = self.store.rename(name, new_name)
        if entry.array_name in self.saved:
            self.saved[entry.array_name] = entry
            self.hooks.clients[entry.array_name].saved_as = entry.name
        self.hooks.changed(entry.array_name)

    async def test(self, name: str) -> dict:
        """Log in and time one call: what 'Test connection' reports."""
        key = next((k for k, e in self.saved.items() if e.name == name), name)
        client = self.hooks.clients.get(key)
        if client is None:
            raise NotFound(f"no managed array named '{name}'", code="managedArrayNotFound")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.get("")
        ms = (loop.time() - started) * 1000
        self.hooks.changed(key)
        return {"name": name, "arrayName": key, "url": client.base_url, "latencyMs": round(ms, 1),
                "message": f"{name} answered in {ms:.0f} ms (logged in as admin, certificate checked)"}

    async def discover(self, targets: str, ports: str | int | None = None) -> list[DiscoveredArray]:
        return await discover(parse_targets(targets), parse_ports(ports))

    async def read_certificate_file(self, path: str) -> CertificateInfo:
        return await asyncio.to_thread(load_certificate_file, path)

    async def certificates(self) -> list[ArrayCertificate]:
        """Every managed array's certificate as presented now (read without trusting it), asked at once."""
        async def one(state: ManagedArrayState) -> ArrayCertificate:
            accepted = state.certificate_sha256
            try:
                host, port = host_port(state.url)
                cert = await fetch_certificate(host, port, timeout=5)
                return ArrayCertificate(state.name, state.array_name, state.url, cert, accepted, "")
            except MirrorError as e:
                return ArrayCertificate(state.name, state.array_name, state.url, None, accepted, e.message)
        return list(await asyncio.gather(*(one(s) for s in self.states())))
