"""Scheduled online verify: a primary group is verified in the background by itself, and a restart remembers when.

The schedule belongs to the primary's array daemon (SiteA): its own engine verifies
the group, keeps the time in its data directory, and a restart of that daemon reads it.
"""
from __future__ import annotations

import json
import time

from core.runtime import BlockingEngine
from test_replication_support import wait_for


def _every_hour_soon(c: BlockingEngine) -> None:
    """Verify every hour, the first one within a second (the default is weekly, first within the hour)."""
    def set_():
        schedule = c.engine.daemon("SiteA").engine.scheduled_verify
        schedule.every_hours = 1.0
        schedule.schedule.first_delay_hours = 0.5 / 3600
    c.call(set_)


def _mirror(c: BlockingEngine) -> None:
    c.create_volume("SiteA/v", "4MiB")
    c.create_volume("SiteB/v_dr", "4MiB")
    c.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    c.add_pair("G", "SiteA/v", "SiteB/v_dr")


def test_a_ready_group_is_verified_by_itself_and_the_time_is_kept(client, lab_home):
    _mirror(client)
    # Before the group is ready: a scheduler tick between its first recovery point and this would
    # see it with the weekly default and set its first verify up to an hour away (a timeout under load).
    _every_hour_soon(client)
    client.host_write("SiteA/v", 0, b"v" * 65536)
    client.sync_now("G", wait=True, after_running=True)
    wait_for(lambda: any(e.code == "arvmOnlineVerify" and e.object == "G" for e in client.events("SiteA")))
    record = lab_home / "arrays" / "SiteA" / "verify.json"
    wait_for(record.exists)
    when = json.loads(record.read_text())["G"]
    # the next one is an hour after the last, on the schedule's clock
    next_due = client.call(lambda: client.engine.daemon("SiteA").engine.scheduled_verify.schedule.next_due("SiteA", "G"))
    assert 3500 < next_due.timestamp() - time.time() <= 3600
    client.array_stop("SiteA")  # a restart of the primary's daemon does not verify again at once
    client.array_start("SiteA")
    _every_hour_soon(client)
    time.sleep(1.5)
    verifies = [e for e in client.events("SiteA") if e.code == "arvmOnlineVerify"]
    assert len(verifies) == 1
    assert json.loads(record.read_text())["G"] == when


def test_a_group_not_ready_is_not_verified(client):
    _mirror(client)
    client.sync_now("G", wait=True, after_running=True)
    client.suspend("G")
    _every_hour_soon(client)
    time.sleep(1.5)
    assert not any(e.code == "arvmOnlineVerify" for e in client.events("SiteA"))
