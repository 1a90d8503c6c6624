"""The lab as the product runs it, inside the test process: one array daemon per array, a link relay.

Each lab array is an in-process :class:`~core.daemon.array_daemon.ArrayDaemon` (its
own engine opening ONE data directory; REST over HTTPS, the mirroring channel and
NBD on loopback ports chosen by the system), and every channel byte between them
crosses an in-process :class:`~core.lab.relay.LinkRelay`, as ``mirrorctl lab up``
arranges it with processes: each array's remote-array entry for another array is
the relay's port for that array. Tests drive the arrays through a
:class:`~core.client.fleet.Fleet` over their REST APIs — what ``mirrorctl`` and the
console do — so a test sees what a user sees.

:class:`DaemonLab` is an engine factory for :class:`core.runtime.BlockingEngine`:
everything (daemons, relay, fleet) runs on the BlockingEngine's loop thread, and
attributes it does not have itself are the fleet's service API, so
``client.create_group(...)`` is a REST call. ``client.engine`` is the DaemonLab:
``client.engine.daemon("SiteB").engine`` is SiteB's own engine, for tests about an
array's internals.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from core.client.fleet import Fleet, lab_clients
from core.client.rest import ArrayClient
from core.daemon.array_daemon import ArrayDaemon, array_name
from core.errors import MirrorError, NotFound
from core.lab import array_dirs
from core.lab.passwords import lab_passwords
from core.lab.processes import write_atomic
from core.lab.relay import LinkRelay
from core.lab.relay_service import PORTS_FILE as LINK_PORTS_FILE, remembered_ports
from core.rest import tls
from core.runtime import BlockingEngine

LINK_TIMEOUT = 15.0
_CERTIFICATES: dict[str, tuple[bytes, bytes]] = {}  # array name -> (cert.pem, key.pem), made once per session


def install_certificate(data_dir: Path, name: str) -> None:
    """The array's HTTPS certificate in ``data_dir/tls`` as ``ensure_certificate`` expects it, generated once per name."""
    target = Path(data_dir) / tls.TLS_DIR
    if (target / tls.CERT_FILE).exists() and (target / tls.KEY_FILE).exists():
        return
    if name not in _CERTIFICATES:
        scratch = Path(data_dir) / ".tls-scratch"
        cert, key = tls.ensure_certificate(scratch, name)
        _CERTIFICATES[name] = (cert.read_bytes(), key.read_bytes())
        shutil.rmtree(scratch, ignore_errors=True)
    cert_pem, key_pem = _CERTIFICATES[name]
    target.mkdir(parents=True, exist_ok=True)
    (target / tls.KEY_FILE).write_bytes(key_pem)
    (target / tls.KEY_FILE).chmod(0o600)
    (target / tls.CERT_FILE).write_bytes(cert_pem)


class LocalLink:
    """The lab link's controls (what :class:`core.client.lab.LabLink` offers the fleet) over the relay on this loop."""

    def __init__(self, lab: "DaemonLab"):
        self._lab = lab
        self.started_here = False

    async def bring_up(self) -> list[dict]:
        return self._lab.arrays_status()

    async def state(self) -> dict:
        return self._lab.relay.status()

    async def stop_array(self, name: str) -> dict:
        await self._lab.stop_array(name)
        return {"stopped": [name]}

    async def start_array(self, name: str) -> list[dict]:
        await self._lab.start_array(name)
        return self._lab.arrays_status()

    async def set(self, **settings) -> dict:
        """``cut``, ``bandwidth``, ``latency`` as the relay's control API takes them (``POST /link``)."""
        relay = self._lab.relay
        relay.set(**{k: settings[k] for k in ("bandwidth", "latency") if k in settings})
        closed = None
        if settings.get("cut") is True:
            closed = relay.cut()
        elif settings.get("cut") is False:
            relay.restore()
        return {**relay.status(), **({"connectionsClosed": closed} if closed is not None else {})}


