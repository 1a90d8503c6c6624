"""'Synchronize now' after an interrupted sync answers with a recovery point holding every write made before it.

An interrupted sync keeps its capture and sends it when the link returns; a manual sync
asked for meanwhile must not be answered by that older capture (a 'sync --wait' that
returns a recovery point without the writes the administrator just made).
"""
from __future__ import annotations

import os

import pytest

from core.errors import MirrorError
from test_replication_support import manual_mirror, wait_for

MIB = 1 << 20


@pytest.fixture
def mirror(client):
    """SiteA/v (16 MiB) -> SiteB/v_dr in the manual group G, initial sync done."""
    return manual_mirror(client)


def test_sync_now_after_an_interrupted_sync_includes_the_writes_made_since(mirror):
    c = mirror
    c.call(lambda: c.engine.pace_sender("SiteA", MIB // 2))  # slow enough to cut it mid-way
    c.host_write("SiteA/v", 0, os.urandom(2 * MIB))
    c.sync_now("G")
    wait_for(lambda: any(op["bytesDone"] > 0 for op in c.long_running_operations()))
    c.lab_link(True)
    wait_for(lambda: c.group("G", "SiteA").status == "paused")
    wait_for(lambda: not any(op["running"] for op in c.long_running_operations()))
    assert c.long_running_operations(), "the interrupted capture is kept"
    late = os.urandom(65536)
    c.host_write("SiteA/v", 12 * MIB, late)  # after the capture: not in it
    c.call(lambda: c.engine.pace_sender("SiteA", None))

    async def restore_and_sync():  # at once: the older capture is still pending when the sync is asked for
        await c.engine.lab_link(False)
        return await c.engine.sync_now("G", wait=True)
    stats = c.call(restore_and_sync)
    assert stats.outcome == "committed"
    assert c.host_read("SiteB/v_dr", 12 * MIB, 65536) == late
    kinds = [s.outcome for s in c.sync_history("G")]
    assert kinds.count("committed") >= 3  # the initial, the interrupted capture, then the new one


def test_a_sync_that_dies_of_an_unexpected_error_answers_its_waiter(mirror):
    """'sync --wait' never hangs: a sync task that dies (a bug, a database error) fails its waiters."""
    c = mirror
    runner = c.engine.daemon("SiteA").engine.runner  # the primary's array runs the sync

    def broken(*args):
        raise RuntimeError("database is locked")
    c.call(lambda: setattr(runner, "_commit_primary", broken))
    c.host_write("SiteA/v", 0, b"x" * 65536)
    with pytest.raises(MirrorError) as e:
        c.sync_now("G", wait=True)
    assert e.value.code == "arvmSyncFailed" and "database is locked" in e.value.message
