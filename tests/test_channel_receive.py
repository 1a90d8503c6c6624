"""How the receiving array reads the channel: region data lands whole however the link cuts it up.

The receiver reads a region's data straight into a buffer of its size (issue 14,
core.channel.reader); these tests put a relay on loopback between the arrays that
forwards in small pieces of random size, or drops the link in the middle of a
region, over TCP and TLS.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import random
import ssl

import pytest

from core.channel import ChannelClient, ChannelServer, new_salt, password_hash
from core.domain import Priority
from test_channel import Proxy  # the TCP relay of the channel tests, here forwarding in small pieces

MiB = 1024 * 1024
PASSWORD = "B-secret"


class Keeper:
    """A receiving array that keeps every region it was given."""

    def __init__(self) -> None:
        self.regions: dict[int, bytes | None] = {}

    async def handle_call(self, peer, method, params):
        return {"regions": len(self.regions), "note": len(params.get("note", ""))}

    async def handle_region(self, peer, transfer, volume, offset, length, data):
        self.regions[offset] = None if data is None else bytes(data)

    async def handle_regions(self, peer, transfer, volume, regions):
        for offset, length, data in regions:
            await self.handle_region(peer, transfer, volume, offset, length, data)


class Relay(Proxy):
    """Forwards A -> B in pieces of 1 to ``largest`` bytes; can drop the link ``after`` so many more bytes."""

    def __init__(self, target_port: int, largest: int) -> None:
        super().__init__(target_port)
        self.largest = largest
        self.cut_at: int | None = None
        self._random = random.Random(14)

    def cut_after(self, nbytes: int) -> None:
        self.cut_at = self.forwarded + nbytes

    async def _pump(self, reader, writer, upstream):
        if not upstream:
            return await super()._pump(reader, writer, upstream)
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                view = memoryview(data)
                while view:
                    n = self._random.randint(1, self.largest)
                    if self.cut_at is not None and self.forwarded + n >= self.cut_at:
                        writer.write(view[:self.cut_at - self.forwarded])
                        await writer.drain()
                        self.cut()
                        return
                    writer.write(view[:n])
                    self.forwarded += len(view[:n])
                    view = view[n:]
                    await writer.drain()
                    await asyncio.sleep(0)  # let the receiver read this piece on its own
        writer.close()


def _contexts(tls: bool, tmp_path) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    if not tls:
        return None, None
    from core.rest.tls import ensure_certificate, server_context

    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    return server_context(*ensure_certificate(tmp_path, "B")), client


@contextlib.asynccontextmanager
async def relayed(tmp_path, tls: bool, largest: int):
    """Array B's server, a relay in front of it and a session from A through the relay."""
    server_ssl, client_ssl = _contexts(tls, tmp_path)
    keeper = Keeper()
    salt = new_salt()
    server = ChannelServer("B", salt, password_hash(PASSWORD, salt), keeper, ssl=server_ssl)
    await server.start()
    relay = Relay(server.port, largest)
    try:
        port = await relay.start()
        session = await ChannelClient.connect([("127.0.0.1", port)], "A", "B", PASSWORD, 5, ssl=client_ssl)
        try:
            yield server, relay, session, keeper
        finally:
            await session.close()
    finally:
        await relay.stop()
        await server.stop()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_regions_cut_into_small_reads_arrive_byte_identical(tmp_path, tls):
    """Frames split at any byte: what B holds is what A sent, and B counts every byte.

    The call after the regions carries more JSON than one read, as calls with long lists do.
    """
    async def main():
        async with relayed(tmp_path, tls, largest=3000) as (server, _, session, keeper):
            big = os.urandom(MiB)
            text = b"compressible text " * 4000
            small = [(4 * MiB + i * 4096, os.urandom(4096)) for i in range(8)]
            await session.call("hello")
            await session.send_region("t", "v", 0, big, Priority.HIGH)
            await session.send_regions("t", "v", [(2 * MiB, text), (3 * MiB, bytes(65536)), *small],
                                       Priority.HIGH)
            await session.send_region("t", "v", 5 * MiB, b"x", Priority.HIGH)
            assert await session.call("count", {"note": "n" * 300_000}) == {"regions": 12, "note": 300_000}
            assert keeper.regions[0] == big
            assert keeper.regions[2 * MiB] == text and keeper.regions[3 * MiB] is None
            assert all(keeper.regions[offset] == data for offset, data in small)
            assert keeper.regions[5 * MiB] == b"x"
            (received,) = server.sessions
            assert received.bytes_received == session.bytes_sent
    asyncio.run(main())


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_a_link_dropped_inside_a_region_closes_the_session_and_writes_nothing(tmp_path, tls):
    async def main():
        async with relayed(tmp_path, tls, largest=65536) as (server, relay, session, keeper):
            await session.call("hello")
            (received,) = server.sessions
            relay.cut_after(300_000)  # inside the region's 1 MiB of data
            with contextlib.suppress(Exception):
                await session.send_region("t", "v", 0, os.urandom(MiB), Priority.HIGH)
            await asyncio.wait_for(received.wait_closed(), 5)
            assert received.close_reason.message == \
                "Lost the mirroring channel to remote array 'A': the connection was closed"
            assert keeper.regions == {}
            assert server.sessions == set()
    asyncio.run(main())


def test_stopping_the_array_while_a_region_is_half_received_is_prompt(tmp_path):
    async def main():
        async with relayed(tmp_path, False, largest=65536) as (server, relay, session, keeper):
            await session.call("hello")
            relay.largest = 1  # 1 MiB at a byte per piece: still arriving when B stops
            sending = asyncio.create_task(session.send_region("t", "v", 0, os.urandom(MiB), Priority.HIGH))
            await asyncio.sleep(0.2)
            await asyncio.wait_for(server.stop(), 2)
            assert keeper.regions == {}
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
    asyncio.run(main())
