"""A daemon's memory stays bounded while it keeps synchronizing (issue 14: RSS grew with every sync)."""
from __future__ import annotations

import os

from test_replication_support import wait_for

SYNCS = 6


def test_the_channel_keeps_no_encoder_per_finished_sync(client, daemon_lab):
    """Each transfer got a zstd encoder and a pacing record in the channel session, never dropped."""
    client.create_group("M", "SiteA", "SiteB", sync_mode="manual")
    client.create_volume("SiteA/m", "1MiB")
    client.create_volume("SiteB/m", "1MiB")
    client.add_pair("M", "SiteA/m", "SiteB/m")
    data = os.urandom(64 * 1024)
    for i in range(SYNCS):
        client.host_write("SiteA/m", i * len(data), data)
        client.sync_now("M", wait=True)
    sessions = daemon_lab.daemon("SiteA").engine.channels.sessions
    sending = [s for (local, _), s in sessions.items() if local == "SiteA" and not s.closed]
    assert sending, "SiteA kept no session to SiteB"
    # The last transfer's encoder goes just after its waiters hear of the commit.
    wait_for(lambda: all(len(s._encoders) == 0 and len(s.scheduler._senders) == 0 for s in sending),
             what="the finished transfers' encoders dropped")
    assert sum(s.codec_stats.regions for s in sending) >= SYNCS  # their statistics are kept
