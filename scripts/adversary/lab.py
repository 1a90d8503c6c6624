"""Driving a real lab as an administrator and a host would: mirrorctl, REST, NBD, kill -9.

:class:`Lab` runs ``mirrorctl`` (as its own process for ``lab up/down`` and wherever
the process itself is what is tested; in this process, through the same ``main``,
where only the command matters), talks to each array daemon's REST API with the
pinned certificate from its ``daemon.json``, and kills daemons with SIGKILL.
:class:`NbdHost` is a host on NBD; :class:`HostWriter` is the host workload that
feeds the :class:`~model.WriteLog`.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from core.client.rest import BlockingArrayClient
from core.errors import MirrorError
from core.lab.passwords import lab_passwords
from core.nbd import protocol as P

from adversary.model import BLOCK, WriteLog

REPO = Path(__file__).resolve().parents[2]
PRIMARY, SECONDARY = "SiteA", "SiteB"
GROUP = "ADV"


class HarnessError(RuntimeError):
    """The harness itself could not go on (the lab did not come up, a sync never committed)."""


class Lab:
    """One lab home: its arrays' daemons, the link relay, and the mirror group the runs use."""

    def __init__(self, home: Path, volumes: int = 2, capacity: int = 16 << 20, log=print):
        self.home = Path(home).resolve()
        self.names = [f"adv{i + 1}" for i in range(volumes)]
        self.capacity = capacity
        self.log = log
        self._clients: dict[tuple[str, int], BlockingArrayClient] = {}
        self.stale_sync_answers = 0

    # -- mirrorctl ------------------------------------------------------------
    def mirrorctl(self, *args: str, timeout: float = 180, input: bytes | None = None) -> subprocess.CompletedProcess:
        """``mirrorctl --home H ARGS`` as its own process."""
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.run([sys.executable, "-m", "core.cli.main", "--home", str(self.home), *args],
                              env=env, capture_output=True, timeout=timeout, input=input)

    def ctl(self, *args: str) -> tuple[int, str, str]:
        """``mirrorctl --home H ARGS`` through the same ``main``, in this process (no start-up cost)."""
        from core.cli.main import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["--home", str(self.home), *args])
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 1
        return code, out.getvalue(), err.getvalue()

    def ctl_json(self, *args: str):
        code, out, err = self.ctl("--json", *args)
        if code != 0:
            raise HarnessError(f"mirrorctl {' '.join(args)} failed ({code}): {err.strip()}")
        return json.loads(out) if out.strip() else None

    # -- the lab --------------------------------------------------------------
    def init(self) -> None:
        if not (self.home / "arrays").exists():
            r = self.mirrorctl("lab", "init")
            if r.returncode:
                raise HarnessError(f"lab init failed: {r.stderr.decode().strip()}")

    def up(self) -> dict:
        """``mirrorctl lab up``: starts what is missing (detached daemons) and waits for the link."""
        return self.ctl_json("lab", "up")

    def down(self) -> None:
        for c in self._clients.values():
            with contextlib.suppress(Exception):
                c.close()
        self._clients.clear()
        self.ctl("lab", "down")

    def daemon(self, name: str) -> dict:
        return json.loads((self.home / "arrays" / name / "daemon.json").read_text())

    def client(self, name: str) -> BlockingArrayClient:
        """A REST client of the array's current daemon (a new one after each restart)."""
        info = self.daemon(name)
        key = (name, info["pid"])
        if key not in self._clients:
            for old in [k for k in self._clients if k[0] == name]:
                with contextlib.suppress(Exception):
                    self._clients.pop(old).close()
            self._clients[key] = BlockingArrayClient.for_daemon(info, lab_passwords(self.home)[name], timeout=120)
        return self._clients[key]

    def kill9(self, name: str) -> int:
        """SIGKILL the array's daemon (the pid in its daemon.json); returns once it is gone."""
        pid = self.daemon(name)["pid"]
        os.kill(pid, signal.SIGKILL)
        self._wait_gone(name, pid)
        return pid

    def kill9_together(self, names: list[str]) -> None:
        """SIGKILL several arrays' daemons at once (a site losing power): every signal before any wait."""
        pids = {name: self.daemon(name)["pid"] for name in names}
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        for name, pid in pids.items():
            self._wait_gone(name, pid)

    def _wait_gone(self, name: str, pid: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.01)
        raise HarnessError(f"daemon {name} (pid {pid}) survived SIGKILL")

    def alive(self, name: str) -> bool:
        try:
            self.client(name).about()
            return True
        except (MirrorError, OSError, FileNotFoundError, KeyError):
            return False

    def daemon_tracebacks(self) -> int:
        """Tracebacks in the daemons' logs: each is an error nobody handled."""
        total = 0
        for name in (PRIMARY, SECONDARY):
            log = self.home / "arrays" / name / "daemon.log"
            if log.exists():
                total += log.read_text(errors="replace").count("Traceback (most recent call last)")
        return total

    # -- the mirror the runs use ----------------------------------------------
    def setup_group(self, reserved_percent: int = 100) -> WriteLog:
        """Volumes, the group ADV (manual syncs, automatic resync) and its pairs; initial sync done."""
        size = f"{self.capacity // (1 << 20)}MiB"
        for v in self.names:
            self.ctl_json("volume", "create", f"{PRIMARY}/{v}", "--capacity", size, "--drive-type", "nvme")
            self.ctl_json("volume", "create", f"{SECONDARY}/{v}_dr", "--capacity", size, "--drive-type", "nvme")
        self.ctl_json("group", "create", GROUP, "--primary-array", PRIMARY, "--secondary-array", SECONDARY,
                      "--manual", "--resync", "automatic")
        for v in self.names:
            self.ctl_json("pair", "add", "--group", GROUP, "--primary", f"{PRIMARY}/{v}",
                          "--secondary", f"{SECONDARY}/{v}_dr", "--reserved-percent", str(reserved_percent))
        self.sync_committed()
        return WriteLog({v: self.capacity for v in self.names})

    def sync_committed(self, timeout: float = 120) -> dict:
        """Run syncs until one commits a recovery point taken after it was asked for; its statistics.

        Resumes a suspended group. ``sync?wait=true`` may answer with a sync that was
        already running (a transfer resumed after a restart or a link cut) whose recovery
        point predates the request: counted in ``stale_sync_answers`` and asked again.
        """
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                asked = time.time()
                stats = self.client(PRIMARY).post(f"async-mirrors/{GROUP}/sync?wait=true")
                if stats and stats.get("outcome", "committed") == "committed":
                    if datetime.fromisoformat(stats["recoveryPointTime"]).timestamp() >= asked:
                        return stats
                    self.stale_sync_answers += 1
                    continue
                last = f"outcome {stats and stats.get('outcome')}"
            except (MirrorError, OSError) as e:
                last = str(e)
                with contextlib.suppress(MirrorError, OSError):
                    status = self.client(PRIMARY).get(f"async-mirrors/{GROUP}").get("status")
                    if status in ("user_suspended", "system_suspended", "sync_failing"):
                        self.client(PRIMARY).post(f"async-mirrors/{GROUP}/resume")
            time.sleep(0.3)
        raise HarnessError(f"no sync of {GROUP} committed within {timeout:.0f} s: {last}")

    def verify(self) -> tuple[int, dict | None]:
        """``mirrorctl verify ADV``: exit status (0 identical, 3 differs, 4 not verified) and its JSON."""
        code, out, err = self.ctl("--json", "verify", GROUP)
        try:
            return code, json.loads(out)
        except ValueError:
            return code, {"error": err.strip()}

    def images(self, array: str) -> dict[str, bytes]:
        """Every volume of the group on ``array``, read through the REST volume data endpoint."""
        suffix = "" if array == PRIMARY else "_dr"
        c = self.client(array)
        return {v: c.get_bytes(f"volumes/{v}{suffix}/data", offset=0, length=self.capacity) for v in self.names}

    def secondary_images(self, attempts: int = 10) -> dict[str, bytes]:
        """The secondary's volumes at one recovery point (read again if one committed meanwhile)."""
        c = self.client(SECONDARY)
        for _ in range(attempts):
            before = c.get(f"async-mirrors/{GROUP}").get("lastRecoveryPoint")
            images = self.images(SECONDARY)
            if c.get(f"async-mirrors/{GROUP}").get("lastRecoveryPoint") == before:
                return images
        raise HarnessError("the secondary's recovery point kept moving while it was read")

    def set_link(self, *args: str) -> None:
        self.ctl_json("lab", "link", *args)

    def staging_bytes(self) -> int:
        """Bytes in the secondary's staging journals (what a running transfer has delivered)."""
        total = 0
        for v in self.names:
            with contextlib.suppress(FileNotFoundError):
                total += (self.home / "arrays" / SECONDARY / "reserved" / f"{v}_dr" / "staging.dat").stat().st_size
        return total

    def commit_record(self) -> Path:
        return self.home / "arrays" / SECONDARY / "reserved" / ".groups" / f"{GROUP}.commit"


