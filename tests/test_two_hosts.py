"""SiteA and SiteB as two machines: each array daemon in its own Linux network namespace.

Like two sites, each host has a management network (REST, reached from the test's own
namespace) and the two share a replication network (a veth pair) that carries the
mirroring channel. Everything goes through the REST API, as automation would. Cutting
the replication network is a cut link: the veth goes down and nothing else tells the
arrays. Needs root and ``ip netns``; skipped with the reason where they are not allowed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.client.rest import BlockingArrayClient
from core.errors import MirrorError
from core.lab import LAB_PASSWORDS

pytestmark = pytest.mark.slow
TAG = f"amc{os.getpid() % 100000}"
# Addresses of this test's own hosts, inside the namespaces it creates (never routed elsewhere).
MGMT = {"SiteA": ("10.213.1.254", "10.213.1.1"), "SiteB": ("10.213.2.254", "10.213.2.1")}
REPL = {"SiteA": "10.213.0.1", "SiteB": "10.213.0.2"}
ROOT = Path(__file__).resolve().parents[1]


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def _namespaces_allowed() -> str:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    try:
        sh("ip", "netns", "add", f"{TAG}probe")
        sh("ip", "netns", "del", f"{TAG}probe")
    except (OSError, subprocess.CalledProcessError) as e:
        return f"network namespaces are not allowed here ({getattr(e, 'stderr', '') or e})"
    return ""


class Site:
    def __init__(self, name: str, data_dir: Path):
        self.name, self.data_dir = name, data_dir
        self.ns = f"{TAG}{name[-1].lower()}"
        self.proc: subprocess.Popen | None = None
        self.client: BlockingArrayClient | None = None

    def start(self) -> None:
        log = open(self.data_dir / "daemon.log", "ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "core.cli.main", "array", "serve",
             "--data-dir", str(self.data_dir), "--listen", "0.0.0.0", "--rest-port", "0", "--channel-port", "0",
             "--nbd-port", "0"], cwd=ROOT, stdout=log, stderr=log)
        info_path = self.data_dir / "daemon.json"
        end = time.monotonic() + 30
        while not info_path.exists():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"{self.name} did not start:\n" + (self.data_dir / "daemon.log").read_text()[-3000:])
            time.sleep(0.1)
        self.info = json.loads(info_path.read_text())
        port = self.info["restUrl"].rpartition(":")[2]
        self.client = BlockingArrayClient(f"https://{MGMT[self.name][1]}:{port}", LAB_PASSWORDS[self.name],
                                          fingerprint=self.info["certificateSha256"])

    @property
    def channel_port(self) -> str:
        return self.info["channelAddress"].rpartition(":")[2]

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                assert self.proc.wait(30) == 0, "the daemon did not stop cleanly"
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()


@pytest.fixture
def sites(lab_home):
    why = _namespaces_allowed()
    if why:
        pytest.skip(why)
    made: list[str] = []
    sites = {n: Site(n, lab_home / "arrays" / n) for n in ("SiteA", "SiteB")}
    try:
        for n, s in sites.items():
            sh("ip", "netns", "add", s.ns)
            made.append(s.ns)
            sh("ip", "-n", s.ns, "link", "set", "lo", "up")
            host_if, site_if = f"{s.ns}m", "mgmt0"
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", site_if, "netns", s.ns)
            sh("ip", "addr", "add", f"{MGMT[n][0]}/24", "dev", host_if)
            sh("ip", "link", "set", host_if, "up")
            sh("ip", "-n", s.ns, "addr", "add", f"{MGMT[n][1]}/24", "dev", site_if)
            sh("ip", "-n", s.ns, "link", "set", site_if, "up")
        a, b = sites["SiteA"], sites["SiteB"]
        sh("ip", "-n", a.ns, "link", "add", "repl0", "type", "veth", "peer", "name", "repl0", "netns", b.ns)
        for s in (a, b):
            sh("ip", "-n", s.ns, "addr", "add", f"{REPL[s.name]}/24", "dev", "repl0")
            sh("ip", "-n", s.ns, "link", "set", "repl0", "up")
        for s in sites.values():
            s.start()
        a.client.post("remote-arrays", {"name": "SiteB", "addresses": [f"{REPL['SiteB']}:{b.channel_port}"],
                                        "password": LAB_PASSWORDS["SiteB"]})
        b.client.post("remote-arrays", {"name": "SiteA", "addresses": [f"{REPL['SiteA']}:{a.channel_port}"],
                                        "password": LAB_PASSWORDS["SiteA"]})
        yield a, b
    finally:
        for s in sites.values():
            s.stop()
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        for s in sites.values():
            subprocess.run(["ip", "link", "del", f"{s.ns}m"], capture_output=True)


def wait_for(fn, timeout=15.0, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = fn()
            if last:
                return last
        except MirrorError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def group(site: Site) -> dict:
    return site.client.get("async-mirrors/G")


def set_link(site: Site, up: bool) -> None:
    sh("ip", "-n", site.ns, "link", "set", "repl0", "up" if up else "down")


def test_two_hosts_mirror_cut_force_promote_and_resolve_the_conflict_over_rest(sites):
    a, b = sites
    wait_for(lambda: all(r["reachable"] for r in a.client.get("remote-arrays")), what="SiteA to reach SiteB")
    data = os.urandom(256 * 1024)
    a.client.post("volumes", {"name": "v", "size": 16 << 20, "sizeUnit": "bytes", "poolId": "nvme_pool"})
    b.client.post("volumes", {"name": "v_dr", "size": 16 << 20, "sizeUnit": "bytes", "poolId": "nvme_pool"})
    a.client.post("async-mirrors", {"name": "G", "secondaryArrayId": "SiteB", "manualSync": True,
                                    "interfaceType": "iscsi"})
    a.client.post("async-mirrors/G/pairs", {"primaryVolumeRef": "v", "secondaryVolumeRef": "v_dr"})
    a.client.put_bytes("volumes/v/data", data, offset=0)
    wait_for(lambda: group(a)["groupState"] == "optimal" and not group(a)["syncActivity"] == "active",
             what="the initial sync")
    a.client.post("async-mirrors/G/sync", {})
    wait_for(lambda: group(a)["syncActivity"] == "idle" and group(a)["status"] == "optimal", what="the sync")
    assert b.client.get_bytes("volumes/v_dr/data", offset=0, length=len(data)) == data

    set_link(a, False)  # the replication network fails; management still answers
    wait_for(lambda: group(a)["syncActivity"] == "paused" and group(b)["syncActivity"] == "paused",
             what="both sides paused")
    b.client.post("async-mirrors/G/role", {"role": "primary", "force": True})
    b.client.put_bytes("volumes/v_dr/data", b"B while apart", offset=0)
    set_link(a, True)
    wait_for(lambda: group(a)["status"] == "role_conflict" and group(b)["status"] == "role_conflict",
             timeout=10, what="a role conflict on both sides within 10 s")
    a.client.post("async-mirrors/G/role", {"role": "primary"})  # keep SiteA
    wait_for(lambda: group(b)["localRole"] == "secondary" and group(a)["status"] == "optimal", timeout=30,
             what="SiteB demoted and resynced")
    a.client.post("async-mirrors/G/sync", {})
    wait_for(lambda: group(a)["syncActivity"] == "idle", what="the last sync")
    assert b.client.get_bytes("volumes/v_dr/data", offset=0, length=len(data)) == data
