"""A lab of array daemons for one benchmark run: a temp home, ``mirrorctl lab up``, always ``lab down``.

The benches drive the arrays as every client does (SPEC section 3): each array runs
as its own ``mirrorctl array serve`` daemon, hosts write through the daemons' NBD
servers, and the engine's service API is reached over REST through
:class:`core.client.fleet.Fleet` (``BlockingEngine`` with ``lab_fleet_factory``), as
``mirrorctl`` does. Nothing runs the arrays inside the bench process.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.cli.common import lab_fleet_factory  # noqa: E402
from core.runtime import BlockingEngine  # noqa: E402


def mirrorctl(home: Path, *args: str, timeout: float = 300) -> dict:
    """Run ``mirrorctl --home HOME --json ARGS`` with this interpreter; its JSON answer."""
    out = subprocess.run([sys.executable, "-m", "core.cli.main", "--home", str(home), "--json", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"mirrorctl {' '.join(args)} failed ({out.returncode}): "
                           f"{(out.stderr or out.stdout).strip()[-500:]}")
    return json.loads(out.stdout) if out.stdout.strip() else {}


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # A zombie still answers kill(0): look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


class DaemonLab:
    """The lab's array daemons and link relay in a temp home; ``with DaemonLab() as lab: ...``.

    On exit the lab is brought down (``mirrorctl lab down``); a daemon or relay this lab
    started that is still alive afterwards is killed by its pid (never by name: other
    labs may run on the machine), and the home is removed unless ``keep``.
    """

    def __init__(self, prefix: str = "bench-lab-", workdir: str | None = None, arrays: int = 2,
                 keep: bool = False):
        self.prefix, self.workdir, self.arrays, self.keep = prefix, workdir, arrays, keep
        self.tmp: Path | None = None
        self.home: Path | None = None
        self.status: dict = {}
        self._pids: set[int] = set()

    def __enter__(self) -> "DaemonLab":
        self.tmp = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.workdir))
        self.home = self.tmp / "lab"
        try:
            mirrorctl(self.home, "lab", "init", "--arrays", str(self.arrays))
            t0 = time.monotonic()
            self.status = mirrorctl(self.home, "lab", "up")
            self.up_seconds = time.monotonic() - t0
            self._remember_pids(self.status)
            if not self.status.get("up") or self.status.get("linksDown"):
                raise RuntimeError(f"lab up did not connect the arrays: {self.status.get('linksDown')}")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _remember_pids(self, status: dict) -> None:
        self._pids |= {a["pid"] for a in status.get("arrays", ()) if a.get("pid")}
        relay = status.get("link", {}).get("relayPid")
        if relay:
            self._pids.add(relay)

    def __exit__(self, *exc) -> None:
        if self.home is not None and self.home.exists():
            try:
                mirrorctl(self.home, "lab", "down", timeout=120)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                print(f"warning: lab down: {e}", file=sys.stderr)
        for pid in sorted(self._pids):
            deadline = time.monotonic() + 10
            while not process_gone(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not process_gone(pid):
                print(f"warning: pid {pid} of this bench's lab outlived 'lab down'; killing it", file=sys.stderr)
                os.kill(pid, signal.SIGKILL)
        if self.tmp is not None and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- what the lab's status says ----------------------------------------------------------
    def refresh(self) -> dict:
        self.status = mirrorctl(self.home, "lab", "status")
        self._remember_pids(self.status)
        return self.status

    def array(self, name: str) -> dict:
        return next(a for a in self.status["arrays"] if a["name"] == name)

    def pid(self, name: str) -> int:
        return int(self.array(name)["pid"])

    def relay_bytes(self) -> int:
        """Every byte the link relay carried so far, both directions, all routes: the channel's wire."""
        routes = self.refresh()["link"]["routes"]
        return sum(r["bytesToTarget"] + r["bytesFromTarget"] for r in routes.values())

    # -- clients ---------------------------------------------------------------------------------
    def client(self, purpose: str = "bench") -> BlockingEngine:
        """A blocking client of the daemons (the Fleet over REST), as mirrorctl has: ``with lab.client() as c``."""
        arrays = [a for a in self.status["arrays"] if a["running"]]
        return BlockingEngine(self.home, purpose=purpose, engine_factory=lab_fleet_factory(arrays))


def rss_bytes(pid: int) -> int:
    """VmRSS of a process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