class NbdHost:
    """A host on one NBD export: fixed newstyle handshake with NBD_OPT_GO, simple replies."""

    def __init__(self, address: str, export: str, timeout: float = 30):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._cookie = 0
        magic, opt_magic, _ = P.GREETING.unpack(self._recv(P.GREETING.size))
        if (magic, opt_magic) != (P.NBDMAGIC, P.IHAVEOPT):
            raise ConnectionError("not an NBD server")
        self.sock.sendall(struct.pack(">I", P.CLIENT_FLAG_FIXED_NEWSTYLE | P.CLIENT_FLAG_NO_ZEROES))
        name = export.encode()
        body = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        self.sock.sendall(P.OPTION_HEADER.pack(P.IHAVEOPT, P.OPT_GO, len(body)) + body)
        while True:
            _, _, rep, length = P.OPTION_REPLY.unpack(self._recv(P.OPTION_REPLY.size))
            self._recv(length)
            if rep == P.REP_ACK:
                break
            if rep != P.REP_INFO:
                raise ConnectionError(f"export {export} refused (NBD reply {rep:#x})")

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the NBD server closed the connection")
            buf += chunk
        return bytes(buf)

    def write(self, offset: int, data: bytes) -> None:
        """Returns once the server acknowledged the write; raises on an error or a lost server."""
        self._cookie += 1
        self.sock.sendall(P.REQUEST.pack(P.REQUEST_MAGIC, 0, P.CMD_WRITE, self._cookie, offset, len(data)) + data)
        magic, err, cookie = P.SIMPLE_REPLY.unpack(self._recv(P.SIMPLE_REPLY.size))
        if magic != P.SIMPLE_REPLY_MAGIC or cookie != self._cookie:
            raise ConnectionError("bad NBD reply")
        if err:
            raise OSError(err, f"NBD write refused (error {err})")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class HostWriter(threading.Thread):
    """The host workload: 64 KiB writes over NBD to the group's primary volumes, one at a time.

    Paced at ``rate`` bytes/s. Stops when asked (after its current write is
    acknowledged) or when the primary goes away (that write stays in flight).
    """

    def __init__(self, lab: Lab, log: WriteLog, rng: random.Random, rate: float, limit: int | None = None):
        super().__init__(name="adversary host writer", daemon=True)
        self.lab, self.wlog, self.rng, self.rate, self.limit = lab, log, rng, rate, limit
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.written = 0

    def run(self) -> None:
        address = self.lab.daemon(PRIMARY)["nbdAddress"]
        hosts: dict[str, NbdHost] = {}
        start = time.monotonic()
        try:
            for v in self.wlog.volumes:
                hosts[v] = NbdHost(address, v)
            while not self.stop_event.is_set() and (self.limit is None or self.written < self.limit):
                v = self.rng.choice(list(self.wlog.volumes))
                w = self.wlog.begin(v, self.rng.randrange(self.wlog.blocks(v)))
                hosts[v].write(w.block * BLOCK, w.data)
                self.wlog.ack(w)
                self.written += 1
                ahead = start + self.written * BLOCK / self.rate - time.monotonic()
                if ahead > 0:
                    self.stop_event.wait(ahead)
        except (OSError, ConnectionError) as e:
            self.error = e
        finally:
            for h in hosts.values():
                h.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)