class DaemonLab:
    """The lab's array daemons, their link relay and a fleet over their REST APIs; an engine for EngineLoop."""

    def __init__(self, home: Path, purpose: str = "", nbd_port: int | None = None, link_bandwidth: int | None = None,
                 link_cut: bool = False, wait_for_links: bool = True, fleet_options: dict | None = None):
        """``fleet_options``: more keywords for the :class:`Fleet` (the console's: ``store``, ``stale_groups``)."""
        self.home = Path(home)
        self.fleet_options = dict(fleet_options or {})
        self.purpose = purpose
        self.link_bandwidth = link_bandwidth
        self.link_cut = link_cut
        self.wait_links = wait_for_links
        self.daemons: dict[str, ArrayDaemon] = {}
        self.dirs: dict[str, Path] = {}
        self.ports: dict[str, dict[str, int]] = {}  # the ports each array had: a restarted array keeps them
        self.relay: LinkRelay | None = None
        self.link = LocalLink(self)
        self.fleet: Fleet | None = None
        self.passwords: dict[str, str] = {}

    # -- life cycle ------------------------------------------------------------------
    async def start(self) -> None:
        self.passwords = lab_passwords(self.home)
        self.dirs = {array_name(d): d.resolve() for d in array_dirs(self.home)}
        for name, d in self.dirs.items():
            self.passwords.setdefault(name, "")
            install_certificate(d, name)
        try:
            for name in self.dirs:
                await self._start_daemon(name)
            # The relay's ports of the last run when free, as the lab's relay process keeps them: the
            # arrays' remote-array entries stay valid across a restart.
            self.relay = LinkRelay({n: d.engine.get_array(n).channel_address for n, d in self.daemons.items()},
                                   remembered_ports(self.home))
            await self.relay.start()
            write_atomic(self.home / LINK_PORTS_FILE, json.dumps({"ports": self.relay.ports()}))
            self.relay.set(bandwidth=self.link_bandwidth)
            if self.link_cut:
                self.relay.cut()
            for name in self.daemons:
                await self._configure_remotes(name)
            self.fleet = Fleet(lab_clients(self.arrays_status()), lab=self.link, **self.fleet_options)
            await self.fleet.start()
            if self.wait_links and not self.link_cut:
                await self.wait_for_links()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.fleet is not None:
            await self.fleet.stop()
        # The arrays go away together (as the processes of a stopped machine would), then the link.
        results = await asyncio.gather(*(d.stop() for d in self.daemons.values()), return_exceptions=True)
        self.daemons.clear()
        if self.relay is not None:
            await self.relay.close()
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def __getattr__(self, name: str):
        """Everything else is the fleet's service API (what mirrorctl and the console call)."""
        if name.startswith("__") or self.__dict__.get("fleet") is None:
            raise AttributeError(name)
        return getattr(self.fleet, name)

    # -- arrays ----------------------------------------------------------------------
    def daemon(self, name: str) -> ArrayDaemon:
        if name not in self.daemons:
            raise NotFound(f"array {name} is not running in this lab (running: {', '.join(self.daemons)})",
                           code="arrayNotRunning")
        return self.daemons[name]

    def arrays_status(self) -> list[dict]:
        """The running arrays as ``lab status`` lists them (what :func:`lab_clients` takes)."""
        out = []
        for name, d in self.daemons.items():
            info = d.describe()
            out.append({**info, "running": True, "password": self.passwords.get(name, "")})
        return out

    async def _start_daemon(self, name: str) -> None:
        ports = self.ports.get(name, {})
        try:
            daemon = await self._daemon_on(name, ports)
        except MirrorError as e:
            if e.code != "portInUse" or not ports:
                raise
            # Its old port was taken while it was down (a client's ephemeral port, another
            # worker's daemon): any free ports, as `lab up` does; clients follow the new address.
            daemon = await self._daemon_on(name, {})
        self.daemons[name] = daemon
        info = daemon.describe()
        self.ports[name] = {"rest": _port(info["restUrl"]), "channel": _port(info["channelAddress"]),
                            "nbd": _port(info["nbdAddress"])}

    async def _daemon_on(self, name: str, ports: dict) -> ArrayDaemon:
        daemon = ArrayDaemon(self.dirs[name], "127.0.0.1", rest_port=ports.get("rest", 0),
                             channel_port=ports.get("channel", 0), nbd_port=ports.get("nbd", 0))
        await daemon.start()
        return daemon

    async def _configure_remotes(self, name: str) -> None:
        """``name``'s entry for every other array: the relay's port for it, its password and WWN."""
        async with _client(self.daemons[name], self.passwords[name]) as client:
            existing = {e["name"]: e for e in await client.get("remote-arrays")}
            for other in self.dirs:
                if other == name:
                    continue
                wwn = self.daemons[other].describe()["wwn"] if other in self.daemons else ""
                want = {"name": other, "addresses": [self.relay.address(other)],
                        "password": self.passwords.get(other, ""), "wwn": wwn}
                have = existing.get(other) or {}
                if have.get("addresses") != want["addresses"] or have.get("wwn") != wwn:  # as lab up does
                    await client.post("remote-arrays", want)

    async def wait_for_links(self, timeout: float = LINK_TIMEOUT) -> None:
        """Until every running array reaches every other running one over the relay."""
        deadline = time.monotonic() + timeout
        for name, daemon in self.daemons.items():
            async with _client(daemon, self.passwords[name]) as client:
                while True:
                    down = [r["name"] for r in await client.get("remote-arrays")
                            if not r.get("reachable") and r["name"] in self.daemons]
                    if not down:
                        break
                    if time.monotonic() > deadline:
                        raise MirrorError(f"{name} does not reach {', '.join(down)} over the lab link",
                                          code="arrayUnreachable")
                    await asyncio.sleep(0.05)

    async def stop_array(self, name: str) -> None:
        """The site goes down: its daemon stops (REST, channel and NBD with it), as ``lab array stop`` does."""
        daemon = self.daemon(name)
        await daemon.stop()
        del self.daemons[name]

    async def start_array(self, name: str) -> None:
        """The site comes back on its old ports, so clients, hosts and the relay find it again."""
        if name in self.daemons:
            return
        await self._start_daemon(name)
        await self.relay.set_routes({name: self.daemons[name].describe()["channelAddress"]})
        if not self.relay.is_cut:
            await self.wait_for_links()

    def pace_sender(self, array: str, rate: int | None) -> None:
        """Pace ``array``'s own channel sender at ``rate`` bytes/s (None: unpaced), on its open sessions.

        The relay throttles the link, but the sockets on its way hold megabytes: a sender
        hands a few MiB to the kernel at once and counts them sent. A test that needs
        captured regions still unsent while hosts overwrite them paces the sender itself.
        """
        self.daemon(array).engine.channels.set_rate(rate)

    def publish(self, kind: str, array: str, obj: str = "") -> None:
        """A change told by ``array``'s own engine: subscribers get it over the array's event stream."""
        self.daemon(array).engine.publish(kind, array, obj)

    async def set_link(self, **settings) -> dict:
        """``cut``, ``bandwidth`` (bytes/s, None unlimited), ``latency`` (s) of the lab link."""
        return await self.link.set(**settings)


def _port(address: str) -> int:
    tail = str(address or "").rpartition(":")[2]
    return int(tail) if tail.isdigit() else 0


def _client(daemon: ArrayDaemon, password: str) -> ArrayClient:
    info = daemon.describe()
    return ArrayClient(info["restUrl"], password, fingerprint=info["certificateSha256"])


def daemon_lab_factory(**options):
    """An ``engine_factory`` for :class:`BlockingEngine`: the lab in ``home`` as daemons, with ``options``."""
    def factory(home, purpose="", nbd_port=None, **_):
        return DaemonLab(home, purpose, **options)
    return factory


def lab_engine(home: Path, timeout: float | None = 120, **options) -> BlockingEngine:
    """The lab in ``home`` as daemons behind a blocking fleet, not started: ``with lab_engine(home) as c:``."""
    return BlockingEngine(home, purpose="pytest", timeout=timeout, engine_factory=daemon_lab_factory(**options))


def open_lab(home: Path, timeout: float | None = 120, **options) -> BlockingEngine:
    """The lab in ``home`` as daemons behind a blocking fleet, started; close it to stop them."""
    return lab_engine(home, timeout, **options).start()
