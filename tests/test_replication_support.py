"""Helpers shared by the replication tests (SPEC §2 "The write path", §5 crash safety).

No tests here: small volumes, a throttled lab link, waiting on outcomes a user sees.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

from core.runtime import BlockingEngine

RS = 64 * 1024  # the default region size (MIRROR_REGION_SIZE unset in the test run)


def wait_for(pred, timeout: float = 20.0, what: str = "condition"):
    """Poll ``pred`` until it returns something truthy (no fixed sleeps in tests)."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def make_pair(client, size: str = "4MiB", name: str = "v", group: str = "G", reserved_percent: float = 100,
              secondary_reserved_percent: float | None = None, **settings) -> None:
    """Two fresh volumes, a manual group and a pair; returns when the initial sync committed."""
    client.create_volume(f"SiteA/{name}", size)
    client.create_volume(f"SiteB/{name}", size)
    if group not in {g.name for g in client.groups("SiteA")}:
        settings.setdefault("sync_mode", "manual")
        client.create_group(group, "SiteA", "SiteB", **settings)
    client.add_pair(group, f"SiteA/{name}", f"SiteB/{name}", reserved_percent=reserved_percent,
                    secondary_reserved_percent=secondary_reserved_percent)
    wait_for_commits(client, group, 1)


def manual_mirror(client, size: str = "16MiB", first_write: bytes | None = None):
    """SiteA/v -> SiteB/v_dr in the manual group G; returns once the initial sync (and ``first_write`` at 0) committed."""
    client.create_volume("SiteA/v", size)
    client.create_volume("SiteB/v_dr", size)
    client.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    client.add_pair("G", "SiteA/v", "SiteB/v_dr")
    if first_write is not None:
        client.host_write("SiteA/v", 0, first_write)
    client.sync_now("G", wait=True, after_running=True)  # the initial sync may have started by itself
    return client


def committed(client, group: str = "G") -> list:
    return [s for s in client.sync_history(group) if s.outcome == "committed"]


def wait_for_commits(client, group: str, count: int, timeout: float = 30.0) -> list:
    """Wait until ``count`` recovery points of ``group`` committed and the group is idle."""
    return wait_for(lambda: len(committed(client, group)) >= count
                    and client.group(group).status in ("optimal", "system_suspended")
                    and committed(client, group), timeout, f"{count} committed syncs of {group}")


def read_file(path: str, offset: int = 0, length: int | None = None) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read() if length is None else f.read(length)


def volume_bytes(client, ref: str) -> bytes:
    """A volume's bytes as its backing file holds them (secondaries included)."""
    return read_file(client.volume(ref).path)


def copy_lab(source: Path, home: Path) -> Path:
    """A copy of the stopped lab in ``source`` at ``home`` (volumes stay sparse): a test's own home, made in
    a few milliseconds from one prepared once per module."""
    subprocess.run(["cp", "-a", "--sparse=always", str(source), str(home)], check=True)
    return home


def open_lab(home: Path, **options) -> BlockingEngine:
    """The lab in ``home`` as array daemons with a link relay, driven over REST (see tests/daemon_lab.py).

    ``link_bandwidth=`` (bytes/s) throttles the lab link from the start; ``link_cut=True`` starts it cut.
    """
    from daemon_lab import open_lab as open_daemon_lab

    return open_daemon_lab(home, **options)
