"""The mirroring channel over real loopback TCP (SPEC §3 "Replication channel").

Each test runs its own event loop with asyncio.run and closes what it opened.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest
from hypothesis import given, settings, strategies as st

from core.channel import (ChannelClient, ChannelError, ChannelServer, LinkScheduler,
                          RegionDecoder, RegionEncoder, frames, new_salt, password_hash,
                          verify_password)
from core.channel.frames import FrameType
from core.domain import Priority
from core.errors import CommunicationError, InvalidInput, MirrorError

MiB = 1024 * 1024
PASSWORD = "B-secret"


class Recorder:
    """A receiving array that keeps what it got."""

    def __init__(self, region_delay: float = 0.0, keep_data: bool = True):
        self.regions: list[tuple[str, str, int, int, bytes | None]] = []
        self.region_bytes = 0
        self.region_delay = region_delay
        self.keep_data = keep_data

    async def handle_call(self, peer, method, params):
        if method == "echo":
            return {"peer": peer, "params": params}
        if method == "count":
            return {"regions": len(self.regions), "bytes": self.region_bytes}
        if method == "invalid":
            raise InvalidInput("Group name 'x' is too long: use at most 30 characters.")
        if method == "not_empty":
            raise MirrorError("Group 'g1' still has pairs: remove them first.",
                              code="arvmGroupNotEmpty")
        if method == "boom":
            raise RuntimeError("disk on fire")
        if method == "sleep":
            await asyncio.sleep(params["seconds"])
            return {}
        raise InvalidInput(f"unknown method {method}")

    async def handle_region(self, peer, transfer, volume, offset, length, data):
        if self.region_delay:
            await asyncio.sleep(self.region_delay)
        if volume == "failing":
            raise OSError(5, "Input/output error")
        self.region_bytes += length
        self.regions.append((transfer, volume, offset, length,
                             data if self.keep_data else None))


@contextlib.asynccontextmanager
async def started_server(handler=None, password=PASSWORD, **kw):
    salt = new_salt()
    server = ChannelServer("B", salt, password_hash(password, salt), handler or Recorder(), **kw)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def channel(handler=None, password=PASSWORD, **client_kw):
    """A server array 'B' and a session from array 'A' to it."""
    async with started_server(handler) as server:
        session = await ChannelClient.connect([("127.0.0.1", server.port)], "A", "B",
                                              password, timeout=5, **client_kw)
        try:
            yield server, session
        finally:
            await session.close()


class Proxy:
    """A TCP relay between client and server that can flip a byte or cut the link."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.forwarded = 0          # client -> server bytes so far
        self.tamper_at: int | None = None
        self._links: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    def arm(self, after: int) -> None:
        """Corrupt the client->server byte ``after`` bytes from now."""
        self.tamper_at = self.forwarded + after

    def cut(self) -> None:
        for w in self._links:
            w.transport.abort()

    async def stop(self) -> None:
        self._server.close()
        self.cut()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, cr, cw):
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._links += [cw, sw]
        for coro in (self._pump(cr, sw, True), self._pump(sr, cw, False)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)

    async def _pump(self, reader, writer, upstream):
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if upstream:
                    t = self.tamper_at
                    if t is not None and self.forwarded <= t < self.forwarded + len(data):
                        buf = bytearray(data)
                        buf[t - self.forwarded] ^= 0x5A
                        data = bytes(buf)
                    self.forwarded += len(data)
                writer.write(data)
                await writer.drain()
        writer.close()


