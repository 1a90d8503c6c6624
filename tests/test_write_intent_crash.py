"""The activity log's crash bound against real daemons (issue 14): kill -9, restart, resync.

A host rewrites some regions again and again (they stay in the activity log across
the commit: their next write needs no durable update) and writes a few others once
after the commit; both daemons are killed with SIGKILL and started again. The resync
sends at most the regions changed since the recovery point plus the activity log,
never a full copy, and the secondary ends identical to the primary.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli.common import lab_fleet_factory
from core.runtime import BlockingEngine
from test_replication_support import RS, committed, read_file, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from adversary.lab import Lab, NbdHost  # noqa: E402

pytestmark = pytest.mark.slow

B = 4096
REGIONS = 256  # a 16 MiB volume
HOT = range(0, 40)  # rewritten three times: in the activity log
CHANGED = range(100, 110)  # written once after the commit: what the recovery point lacks


def fleet(lab: Lab) -> BlockingEngine:
    arrays = lab.ctl_json("lab", "status")["arrays"]
    return BlockingEngine(lab.home, purpose="pytest write intent", engine_factory=lab_fleet_factory(arrays))


@pytest.fixture
def lab(tmp_path, lab_template):
    home = tmp_path / "lab"
    subprocess.run(["cp", "-a", "--sparse=always", str(lab_template), str(home)], check=True)
    lab = Lab(home, log=lambda *a: None)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


def test_a_kill_resends_at_most_the_changes_and_the_activity_log_and_ends_identical(lab):
    with fleet(lab) as c:
        c.create_volume("SiteA/v", "16MiB")
        c.create_volume("SiteB/v", "16MiB")
        c.create_group("W", "SiteA", "SiteB", sync_mode="manual")
        c.add_pair("W", "SiteA/v", "SiteB/v", reserved_percent=50)
        c.sync_now("W", wait=True, after_running=True)
        host = NbdHost(lab.daemon("SiteA")["nbdAddress"], "v")
        try:
            for round_ in range(3):
                for r in HOT:
                    host.write(r * RS + round_ * B, os.urandom(B))
        finally:
            host.close()
        assert c.sync_now("W", wait=True).outcome == "committed"
        host = NbdHost(lab.daemon("SiteA")["nbdAddress"], "v")
        try:
            for r in CHANGED:
                host.write(r * RS + 5 * B, os.urandom(B))
        finally:
            host.close()
        c.host_flush("SiteA/v")
        before = len(committed(c, "W"))
    lab.kill9_together(["SiteA", "SiteB"])
    lab.up()
    with fleet(lab) as c:
        wait_for(lambda: c.group("W").status == "optimal", 30, "the group to be idle after the restart")
        stats = c.sync_now("W", wait=True)
        assert stats.outcome == "committed" and len(committed(c, "W")) == before + 1
        # The bound kept: the changes since the recovery point, plus at most the activity log.
        assert len(CHANGED) * RS <= stats.bytes_payload <= (len(CHANGED) + len(HOT)) * RS
        assert stats.bytes_payload < REGIONS * RS  # never a full sync
        primary = read_file(c.volume("SiteA/v").path)
        assert read_file(c.volume("SiteB/v").path) == primary
        assert c.verify("W")["identical"]
