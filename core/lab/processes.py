"""The lab's background processes: start them detached, tell whether they live, stop them surely.

The supervisor (``mirrorctl lab up``) exits once the lab runs, so the daemons and the
relay it starts live in their own sessions, write to a log file in the lab home, and
are found again through a pid file and the JSON file each writes once it listens. A
pid file can outlive its process and the pid be reused: :func:`is_ours` checks the
command line before any signal is sent, so a stale file never kills a stranger.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import core

# mirrorctl's own modules, whatever the current directory of the process that starts them.
_SOURCE_ROOT = str(Path(core.__file__).resolve().parent.parent)
_START_MARK = "--- "  # opens each start's lines in a log


def mirrorctl_command(*args: str) -> list[str]:
    """``python -m core.cli.main ARGS`` with this interpreter (the venv the caller runs in)."""
    return [sys.executable, "-m", "core.cli.main", *args]


def start_detached(cmd: list[str], log_path: Path, pid_path: Path) -> subprocess.Popen:
    """Start ``cmd`` in a new session (a Ctrl-C in the caller's terminal does not reach it).

    stdout and stderr are appended to ``log_path``; the pid goes to ``pid_path``. Paths in
    ``cmd`` must be absolute: the process runs in the log's directory.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_SOURCE_ROOT, env.get("PYTHONPATH")) if p)
    with open(log_path, "ab") as log:
        log.write(f"{_START_MARK}{time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        # cwd: the lab's own directory, so a long-lived process pins no directory of the caller's.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env, cwd=Path(log_path).parent)
    write_atomic(pid_path, f"{proc.pid}\n")
    return proc


def process_alive(pid: int | None) -> bool:
    """True while ``pid`` runs (a zombie is dead; one that is our child is reaped here)."""
    if not pid or pid <= 0:
        return False
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel below
    except OSError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_ours(pid: int | None, *needles: str) -> bool:
    """True when ``pid`` lives and its command line holds every one of ``needles`` as a whole word."""
    if not process_alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    words = {a.decode(errors="replace") for a in args}
    return all(n in words for n in needles)


def stop_processes(pids: dict[str, int], timeout: float = 30.0) -> tuple[list[str], list[str]]:
    """SIGTERM each, wait up to ``timeout`` for all, SIGKILL the rest; returns (stopped, killed) labels."""
    for pid in pids.values():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(process_alive(p) for p in pids.values()):
        time.sleep(0.05)
    killed = [label for label, pid in pids.items() if process_alive(pid)]
    for label in killed:
        _signal(pids[label], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(process_alive(pids[label]) for label in killed):
        time.sleep(0.05)
    return [label for label in pids if label not in killed], killed


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def read_json(path: Path) -> dict | None:
    """A JSON file another process writes atomically; None when absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_pid(path: Path) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write whole then rename: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)  # the umask must not widen or narrow what the caller asked for
    os.replace(tmp, path)


def log_tail(path: Path, lines: int = 12) -> str:
    """The last ``lines`` lines of the latest start in a log, indented, for an error message."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "  (no log)"
    found = [line for line in text.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(found) if line.startswith(_START_MARK)]
    tail = found[starts[-1] if starts else 0:][-lines:]  # earlier runs' lines would only mislead
    return "\n".join("  " + line for line in tail) or "  (empty log)"
