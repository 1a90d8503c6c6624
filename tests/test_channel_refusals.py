"""Refused mirroring-channel logins are events naming the address, and a burst is a Guru problem."""
from __future__ import annotations

import asyncio

from core.channel.connect import ChannelClient
from core.daemon.array_daemon import peer_context
from core.errors import MirrorError


def _knock(address: tuple[str, int], attempts: int) -> int:
    """``attempts`` logins with a wrong password at once; how many were refused."""
    async def one() -> bool:
        try:
            session = await ChannelClient.connect([address], "Intruder", "SiteA", "not-the-password", timeout=10,
                                                  ssl=peer_context())  # the daemon's channel speaks TLS
        except MirrorError:
            return True
        await session.close()
        return False

    async def all_of_them() -> int:
        return sum(await asyncio.gather(*(one() for _ in range(attempts))))
    return asyncio.run(all_of_them())


def test_wrong_passwords_are_events_and_a_burst_is_a_guru_problem(client):
    host, _, port = client.array("SiteA").channel_address.rpartition(":")
    assert _knock((host, int(port)), 12) == 12
    refused = [e for e in client.events("SiteA") if e.code == "arvmChannelLoginRefused"]
    assert refused and "127.0.0.1" in refused[0].message
    assert len(refused) < 12  # one event per address every few seconds, with the count: no flood
    problem = next(p for p in client.guru() if p.id == "channel-logins-refused:SiteA")
    assert "127.0.0.1" in problem.cause and "12" in problem.title
