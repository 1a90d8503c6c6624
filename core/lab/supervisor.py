"""``lab up / down / status``: the lab's array daemons and its link relay, started and stopped as a whole.

``lab up`` starts what is missing — a daemon per array directory
(``mirrorctl array serve``), the link relay routing to each daemon's channel — and
then tells each array where the others are: a remote-array entry whose address is
the relay's port for that other array, so every channel byte crosses the relay and
a cut relay is a cut link. ``lab down`` stops every process and leaves none behind.

A daemon counts as running when its ``daemon.json`` names a live pid and its REST
``about`` answers; the relay, when ``relay.json`` names a live relay whose control
API answers. Anything else is stale and is cleaned up, never trusted.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.client.rest import BlockingArrayClient
from core.errors import MirrorError, NotFound
from core.lab.home import LabNotUp, array_dirs
from core.lab.passwords import lab_passwords
from core.lab.processes import (is_ours, log_tail, mirrorctl_command, process_alive, read_json, read_pid,
                                start_detached, stop_processes, write_atomic)
from core.lab.relay_control import RelayControl
from core.lab.relay_service import RELAY_FILE, RELAY_LOG, RELAY_PID

DAEMON_FILE = "daemon.json"
DAEMON_PID = "daemon.pid"
DAEMON_LOG = "daemon.log"
PORTS_FILE = "ports.json"  # the daemon's last ports, reused when free
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
PROBE_TIMEOUT = 3.0
LINK_TIMEOUT = 15.0  # lab up waits this long for the arrays to reach each other
RELAY = "link relay"


@dataclass
class DaemonState:
    """One lab array's daemon as found on disk and over REST."""

    name: str
    data_dir: Path
    info: dict | None  # daemon.json
    running: bool

    @property
    def pid(self) -> int | None:
        return (self.info or {}).get("pid") or read_pid(self.data_dir / DAEMON_PID)


def daemon_state(data_dir: Path) -> DaemonState:
    info = read_json(data_dir / DAEMON_FILE)
    running = bool(info) and process_alive(info.get("pid")) and _answers(info)
    return DaemonState((info or {}).get("name") or data_dir.name, data_dir, info, running)


def _answers(info: dict) -> bool:
    try:
        with BlockingArrayClient.for_daemon(info, "", timeout=PROBE_TIMEOUT) as client:
            client.about()
        return True
    except (MirrorError, KeyError):
        return False


def _lab_dirs(home: Path) -> list[Path]:
    dirs = [d.resolve() for d in array_dirs(home)]
    if not dirs:
        raise NotFound(f"no lab in {home}; create one with 'mirrorctl lab init'", code="labNotFound")
    return dirs


