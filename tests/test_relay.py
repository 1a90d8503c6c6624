"""The lab link relay on real sockets: bytes intact, a cut that really cuts, bandwidth and latency that bite."""
from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from core.errors import InvalidInput
from core.lab.relay import LinkRelay
from core.lab.shaping import parse_bandwidth, parse_latency
from core.units import MiB


def run(coro, timeout: float = 20):
    """Run one scenario on a fresh loop; any error the loop swallowed fails the test."""
    problems: list = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: problems.append(ctx))
        return await asyncio.wait_for(coro, timeout)

    result = asyncio.run(main())
    assert not problems, problems
    return result


class Echo:
    """A channel stand-in: echoes what it reads; half-close aware (answers, then closes after EOF)."""

    def __init__(self):
        self.connections = 0
        self.received = 0
        self.ended = asyncio.Event()
        self.server = None

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while data := await reader.read(65536):
                self.received += len(data)
                writer.write(data)
                await writer.drain()
            writer.close()
        except (ConnectionError, OSError):
            writer.transport.abort()
        finally:
            self.ended.set()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


async def connect(relay: LinkRelay, name: str = "SiteB"):
    host, port = relay.address(name).split(":")
    return await asyncio.open_connection(host, int(port))


async def read_all(reader, n: int) -> bytes:
    return await reader.readexactly(n)


async def is_closed(reader, timeout: float = 2.0) -> bool:
    """True when the far end of this connection is gone (EOF or reset)."""
    try:
        return await asyncio.wait_for(reader.read(1), timeout) == b""
    except (ConnectionError, OSError):
        return True


def test_bytes_flow_both_ways_intact():
    async def scenario():
        async with Echo() as echo, LinkRelay({"SiteB": echo.address}) as relay:
            reader, writer = await connect(relay)
            payload = os.urandom(3 * MiB + 17)

            async def send():
                writer.write(payload)
                await writer.drain()
                writer.write_eof()

            sender = asyncio.create_task(send())
            back = await read_all(reader, len(payload))
            await sender
            assert back == payload
            assert await reader.read() == b""  # the echo closed after our EOF: EOF relayed back
            writer.close()
            st = relay.status()["routes"]["SiteB"]
            assert st["accepted"] == 1 and st["bytesToTarget"] == len(payload) == st["bytesFromTarget"]
            await asyncio.sleep(0.05)
            assert relay.status()["routes"]["SiteB"]["connections"] == 0

    run(scenario())


def test_half_close_keeps_the_other_direction_and_leaves_nothing_behind(caplog):
    async def scenario():
        async def late_answer(reader, writer):
            data = await reader.read()  # until the client's EOF
            await asyncio.sleep(0.1)
            writer.write(data[::-1])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(late_answer, "127.0.0.1", 0)
        target = "127.0.0.1:%d" % server.sockets[0].getsockname()[1]
        async with LinkRelay({"SiteA": target}) as relay:
            reader, writer = await connect(relay, "SiteA")
            writer.write(b"abcdef")
            writer.write_eof()
            assert await reader.read() == b"fedcba"
            writer.close()
            # A client that vanishes mid-stream: no traceback, no connection left.
            reader, writer = await connect(relay, "SiteA")
            writer.write(b"x" * 1000)
            writer.transport.abort()
            await asyncio.sleep(0.3)
            assert relay.status()["routes"]["SiteA"]["connections"] == 0
        server.close()
        await server.wait_closed()
        others = [t for t in asyncio.all_tasks()
                  if t is not asyncio.current_task() and t.get_coro().__qualname__ != "run.<locals>.main"]
        assert not others, others

    with caplog.at_level(logging.WARNING):
        run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text


def test_cut_closes_open_connections_and_refuses_new_ones_until_restored():
    async def scenario():
        async with Echo() as echo, LinkRelay({"SiteB": echo.address}) as relay:
            reader, writer = await connect(relay)
            writer.write(b"ping")
            assert await read_all(reader, 4) == b"ping"
            assert relay.cut() == 1
            assert await is_closed(reader)  # the dialling array sees the path die...
            await asyncio.wait_for(echo.ended.wait(), 2)  # ...and so does the array behind the relay
            writer.close()

            before = echo.connections
            reader, writer = await connect(relay)  # accepted, then closed at once
            writer.write(b"hello?")
            assert await is_closed(reader)
            writer.close()
            assert echo.connections == before  # nothing reached the array
            assert relay.status()["cut"] and relay.status()["routes"]["SiteB"]["refused"] >= 1

            relay.restore()
            reader, writer = await connect(relay)
            writer.write(b"back")
            assert await read_all(reader, 4) == b"back"
            writer.close()

    run(scenario())


