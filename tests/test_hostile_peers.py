"""Hostile peers on the mirroring channel: password guessing and oversized frames before login.

Issue "Never stuck, never falsely healthy", section *Hostile peers*. Real sockets on
loopback; the guesser sends from 127.0.0.2 so the array connecting from 127.0.0.1
is another address. (The NBD cases are in test_nbd_server.py.)
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time

import pytest

from core.channel import ChannelClient, ChannelError, ChannelServer, frames, new_salt, password_hash
from core.channel.auth import LoginThrottle
from core.channel.frames import FrameType
from core.errors import CommunicationError

PASSWORD = "B-secret"
GUESSER = "127.0.0.2"
AUTH_FAILED = "arvmRemoteAuthenticationFailed"


class Handler:
    async def handle_call(self, peer, method, params):
        return {"peer": peer}

    async def handle_region(self, peer, transfer, volume, offset, length, data):
        pass


@contextlib.asynccontextmanager
async def server_with(refusals: list, **kw):
    salt = new_salt()
    server = ChannelServer("B", salt, password_hash(PASSWORD, salt), Handler(),
                           on_refused=lambda *r: refusals.append(r), **kw)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def guess(port: int, source: str = GUESSER) -> tuple[str, float]:
    """One wrong-password login, spoken frame by frame (no PBKDF2: as fast as a guesser can go).

    Returns the code of the server's ERROR frame and how long the attempt took.
    """
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(frames.json_frame(FrameType.HELLO, {"name": "X", "remote": "B", "nonce": os.urandom(32).hex()}))
        ftype, _, payload = await frames.read_frame(reader, "B")
        if ftype == FrameType.CHALLENGE:
            writer.write(frames.json_frame(FrameType.AUTH, {"proof": os.urandom(32).hex()}))
            ftype, _, payload = await frames.read_frame(reader, "B")
        assert ftype == FrameType.ERROR
        return frames.parse_json(payload, "B")["code"], time.monotonic() - start
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def test_repeated_wrong_passwords_are_slowed_and_each_one_reported():
    refusals: list = []

    async def main():
        throttle = LoginThrottle(free_failures=3, first_delay=0.01, max_delay=0.05)
        async with server_with(refusals, throttle=throttle) as server:
            return [await guess(server.port) for _ in range(50)]

    attempts = asyncio.run(main())
    assert {code for code, _ in attempts} == {AUTH_FAILED}
    times = [t for _, t in attempts]
    assert all(t >= 0.045 for t in times[-10:]), times          # waited the capped delay
    assert sum(times[:3]) < sum(times[-10:]) / 3, times          # the first few were not
    assert len(refusals) == 50
    assert {(address, code) for address, code, _ in refusals} == {(GUESSER, AUTH_FAILED)}
    assert all("wrong password" in message for _, _, message in refusals)


def test_right_password_from_another_address_is_not_delayed():
    refusals: list = []

    async def main():
        throttle = LoginThrottle(free_failures=2, first_delay=2.0, max_delay=2.0)
        async with server_with(refusals, throttle=throttle) as server:
            for _ in range(2):
                await guess(server.port)
            delayed = asyncio.create_task(guess(server.port))  # waits ~2 s before it is answered
            await asyncio.sleep(0.05)
            start = time.monotonic()
            session = await ChannelClient.connect([("127.0.0.1", server.port)], "A", "B", PASSWORD, timeout=5)
            elapsed = time.monotonic() - start
            assert not delayed.done()
            await session.close()
            code, waited = await delayed
            return elapsed, code, waited

    elapsed, code, waited = asyncio.run(main())
    assert elapsed < 1.0
    assert code == AUTH_FAILED and waited >= 1.9


def test_parallel_guesses_from_a_slowed_address_are_refused_at_once():
    refusals: list = []

    async def main():
        throttle = LoginThrottle(free_failures=2, first_delay=0.5, max_delay=0.5)
        async with server_with(refusals, throttle=throttle) as server:
            for _ in range(2):
                await guess(server.port)
            results = await asyncio.gather(*(guess(server.port) for _ in range(5)))
            return results

    results = asyncio.run(main())
    codes = sorted(code for code, _ in results)
    assert codes.count(AUTH_FAILED) == 1  # one at a time, after the delay
    assert codes.count("arvmChannelLoginThrottled") == 4
    assert all(t < 0.4 for code, t in results if code != AUTH_FAILED)
    throttled = [r for r in refusals if r[1] == "arvmChannelLoginThrottled"]
    assert len(throttled) == 4 and all(address == GUESSER for address, _, _ in throttled)


def test_throttle_table_is_small_and_forgets():
    now = [0.0]
    throttle = LoginThrottle(free_failures=1, first_delay=1.0, max_delay=8.0, max_addresses=4,
                             forget_after=60.0, clock=lambda: now[0])
    for i in range(10):
        address = f"10.0.0.{i}"
        assert throttle.admit(address) == 0.0
        throttle.finish(address, ok=False)
    assert len(throttle) == 4
    assert throttle.admit("10.0.0.9") == pytest.approx(1.0)  # 1 failure: the first delay
    throttle.finish("10.0.0.9", ok=False)
    now[0] += 0.5
    assert throttle.admit("10.0.0.9") == pytest.approx(1.5)  # 2 failures: twice that, from the last one
    throttle.finish("10.0.0.9", ok=True)
    assert throttle.admit("10.0.0.9") == 0.0  # a good login forgets the address
    throttle.finish("10.0.0.9", ok=None)
    now[0] += 61
    assert throttle.admit("10.0.0.8") == 0.0  # forgotten after a quiet minute


def test_big_frame_before_login_closes_the_connection():
    refusals: list = []

    async def main():
        async with server_with(refusals) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            # Only the header of a 1 MiB HELLO: the server must refuse without waiting for the payload.
            writer.write(frames.pack_header(FrameType.HELLO, 0, 1024 * 1024, 0))
            ftype, _, payload = await asyncio.wait_for(frames.read_frame(reader, "B"), 5)
            closed = await asyncio.wait_for(reader.read(1), 5) == b""
            writer.close()
            return ftype, frames.parse_json(payload, "B"), closed

    ftype, msg, closed = asyncio.run(main())
    assert ftype == FrameType.ERROR and closed
    assert msg["code"] == "arvmChannelProtocolError" and "before" in msg["message"]
    assert [(a, c) for a, c, _ in refusals] == [("127.0.0.1", "arvmChannelProtocolError")]


def test_frame_at_the_pre_login_limit_is_read():
    """64 KiB is the limit: a HELLO that size is read (and refused for what it says, not its size)."""
    refusals: list = []

    async def main():
        async with server_with(refusals) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(frames.raw_frame(FrameType.HELLO, b" " * frames.PRE_AUTH_MAX_PAYLOAD))
            ftype, _, payload = await frames.read_frame(reader, "B")
            writer.close()
            return frames.parse_json(payload, "B")

    msg = asyncio.run(main())
    assert msg["code"] == "arvmChannelProtocolError" and "JSON" in msg["message"]
    assert len(refusals) == 1


def test_client_refuses_a_big_frame_from_a_server_before_login():
    async def main():
        async def hostile(reader, writer):
            await reader.read(100)
            writer.write(frames.pack_header(FrameType.CHALLENGE, 0, 32 * 1024 * 1024, 0))
            await writer.drain()
            await asyncio.sleep(2)
            writer.close()

        srv = await asyncio.start_server(hostile, "127.0.0.1", 0)
        try:
            start = time.monotonic()
            with pytest.raises(CommunicationError) as info:
                await ChannelClient.connect([("127.0.0.1", srv.sockets[0].getsockname()[1])], "A", "B",
                                            PASSWORD, timeout=5)
            return info.value, time.monotonic() - start
        finally:
            srv.close()
            await srv.wait_closed()

    error, elapsed = asyncio.run(main())
    assert elapsed < 1.5
    assert "arvmChannelProtocolError" in error.message or isinstance(error, ChannelError)


def test_garbage_and_silence_are_reported_too():
    refusals: list = []

    async def main():
        async with server_with(refusals, handshake_timeout=0.3) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
            await reader.read()
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            await asyncio.wait_for(reader.read(), 3)  # silent: closed after the handshake timeout
            writer.close()

    asyncio.run(main())
    assert [c for _, c, _ in refusals] == ["arvmChannelProtocolError", "arvmChannelHandshakeTimeout"]


def test_a_failing_callback_does_not_break_the_server():
    def explode(*_):
        raise RuntimeError("event log is down")

    async def main():
        salt = new_salt()
        server = ChannelServer("B", salt, password_hash(PASSWORD, salt), Handler(), on_refused=explode)
        await server.start()
        try:
            assert (await guess(server.port))[0] == AUTH_FAILED
            session = await ChannelClient.connect([("127.0.0.1", server.port)], "A", "B", PASSWORD, timeout=5)
            assert (await session.call("hi"))["peer"] == "A"
            await session.close()
        finally:
            await server.stop()

    asyncio.run(main())


# -- what an unauthenticated peer can make the array hold ----------------------------------------------

def _flood_measured(monkeypatch, tmp_path, tls: bool, seconds: float = 1.0) -> tuple[int, int]:
    """A peer that sends and never reads, while the server waits before its handshake (a slowed address).

    Returns (most bytes any channel reader held at once, bytes the flooder got out of its own process).
    """
    peaks: dict[int, int] = {}
    feed = asyncio.StreamReader.feed_data

    def measured(self, data):
        feed(self, data)
        peaks[id(self)] = max(peaks.get(id(self), 0), len(self._buffer))

    monkeypatch.setattr(asyncio.StreamReader, "feed_data", measured)
    server_ssl = client_ssl = None
    if tls:
        from core.rest.tls import ensure_certificate, server_context

        server_ssl = server_context(*ensure_certificate(tmp_path, "B"))
        client_ssl = ssl.create_default_context()
        client_ssl.check_hostname, client_ssl.verify_mode = False, ssl.CERT_NONE

    async def main():
        throttle = LoginThrottle(free_failures=1, first_delay=seconds + 1, max_delay=seconds + 1)
        async with server_with([], throttle=throttle, ssl=server_ssl) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ssl,
                                                          local_addr=(GUESSER, 0))
            writer.write(b"not a frame header")  # one failure from this address: its next login waits
            await reader.read()
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_ssl,
                                                          local_addr=(GUESSER, 0))
            chunk, queued = os.urandom(1024 * 1024), 0
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                writer.write(chunk)
                queued += len(chunk)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(writer.drain(), 0.05)
            out = queued - writer.transport.get_write_buffer_size()
            writer.transport.abort()
            return out

    flushed = asyncio.run(main())
    return max(peaks.values()), flushed


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_before_login_a_peer_cannot_make_the_array_buffer_more_than_a_few_frames(monkeypatch, tmp_path, tls):
    """Was 8 MiB per connection (twice the session's 4 MiB reader limit) before any frame was checked."""
    from core.channel.stream import PRE_AUTH_FRAME

    peak, flushed = _flood_measured(monkeypatch, tmp_path, tls)
    print(f"{'TLS' if tls else 'TCP'}: flooder got {flushed / 1024:.0f} KiB out, "
          f"the most a reader held: {peak / 1024:.0f} KiB")
    assert flushed > 4 * PRE_AUTH_FRAME  # it sent far more than the array keeps
    assert peak <= 3 * PRE_AUTH_FRAME, peak


def test_after_login_the_session_reads_whole_regions_again():
    """The pre-login bounds are lifted at login: a 4 MiB region arrives without the reader pausing per frame."""
    class Keep(Handler):
        got: list = []

        async def handle_region(self, peer, transfer, volume, offset, length, data):
            self.got.append(len(data))

    async def main():
        salt = new_salt()
        server = ChannelServer("B", salt, password_hash(PASSWORD, salt), Keep())
        await server.start()
        try:
            session = await ChannelClient.connect([("127.0.0.1", server.port)], "A", "B", PASSWORD, timeout=5)
            assert session._reader._limit == 4 * 1024 * 1024
            await session.send_region("t", "v", 0, os.urandom(4 * 1024 * 1024))
            await session.call("done")
            (live,) = server.sessions
            assert live._reader._limit == 4 * 1024 * 1024
            await session.close()
        finally:
            await server.stop()
        return Keep.got

    assert asyncio.run(main()) == [4 * 1024 * 1024]