def free_port() -> int:
    """A port nobody listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- passwords and authentication --------------------------------------------------

def test_password_hash_is_salted_and_verifiable():
    salt = new_salt()
    stored = password_hash("pw", salt)
    assert verify_password("pw", salt, stored)
    assert not verify_password("pw2", salt, stored)
    assert password_hash("pw", new_salt()) != stored
    assert len(salt) >= 16 and len(stored) == 32


def test_auth_success_names_both_ends():
    async def main():
        async with channel() as (server, session):
            assert session.peer == "B" and not session.closed
            assert [s.peer for s in server.sessions] == ["A"]
            assert (await session.call("echo", {"x": 1}))["peer"] == "A"
            assert 0 < await session.ping() < 1
    asyncio.run(main())


def test_wrong_password_refused_on_both_ends():
    async def main():
        async with started_server() as server:
            with pytest.raises(CommunicationError) as info:
                await ChannelClient.connect([("127.0.0.1", server.port)], "A", "B",
                                            "not-the-password", timeout=5)
            assert info.value.code == "arvmRemoteAuthenticationFailed"
            assert "'B'" in info.value.message and "Re-enter the password" in info.value.message
            assert server.errors[-1].code == "arvmRemoteAuthenticationFailed"
            assert "'A'" in server.errors[-1].message
            assert not server.sessions
    asyncio.run(main())


def test_wrong_remote_name_refused():
    async def main():
        async with started_server() as server:
            with pytest.raises(CommunicationError) as info:
                await ChannelClient.connect([("127.0.0.1", server.port)], "A", "C",
                                            PASSWORD, timeout=5)
            assert info.value.code == "arvmRemoteArrayMismatch"
    asyncio.run(main())


def test_password_never_sent():
    async def main():
        async with started_server() as server:
            proxy = Proxy(server.port)
            port = await proxy.start()
            seen = bytearray()
            pump = proxy._pump

            async def spying_pump(reader, writer, upstream):
                class Spy:
                    async def read(self, n):
                        data = await reader.read(n)
                        seen.extend(data)
                        return data
                await pump(Spy(), writer, upstream)
            proxy._pump = spying_pump
            session = await ChannelClient.connect([("127.0.0.1", port)], "A", "B", PASSWORD, 5)
            await session.close()
            await proxy.stop()
            salt = server._salt
            assert PASSWORD.encode() not in seen
            assert password_hash(PASSWORD, salt) not in seen
            assert password_hash(PASSWORD, salt).hex().encode() not in seen
    asyncio.run(main())


def test_other_major_version_refused_by_server():
    async def main():
        async with started_server() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            payload = b'{"name":"A","remote":"B","nonce":"00"}'
            writer.write(frames.pack_header(FrameType.HELLO, 0, len(payload),
                                            frames.crc32(payload), major=2, minor=0) + payload)
            ftype, _, reply = await frames.read_frame(reader, "server")
            writer.close()
            await writer.wait_closed()
            assert ftype == FrameType.ERROR
            msg = frames.parse_json(reply, "server")
            assert msg["code"] == "arvmChannelVersionMismatch"
            assert "2.0" in msg["message"] and "upgrade" in msg["message"]
            assert server.errors[-1].code == "arvmChannelVersionMismatch"
    asyncio.run(main())


def test_other_major_version_refused_by_client():
    async def main():
        async def future_array(reader, writer):
            await reader.read(100)
            payload = b'{"name":"B"}'
            writer.write(frames.pack_header(FrameType.CHALLENGE, 0, len(payload),
                                            frames.crc32(payload), major=2, minor=3) + payload)
            await writer.drain()
            await reader.read(100)
            writer.close()
        srv = await asyncio.start_server(future_array, "127.0.0.1", 0)
        try:
            with pytest.raises(ChannelError) as info:
                await ChannelClient.connect([("127.0.0.1", srv.sockets[0].getsockname()[1])],
                                            "A", "B", PASSWORD, timeout=5)
            assert info.value.code == "arvmChannelVersionMismatch"
            assert "2.3" in info.value.message
        finally:
            srv.close()
            await srv.wait_closed()
    asyncio.run(main())


# -- calls ----------------------------------------------------------------------

def test_call_round_trip_and_remote_errors_keep_their_code():
    async def main():
        async with channel() as (_, session):
            assert await session.call("echo", {"a": [1, "two"]}) == \
                {"peer": "A", "params": {"a": [1, "two"]}}
            with pytest.raises(InvalidInput) as info:
                await session.call("invalid", {})
            assert info.value.code == "invalidInput" and "30 characters" in info.value.message
            with pytest.raises(MirrorError) as info:
                await session.call("not_empty", {})
            assert info.value.code == "arvmGroupNotEmpty"
            assert info.value.message == "Group 'g1' still has pairs: remove them first."
            with pytest.raises(MirrorError) as info:
                await session.call("boom", {})
            assert info.value.code == "arvmRemoteInternalError"
            assert "disk on fire" in info.value.message
            # Concurrent calls are multiplexed by request id.
            results = await asyncio.gather(*(session.call("echo", {"i": i}) for i in range(50)))
            assert [r["params"]["i"] for r in results] == list(range(50))
            # The session is still usable after remote errors.
            assert (await session.call("count", {}))["regions"] == 0
    asyncio.run(main())


def test_call_timeout():
    async def main():
        async with channel() as (_, session):
            with pytest.raises(CommunicationError) as info:
                await session.call("sleep", {"seconds": 2}, timeout=0.2)
            assert "'B'" in info.value.message
    asyncio.run(main())


# -- regions --------------------------------------------------------------------

def test_regions_arrive_byte_identical_and_cost_what_they_should():
    async def main():
        rec = Recorder()
        async with channel(rec) as (_, session):
            rnd = os.urandom(MiB)
            text = b"".join(b"block %08d of a very compressible volume\n" % i
                            for i in range(MiB // 44 + 1))[:MiB]
            zero = bytes(MiB)
            mixed = bytearray(rnd[:256 * 1024]) + bytes(768 * 1024)
            small = b"tiny"
            wire = {}
            for name, data, off in (("rnd", rnd, 0), ("zero", zero, MiB), ("text", text, 2 * MiB),
                                    ("mixed", memoryview(mixed), 3 * MiB), ("small", small, 4 * MiB)):
                wire[name] = await session.send_region("t1", "vol1", off, data, Priority.MEDIUM)
            await session.call("count", {})
            got = {r[2]: r for r in rec.regions}
            assert got[0][4] == rnd and got[0][3] == MiB
            assert got[MiB][4] is None and got[MiB][3] == MiB        # zero marker
            assert got[2 * MiB][4] == text
            assert got[3 * MiB][4] == bytes(mixed)
            assert got[4 * MiB][4] == small
            assert all(r[:2] == ("t1", "vol1") for r in rec.regions)
            assert wire["zero"] < 100                                 # length only
            assert wire["text"] < MiB // 4                            # zstd paid
            assert MiB <= wire["rnd"] < MiB + 100                     # sent raw
            stats = session.codec_stats
            assert stats.zero_regions == 1 and stats.compressed_regions >= 2
            assert stats.raw_regions == 2                              # rnd and small
            assert session.bytes_sent >= sum(wire.values())
    asyncio.run(main())


def test_random_data_costs_almost_no_compression_attempts():
    enc = RegionEncoder()
    for _ in range(200):
        assert enc.encode(os.urandom(64 * 1024)).flags == frames.Flag.NONE
    assert enc.stats.compress_attempts <= 20          # backed off to every 16th region
    text = b"abc" * 30000
    flags = [enc.encode(text).flags for _ in range(20)]
    assert frames.Flag.ZSTD in flags[:17]             # the next probe finds it again
    assert flags[-1] == frames.Flag.ZSTD              # and compression stays on


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([b"\0", b"a", b"xyz", os.urandom(7)]), max_size=400),
       st.integers(0, 2000))
def test_codec_round_trip(pieces, zeros):
    data = b"".join(pieces) + bytes(zeros)
    enc = RegionEncoder().encode(data)
    out = RegionDecoder().decode(enc.flags, enc.raw_size, bytes(enc.body), "peer")
    assert (bytes(len(data)) if out is None else out) == data


@contextlib.asynccontextmanager
async def proxied_channel(handler):
    """A server array 'B', a tampering proxy in front of it, and a session from 'A' through it."""
    async with started_server(handler) as server:
        proxy = Proxy(server.port)
        port = await proxy.start()
        session = await ChannelClient.connect([("127.0.0.1", port)], "A", "B", PASSWORD, 5)
        try:
            yield server, proxy, session
        finally:
            await session.close()
            await proxy.stop()


def test_corrupt_frame_closes_session_and_fails_sender():
    async def main():
        rec = Recorder()
        async with proxied_channel(rec) as (server, proxy, session):
            await session.send_region("t1", "vol1", 0, os.urandom(4096), Priority.HIGH)
            await session.call("count", {})
            proxy.arm(20_000)   # inside the next region's data
            await session.send_region("t1", "vol1", 65536, os.urandom(65536), Priority.HIGH)
            with pytest.raises(CommunicationError) as info:
                await session.call("count", {}, timeout=5)
            assert info.value.code == "arvmChannelFrameCorrupt"
            assert "CRC32" in info.value.message and "'B'" in info.value.message
            assert session.closed
            assert [r[2] for r in rec.regions] == [0]   # the bad region was not written
            assert server.errors[-1].code == "arvmChannelFrameCorrupt"
            assert isinstance(server.errors[-1], ChannelError)
            with pytest.raises(CommunicationError):
                await session.send_region("t1", "vol1", 0, b"x" * 10, Priority.HIGH)
    asyncio.run(main())


def test_batched_regions_arrive_byte_identical_in_one_frame():
    async def main():
        rec = Recorder()
        async with channel(rec) as (_, session):
            await session.call("echo", {})  # the server's reply shows it speaks 1.1
            assert session.peer_minor >= frames.REGIONS_MINOR
            rnd = os.urandom(64 * 1024)
            text = b"compressible text " * 4000
            batch = [(0, rnd), (10 * MiB, bytes(64 * 1024)), (20 * MiB, text), (30 * MiB, memoryview(b"tail"))]
            sent_before = session.bytes_sent
            wire = await session.send_regions("t1", "vol1", batch, Priority.MEDIUM)
            frame_bytes = session.bytes_sent - sent_before
            await session.call("count", {})
            got = {r[2]: r for r in rec.regions}
            assert got[0][4] == rnd
            assert got[10 * MiB][4] is None and got[10 * MiB][3] == 64 * 1024  # zero marker
            assert bytes(got[20 * MiB][4]) == text and bytes(got[30 * MiB][4]) == b"tail"
            # one frame: one 16-byte header, and less than four single-region frames would cost
            assert frame_bytes == wire
            assert wire < len(rnd) + len(text) // 4 + 200
    asyncio.run(main())


def test_batched_regions_fall_back_to_single_frames_for_an_old_peer():
    async def main():
        rec = Recorder()
        async with channel(rec) as (_, session):
            session.peer_minor = 0  # as if the peer spoke protocol 1.0
            await session.send_regions("t1", "vol1", [(0, b"a" * 100), (65536, b"b" * 100)], Priority.MEDIUM)
            await session.call("count", {})
            assert [(r[2], bytes(r[4])) for r in rec.regions] == [(0, b"a" * 100), (65536, b"b" * 100)]
    asyncio.run(main())


def test_corrupt_batched_frame_writes_none_of_its_regions():
    async def main():
        rec = Recorder()
        async with proxied_channel(rec) as (_, proxy, session):
            await session.call("count", {})
            proxy.arm(100_000)  # inside the second region's data
            await session.send_regions("t1", "vol1", [(0, os.urandom(65536)), (MiB, os.urandom(65536))],
                                       Priority.HIGH)
            with pytest.raises(CommunicationError) as info:
                await session.call("count", {}, timeout=5)
            assert info.value.code == "arvmChannelFrameCorrupt" and "REGIONS" in info.value.message
            assert rec.regions == []  # not even the intact first region was written
    asyncio.run(main())


def test_call_after_regions_sees_all_regions():
    async def main():
        rec = Recorder(region_delay=0.002)
        async with channel(rec) as (_, session):
            for i in range(40):
                await session.send_region("t1", "vol1", i * 8192, os.urandom(8192), Priority.LOW)
            assert await session.call("count", {}) == {"regions": 40, "bytes": 40 * 8192}
            assert [r[2] for r in rec.regions] == [i * 8192 for i in range(40)]
    asyncio.run(main())


def test_failed_region_blocks_the_commit_of_its_transfer():
    async def main():
        async with channel() as (_, session):
            await session.send_region("t1", "failing", 0, b"x" * 4096, Priority.MEDIUM)
            with pytest.raises(MirrorError) as info:
                await session.call("commit", {"transfer": "t1"})
            assert info.value.code == "arvmRemoteInternalError"
            assert "Input/output error" in info.value.message
            with pytest.raises(MirrorError):
                await session.send_region("t1", "vol1", 0, b"y" * 4096, Priority.MEDIUM)
            # Other transfers are not affected.
            await session.send_region("t2", "vol1", 0, b"y" * 4096, Priority.MEDIUM)
            assert (await session.call("count", {"transfer": "t2"}))["regions"] == 1
    asyncio.run(main())


# -- failures of the link -----------------------------------------------------------

def test_connection_drop_fails_pending_calls_promptly():
    async def main():
        async with started_server() as server:
            proxy = Proxy(server.port)
            port = await proxy.start()
            session = await ChannelClient.connect([("127.0.0.1", port)], "A", "B", PASSWORD, 5)
            try:
                pending = [asyncio.create_task(session.call("sleep", {"seconds": 30}))
                           for _ in range(3)]
                await asyncio.sleep(0.1)
                start = time.monotonic()
                proxy.cut()
                results = await asyncio.gather(*pending, return_exceptions=True)
                assert time.monotonic() - start < 1.0
                for r in results:
                    assert isinstance(r, CommunicationError) and "'B'" in r.message
                assert session.closed
                with pytest.raises(CommunicationError):
                    await session.call("echo", {})
            finally:
                await session.close()
                await proxy.stop()
    asyncio.run(main())


def test_address_list_falls_back_to_the_next_address():
    async def main():
        async with started_server() as server:
            dead = free_port()
            session = await ChannelClient.connect(
                [("127.0.0.1", dead), ("127.0.0.1", server.port)], "A", "B", PASSWORD, 5)
            assert (await session.call("echo", {}))["peer"] == "A"
            await session.close()
            with pytest.raises(CommunicationError) as info:
                await ChannelClient.connect([("127.0.0.1", dead), ("127.0.0.1", free_port())],
                                            "A", "B", PASSWORD, 5)
            assert info.value.code == "arvmRemoteArrayUnreachable"
            assert str(dead) in info.value.message and "'B'" in info.value.message

            async def web_server(reader, writer):   # something else listens there
                writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                await writer.drain()
                writer.close()
            other = await asyncio.start_server(web_server, "127.0.0.1", 0)
            try:
                session = await ChannelClient.connect(
                    [("127.0.0.1", other.sockets[0].getsockname()[1]),
                     ("127.0.0.1", server.port)], "A", "B", PASSWORD, 5)
                await session.close()
            finally:
                other.close()
                await other.wait_closed()
    asyncio.run(main())


def test_server_stop_closes_sessions():
    async def main():
        async with channel() as (server, session):
            await server.stop()
            with pytest.raises(CommunicationError):
                await session.call("echo", {}, timeout=5)
            assert session.closed
    asyncio.run(main())


# -- bandwidth --------------------------------------------------------------------

def test_priorities_share_a_limited_link_by_weight():
    async def main():
        rate = 4 * MiB
        sched = LinkScheduler(rate=rate)
        async with channel(Recorder(keep_data=False), scheduler=sched) as (_, session):
            chunk = os.urandom(32 * 1024)
            deadline = time.monotonic() + 2.0

            async def sender(transfer, priority):
                while time.monotonic() < deadline:
                    await session.send_region(transfer, "vol", 0, chunk, priority)

            start = time.monotonic()
            await asyncio.gather(sender("high", Priority.HIGHEST), sender("low", Priority.LOWEST))
            elapsed = time.monotonic() - start
            high, low = sched.total_bytes("high"), sched.total_bytes("low")
            rates = sched.throughputs()
            print(f"\nshares: high {high} B, low {low} B, ratio {high / low:.1f}, "
                  f"link {(high + low) / elapsed / MiB:.2f} MiB/s, meters {rates}")
            assert 11 <= high / low <= 22
            assert 0.7 * rate <= (high + low) / elapsed <= 1.2 * rate
            assert rates["high"] > 8 * rates["low"] > 0
    asyncio.run(main())


def test_ping_and_bandwidth_measurement():
    async def main():
        async with channel() as (_, session):
            rtt = await session.ping()
            bw = await session.measure_bandwidth(8 * MiB)
            assert 0 < rtt < 0.5 and bw > 10 * MiB
    asyncio.run(main())


# -- TLS --------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_channel(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

    async def main():
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        client_ctx = ssl.create_default_context(cafile=str(cert))
        rec = Recorder()
        async with started_server(rec, ssl=server_ctx) as server:
            session = await ChannelClient.connect([("127.0.0.1", server.port)], "A", "B",
                                                  PASSWORD, 5, ssl=client_ctx)
            data = bytearray(os.urandom(MiB))
            await session.send_region("t", "v", 0, memoryview(data), Priority.HIGH)
            data[:] = bytes(MiB)      # reusing the buffer must not change what was sent
            await session.call("count", {})
            assert rec.regions[0][4] != bytes(MiB) and len(rec.regions[0][4]) == MiB
            await session.close()
    asyncio.run(main())


# -- throughput (printed, not asserted) ----------------------------------------------

def test_throughput_sanity(capsys):
    async def main():
        async with channel(Recorder(keep_data=False)) as (_, session):
            data = [os.urandom(MiB) for _ in range(8)]
            total = 256
            start = time.perf_counter()
            for i in range(total):
                await session.send_region("bulk", "vol", i * MiB, data[i % 8], Priority.HIGH)
            await session.call("count", {})
            elapsed = time.perf_counter() - start
            return total * MiB / elapsed / 1e6
    mbps = asyncio.run(main())
    with capsys.disabled():
        print(f"\nchannel throughput: 256 MiB of random 1 MiB regions in one session: "
              f"{mbps:.0f} MB/s")