async def _timed_upload(relay: LinkRelay, echo: Echo, size: int) -> float:
    """Seconds for ``size`` bytes to cross the relay to the echo server and come back."""
    reader, writer = await connect(relay)
    start = time.monotonic()

    async def send():
        writer.write(b"\0" * size)
        await writer.drain()

    sender = asyncio.create_task(send())
    await read_all(reader, size)
    await sender
    writer.close()
    return time.monotonic() - start


def test_bandwidth_limits_throughput_and_applies_to_open_connections():
    async def scenario():
        async with Echo() as echo, LinkRelay({"SiteB": echo.address}) as relay:
            fast = await _timed_upload(relay, echo, 1 * MiB)
            relay.set(bandwidth=2 * MiB)
            slow = await _timed_upload(relay, echo, 1 * MiB)
            assert slow >= 0.35, slow
            assert slow < 3, slow
            assert fast < slow

            # A connection opened unlimited slows down as soon as the limit is set.
            relay.set(bandwidth=None)
            reader, writer = await connect(relay)
            writer.write(b"x")
            await read_all(reader, 1)
            relay.set(bandwidth=1 * MiB)
            start = time.monotonic()
            writer.write(b"\0" * (MiB // 2))
            await read_all(reader, MiB // 2)
            assert time.monotonic() - start >= 0.3
            relay.set(bandwidth=None)
            writer.close()

    run(scenario())


def test_latency_delays_each_direction_and_keeps_order():
    async def scenario():
        async with Echo() as echo, LinkRelay({"SiteB": echo.address}) as relay:
            reader, writer = await connect(relay)
            writer.write(b"a")
            await read_all(reader, 1)
            relay.set(latency=0.15)
            start = time.monotonic()
            for i in range(50):
                writer.write(bytes([i]))
                await writer.drain()
                await asyncio.sleep(0.002)
            got = await read_all(reader, 50)
            elapsed = time.monotonic() - start
            assert got == bytes(range(50))
            assert elapsed >= 0.3, elapsed  # 0.15 s out, 0.15 s back
            assert elapsed < 1.5, elapsed  # chunks are delayed in a pipeline, not one after another
            relay.set(latency=0)
            writer.close()

    run(scenario())


def test_a_delayed_link_with_more_in_flight_than_its_pipe_holds_keeps_every_byte_in_order():
    """The relay's pipe fills (reading stops) and drains (reading resumes) many times over."""
    async def scenario():
        async with Echo() as echo, LinkRelay({"SiteB": echo.address}) as relay:
            relay.set(latency=0.02)
            reader, writer = await connect(relay)
            payload = os.urandom(40 * MiB + 5)

            async def send():
                for i in range(0, len(payload), MiB):
                    writer.write(payload[i:i + MiB])
                    await writer.drain()

            sender = asyncio.create_task(send())
            back = await read_all(reader, len(payload))
            await sender
            assert back == payload
            writer.close()
            st = relay.status()["routes"]["SiteB"]
            assert st["bytesToTarget"] == len(payload) == st["bytesFromTarget"]

    run(scenario(), timeout=60)


def test_ports_are_kept_across_restarts_and_routes_can_move():
    async def scenario():
        async with Echo() as first, Echo() as second:
            async with LinkRelay({"SiteB": first.address}) as relay:
                port = relay.ports()["SiteB"]
            async with LinkRelay({"SiteB": first.address}, ports={"SiteB": port}) as relay:
                assert relay.ports()["SiteB"] == port
                await relay.set_routes({"SiteB": second.address})
                reader, writer = await connect(relay)
                writer.write(b"moved")
                assert await read_all(reader, 5) == b"moved"
                writer.close()
                assert second.connections == 1
                # An unreachable target: the connection is closed, not hung.
                await relay.set_routes({"SiteB": "127.0.0.1:1"})
                reader, writer = await connect(relay)
                assert await is_closed(reader, timeout=6)
                writer.close()

    run(scenario())


def test_settings_are_validated():
    assert parse_bandwidth("20MiB") == 20 * MiB
    assert parse_bandwidth("20MiB/s") == 20 * MiB
    assert parse_bandwidth("none") is None
    assert parse_latency("30ms") == pytest.approx(0.03)
    assert parse_latency("0") == 0
    assert parse_latency("0.2s") == pytest.approx(0.2)
    for bad in ("0", "0MiB", "-5MiB", "fast"):
        with pytest.raises(InvalidInput) as e:
            parse_bandwidth(bad)
        assert e.value.code in ("invalidBandwidth", "invalidInput")
    with pytest.raises(InvalidInput, match="more than 0") as e:
        parse_bandwidth("0")
    assert e.value.code == "invalidBandwidth"
    for bad in ("30", "-1ms", "soon", "2min"):
        with pytest.raises(InvalidInput):
            parse_latency(bad)
    relay = LinkRelay({"SiteB": "127.0.0.1:1"})
    with pytest.raises(InvalidInput):
        relay.set(bandwidth=0)
    with pytest.raises(InvalidInput):
        relay.set(latency=-1)