@contextmanager
def _supervisor_lock(home: Path):
    """One ``lab up``/``lab down`` at a time per home: a second one waits, then finds the work done."""
    fd = os.open(Path(home) / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- lab up ---------------------------------------------------------------------
def lab_up(home: Path) -> dict:
    """Start the missing daemons and relay, point each array at the others through the relay."""
    home = Path(home).resolve()
    dirs = _lab_dirs(home)
    with _supervisor_lock(home):
        states = [daemon_state(d) for d in dirs]
        started: list[str] = []
        launched: dict[str, int] = {}  # stopped again if lab up fails: it adds all or nothing
        try:
            waiting = {}
            for s in states:
                if not s.running:
                    waiting[s.name] = _launch(s)
                    launched[s.name] = waiting[s.name][0]
            for s in states:
                if s.name in waiting:
                    pid, proc = waiting[s.name]
                    try:
                        s.info = _wait_for_daemon(s, pid, proc)
                    except MirrorError as e:
                        if proc is None or "[portInUse]" not in e.message:
                            raise
                        # Its old port was taken between the check and the bind: any free ports then.
                        pid, proc = _launch(s, any_ports=True)
                        launched[s.name] = pid
                        s.info = _wait_for_daemon(s, pid, proc)
                    s.running = True
                    started.append(s.name)
            relay, relay_started = _ensure_relay(home, {s.name: s.info["channelAddress"] for s in states})
            if relay_started:
                launched[RELAY] = relay.pid
                started.append(RELAY)
            link = relay.link()
            _configure_remotes(home, states, link["routes"], force=bool(started))
        except BaseException:
            stop_processes({n: p for n, p in launched.items() if process_alive(p)}, STOP_TIMEOUT)
            raise
        # Up means connected: each array has reached the others (unless the link is cut on purpose).
        links_down = [] if link.get("cut") else _wait_for_links(home, states)
    return {**lab_status(home), "started": started, "linksDown": links_down}


def _launch(state: DaemonState, any_ports: bool = False) -> tuple[int, subprocess.Popen | None]:
    """Start the array's daemon (on its previous ports unless ``any_ports``), or adopt one still starting."""
    d = state.data_dir
    if state.info and process_alive(state.info.get("pid")):
        raise MirrorError(f"array {state.name}'s daemon (pid {state.info['pid']}) runs but its REST API at "
                          f"{state.info.get('restUrl')} does not answer; stop the lab with 'mirrorctl lab down' "
                          f"and see {d / DAEMON_LOG}", code="arrayNotResponding")
    (d / DAEMON_FILE).unlink(missing_ok=True)  # stale: its process is gone
    pid = read_pid(d / DAEMON_PID)
    if is_ours(pid, "serve", str(d)):
        return pid, None
    ports = {kind: "0" for kind in ("rest", "channel", "nbd")} if any_ports else _previous_ports(d)
    cmd = mirrorctl_command("array", "serve", "--data-dir", str(d), "--listen", "127.0.0.1",
                            "--rest-port", ports["rest"], "--channel-port", ports["channel"], "--nbd-port", ports["nbd"])
    proc = start_detached(cmd, d / DAEMON_LOG, d / DAEMON_PID)
    return proc.pid, proc


def _wait_for_daemon(state: DaemonState, pid: int, proc: subprocess.Popen | None) -> dict:
    d, deadline = state.data_dir, time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        info = read_json(d / DAEMON_FILE)
        if info and info.get("pid") == pid and _answers(info):
            _remember_ports(d, info)
            return info
        status = proc.poll() if proc is not None else None  # before process_alive, which may reap it
        if status is not None or not process_alive(pid):
            why = f"its daemon exited (status {status})" if status is not None else "its daemon exited"
            raise _start_failed(state.name, why, d / DAEMON_LOG)
        time.sleep(0.1)
    stop_processes({state.name: pid}, 5)
    raise _start_failed(state.name, f"its daemon did not come up within {START_TIMEOUT:g} s", d / DAEMON_LOG)


def _previous_ports(data_dir: Path) -> dict[str, str]:
    """The ports this array had the last time, where still free (else "0": any).

    A restarted array keeps its REST URL, channel and NBD addresses, so clients that
    know it (the console, a host's NBD URI, the relay) find it again.
    """
    remembered = read_json(data_dir / PORTS_FILE) or {}
    return {kind: str(port) if isinstance(port, int) and _port_free(port) else "0"
            for kind, port in ((k, remembered.get(k)) for k in ("rest", "channel", "nbd"))}


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _remember_ports(data_dir: Path, info: dict) -> None:
    def port(address: str | None) -> int | None:
        tail = str(address or "").rpartition(":")[2]
        return int(tail) if tail.isdigit() else None
    ports = {"rest": port(info.get("restUrl")), "channel": port(info.get("channelAddress")),
             "nbd": port(info.get("nbdAddress"))}
    write_atomic(data_dir / PORTS_FILE, json.dumps(ports))


def _start_failed(name: str, why: str, log: Path) -> MirrorError:
    return MirrorError(f"array {name} did not start: {why}; last lines of {log}:\n{log_tail(log)}",
                       code="arrayStartFailed")


def _ensure_relay(home: Path, routes: dict[str, str]) -> tuple[RelayControl, bool]:
    """The running relay (its routes updated when a daemon moved), or a new one."""
    control = RelayControl.find(home)
    if control is not None:
        current = {n: r["target"] for n, r in control.link()["routes"].items()}
        moved = {n: t for n, t in routes.items() if current.get(n) != t}
        if moved:
            control.set_routes(moved)
        return control, False
    old = read_json(home / RELAY_FILE) or {}
    stale = [p for p in {old.get("pid"), read_pid(home / RELAY_PID)} if is_ours(p, "relay", str(home))]
    stop_processes({f"relay {p}": p for p in stale}, 5)  # alive but not answering: replace it
    (home / RELAY_FILE).unlink(missing_ok=True)
    args = ["--home", str(home), "lab", "relay"]
    for name, target in routes.items():
        args += ["--route", f"{name}={target}"]
    proc = start_detached(mirrorctl_command(*args), home / RELAY_LOG, home / RELAY_PID)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        control = RelayControl.find(home)
        if control is not None and control.pid == proc.pid:
            return control, True
        time.sleep(0.05)
    stop_processes({RELAY: proc.pid}, 5)
    raise MirrorError(f"the lab link relay did not start; last lines of {home / RELAY_LOG}:\n"
                      f"{log_tail(home / RELAY_LOG)}", code="relayStartFailed")


def _configure_remotes(home: Path, states: list[DaemonState], routes: dict, force: bool) -> None:
    """Each array's entry for each other lab array: the relay's port for it, its password and WWN."""
    passwords = lab_passwords(home)
    for s in states:
        with BlockingArrayClient.for_daemon(s.info, passwords.get(s.name, "")) as client:
            listed = client.get("remote-arrays")
            if isinstance(listed, dict):  # {"remoteArrays": [...]} or a single list-valued key
                listed = next((v for v in listed.values() if isinstance(v, list)), [])
            existing = {e.get("name"): e for e in listed or [] if isinstance(e, dict)}
            for other in states:
                if other is s:
                    continue
                want = {"name": other.name, "addresses": [routes[other.name]["listen"]],
                        "password": passwords.get(other.name, ""), "wwn": other.info.get("wwn", "")}
                have = existing.get(other.name) or {}
                if force or have.get("addresses") != want["addresses"] or have.get("wwn") != want["wwn"]:
                    client.post("remote-arrays", want)


def _wait_for_links(home: Path, states: list[DaemonState], timeout: float = LINK_TIMEOUT) -> list[str]:
    """Wait until every array answers every other over the link; the pairs that still do not."""
    passwords = lab_passwords(home)
    deadline = time.monotonic() + timeout
    down: list[str] = []
    for s in states:
        with BlockingArrayClient.for_daemon(s.info, passwords.get(s.name, "")) as client:
            while True:
                down_here = [f"{s.name} -> {r['name']}" for r in client.get("remote-arrays") if not r.get("reachable")]
                if not down_here or time.monotonic() > deadline:
                    down += down_here
                    break
                time.sleep(0.1)
    return down


# -- lab down -------------------------------------------------------------------
def _daemon_pids(dirs: list[Path]) -> dict[str, int]:
    pids: dict[str, int] = {}
    for d in dirs:
        s = daemon_state(d)
        # daemon.json was written by its daemon, whoever started it; daemon.pid only by lab up.
        listed, spawned = (s.info or {}).get("pid"), read_pid(d / DAEMON_PID)
        if is_ours(listed, "serve"):
            pids[s.name] = listed
        elif is_ours(spawned, "serve", str(d)):
            pids[s.name] = spawned
    return pids


def stop_array(home: Path, name: str, timeout: float = STOP_TIMEOUT) -> dict:
    """Stop one array's daemon (a DR drill: the site goes down); ``lab up`` starts it again."""
    home = Path(home).resolve()
    dirs = [d for d in _lab_dirs(home) if daemon_state(d).name == name]
    if not dirs:
        known = ", ".join(daemon_state(d).name for d in _lab_dirs(home)) or "none"
        raise NotFound(f"the lab has no array named '{name}' (arrays: {known})", code="arrayNotFound")
    with _supervisor_lock(home):
        pids = _daemon_pids(dirs)
        if not pids:
            raise MirrorError(f"array {name} is not running; start it with 'mirrorctl lab array start {name}'",
                              code="arrayNotRunning")
        stopped, killed = stop_processes(pids, timeout)
        _remove_stale(dirs[0] / DAEMON_FILE, dirs[0] / DAEMON_PID)
    return {"home": str(home), "stopped": stopped, "killed": killed}


def lab_down(home: Path, timeout: float = STOP_TIMEOUT) -> dict:
    """SIGTERM every daemon and the relay, wait, SIGKILL only the stubborn; clean their files."""
    home = Path(home).resolve()
    dirs = _lab_dirs(home)
    with _supervisor_lock(home):
        pids = _daemon_pids(dirs)
        for pid in {(read_json(home / RELAY_FILE) or {}).get("pid"), read_pid(home / RELAY_PID)}:
            if is_ours(pid, "relay", str(home)):
                pids[RELAY] = pid
        stopped, killed = stop_processes(pids, timeout)
        for d in dirs:
            _remove_stale(d / DAEMON_FILE, d / DAEMON_PID)
        _remove_stale(home / RELAY_FILE, home / RELAY_PID)
    return {"home": str(home), "stopped": stopped, "killed": killed}


def _remove_stale(json_file: Path, pid_file: Path) -> None:
    for pid in ((read_json(json_file) or {}).get("pid"), read_pid(pid_file)):
        if process_alive(pid):
            return
    json_file.unlink(missing_ok=True)
    pid_file.unlink(missing_ok=True)


# -- lab status -----------------------------------------------------------------
def lab_status(home: Path) -> dict:
    """Every array's daemon and the link, as ``lab status --json`` prints them."""
    home = Path(home).resolve()
    dirs = _lab_dirs(home)
    passwords = lab_passwords(home)
    arrays = []
    for d in dirs:
        s = daemon_state(d)
        info = s.info if s.running else {}
        arrays.append({"name": s.name, "running": s.running, "pid": info.get("pid"), "restUrl": info.get("restUrl"),
                       "channelAddress": info.get("channelAddress"), "nbdAddress": info.get("nbdAddress"),
                       "certificateSha256": info.get("certificateSha256"), "password": passwords.get(s.name),
                       "wwn": info.get("wwn"), "dataDir": str(d)})
    control = RelayControl.find(home)
    if control is not None:
        link = {"running": True, "relayPid": control.pid, **control.link()}
    else:
        link = {"running": False, "relayPid": None, "cut": False, "bandwidth": None, "latency": 0.0, "routes": {}}
    return {"home": str(home), "up": all(a["running"] for a in arrays) and link["running"],
            "arrays": arrays, "link": link}


def require_lab_up(home: Path) -> dict:
    """The lab's status; :class:`LabNotUp` when a daemon or the relay is not running."""
    status = lab_status(home)
    if not status["up"]:
        raise LabNotUp()
    return status
