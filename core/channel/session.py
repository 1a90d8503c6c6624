"""Sessions of the mirroring channel over asyncio streams (SPEC §3).

One authenticated TCP (optionally TLS) connection per direction: each array
connects to the other for its own requests. A :class:`Session` multiplexes JSON
calls by request id and carries region data. The receiver handles frames strictly
in order and awaits each handler before reading the next frame, so a
``call("commit")`` sent after ``send_region`` calls is handled after all those
regions were written: the secondary never commits a recovery point with regions
still in flight.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import struct
import time
from typing import Any, Protocol

from zlib_ng.zlib_ng import crc32  # zlib's CRC-32, faster (pyproject.toml)

from core.channel import frames
from core.channel.bandwidth import LinkScheduler
from core.channel.codec import CodecStats, RegionDecoder, RegionEncoder
from core.channel.frames import ChannelError, FrameType
from core.channel.reader import ChannelReader
from core.channel.stream import STREAM_LIMIT  # noqa: F401  (the session's reader limit, after login)
from core.domain import Priority
from core.errors import CommunicationError, MirrorError

WRITE_HIGH_WATER = 4 * 1024 * 1024    # a few regions queue while the next is encoded
                                      # (measured: 64 KiB halves loopback throughput)
SMALL_FRAME = 64 * 1024               # below this, join header and body in one write
# A REGIONS frame with at least this much data is encoded (zstd, CRC32) on a worker thread:
# both release the GIL, and on the loop they made mirrored host writes wait (issue 14).
OFFLOAD_BYTES = 256 * 1024
DEFAULT_CALL_TIMEOUT = 60.0
REMOTE_INTERNAL = "arvmRemoteInternalError"
BANDWIDTH_SENDER = "(bandwidth test)"
_PING = struct.Struct("!Q")


class ChannelHandler(Protocol):
    """What a receiving array implements; the session awaits each call in order."""

    async def handle_call(self, peer: str, method: str, params: dict) -> dict: ...

    async def handle_region(self, peer: str, transfer: str, volume: str, offset: int,
                            length: int, data: bytes | None) -> None: ...

    # Optional: ``handle_regions(peer, transfer, volume, [(offset, length, data), ...])``
    # takes a whole REGIONS frame at once; without it each region goes to handle_region.


def _error_classes(base: type = MirrorError) -> dict[str, type]:
    found: dict[str, type] = {}
    for sub in base.__subclasses__():
        found.setdefault(getattr(sub, "code", ""), sub)
        for code, cls in _error_classes(sub).items():
            found.setdefault(code, cls)
    return found


def remote_error(code: str, message: str) -> MirrorError:
    """Rebuild a remote MirrorError: same code, same message, same class when known."""
    cls = _error_classes().get(code, MirrorError)
    try:
        return cls(message, code=code)
    except Exception:  # a subclass with its own constructor: the code is what matters
        return MirrorError(message, code=code)


def _tune_socket(writer: asyncio.StreamWriter) -> None:
    """Notice a dead peer within ~30 s even when no data is flowing."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, val in (("TCP_KEEPIDLE", 15), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), val)
    writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)


class Session:
    """An authenticated channel to one remote array (either end of the connection).

    Public: :meth:`call`, :meth:`send_region`, :meth:`ping`,
    :meth:`measure_bandwidth`, :meth:`close`, :attr:`closed`,
    :attr:`close_reason`, :attr:`bytes_sent`, :attr:`bytes_received`,
    :attr:`codec_stats`, :attr:`scheduler`.
    """

    def __init__(self, reader: ChannelReader, writer: asyncio.StreamWriter,
                 local_name: str, peer: str, handler: ChannelHandler | None = None,
                 scheduler: LinkScheduler | None = None, on_closed=None):
        self.local_name = local_name
        self.peer = peer
        self.handler = handler
        self.scheduler = scheduler or LinkScheduler()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.peer_minor = 0  # highest minor protocol version seen in the peer's frames
        self.close_reason: MirrorError | None = None
        self._reader = reader
        self._writer = writer
        self._tls = writer.get_extra_info("sslcontext") is not None
        self._on_closed = on_closed
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._encoders: dict[str, RegionEncoder] = {}
        self._retired_stats = CodecStats()
        self._decoder = RegionDecoder()
        self._failed_out: dict[str, MirrorError] = {}  # our transfers the peer failed
        self._failed_in: dict[str, MirrorError] = {}   # peer's transfers we failed
        self._closed = False
        self._closed_event = asyncio.Event()
        _tune_socket(writer)
        self._task = asyncio.get_running_loop().create_task(
            self._read_loop(), name=f"channel reader {local_name}<-{peer}")

    # -- state ------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def codec_stats(self) -> CodecStats:
        """Raw and wire bytes per kind of region, over all transfers of this session."""
        total = CodecStats()
        total.add(self._retired_stats)
        for enc in self._encoders.values():
            total.add(enc.stats)
        return total

    def data_bytes(self, transfer: str) -> int:
        """Raw bytes of ``transfer`` this session sent that were not zeros (what the peer stages)."""
        enc = self._encoders.get(transfer)
        return enc.stats.raw_bytes - enc.stats.zero_bytes if enc is not None else 0

    def forget_transfer(self, transfer: str) -> None:
        """A transfer finished: drop its encoder state and failure record."""
        enc = self._encoders.pop(transfer, None)
        if enc is not None:
            self._retired_stats.add(enc.stats)
        self._failed_out.pop(transfer, None)
        self.scheduler.forget(transfer)

    def _lost(self, why: str) -> CommunicationError:
        return CommunicationError(f"Lost the mirroring channel to remote array "
                                  f"'{self.peer}': {why}")

    def _check_open(self) -> None:
        if self._closed:
            raise self.close_reason or self._lost("the session is closed")

    # -- sending ----------------------------------------------------------
    def _write(self, *parts) -> None:
        """Write one whole frame. No await between parts: frames never interleave."""
        for part in parts:
            self._writer.write(part)
            self.bytes_sent += len(part)

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._fail(self._lost(f"connection lost ({exc})"))
        self._check_open()

    async def call(self, method: str, params: dict | None = None,
                   timeout: float = DEFAULT_CALL_TIMEOUT) -> dict:
        """Call ``method`` on the remote array and return its JSON result.

        A MirrorError raised by the remote handler is raised here with the same
        code and message; anything else as ``arvmRemoteInternalError``.
        """
        self._check_open()
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            self._write(frames.json_frame(FrameType.REQUEST,
                                          {"id": rid, "method": method, "params": params or {}}))
            await self._drain()
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise CommunicationError(
                    f"Remote array '{self.peer}' did not answer '{method}' within "
                    f"{timeout:g} s.", code="arvmRemoteTimeout") from None
        finally:
            self._forget(rid, fut)

    def _encoder(self, transfer: str) -> RegionEncoder:
        enc = self._encoders.get(transfer)
        if enc is None:
            enc = self._encoders[transfer] = RegionEncoder()
        return enc

    async def send_region(self, transfer: str, volume: str, offset: int,
                          data: bytes | bytearray | memoryview,
                          priority: Priority = Priority.MEDIUM) -> int:
        """Send one region of ``transfer``; returns the bytes it cost on the wire.

        Paced by the link scheduler at ``priority`` and flow-controlled, so when
        this returns the frame is handed to the kernel and ``data`` may be reused.
        """
        self._check_open()
        if transfer in self._failed_out:
            raise self._failed_out[transfer]
        enc = self._encoder(transfer).encode(data)
        body = enc.body
        if self._tls and isinstance(body, (memoryview, bytearray)):
            body = bytes(body)  # the TLS transport keeps a reference to what it is given
        prefix = frames.region_prefix(enc.flags, transfer.encode(), volume.encode(),
                                      offset, enc.raw_size, body)
        wire = len(prefix) + len(body)
        async with self.scheduler.transmit(transfer, priority, wire):
            self._check_open()
            if len(body) < SMALL_FRAME:
                self._write(prefix + body)
            else:
                self._write(prefix, body)
            await self._drain()
        return wire

    async def send_regions(self, transfer: str, volume: str,
                           regions: list[tuple[int, bytes | bytearray | memoryview]],
                           priority: Priority = Priority.MEDIUM) -> int:
        """Send several regions of one volume in one frame; returns the wire bytes.

        ``regions`` are ``(offset, data)``. A peer older than protocol 1.1 gets one
        REGION frame per region instead. Same pacing and flow control as
        :meth:`send_region`.
        """
        if self.peer_minor < frames.REGIONS_MINOR or len(regions) == 1:
            wire = 0
            for offset, data in regions:
                wire += await self.send_region(transfer, volume, offset, data, priority)
            return wire
        self._check_open()
        if transfer in self._failed_out:
            raise self._failed_out[transfer]
        wire = 0
        for start in range(0, len(regions), frames.MAX_SEGMENTS):
            encoder = self._encoder(transfer)  # one sender per transfer: never used by two threads at once
            chunk = regions[start:start + frames.MAX_SEGMENTS]
            if sum(len(data) for _, data in chunk) >= OFFLOAD_BYTES:
                prefix, bodies = await asyncio.to_thread(self._encode_frame, encoder, transfer, volume, chunk)
            else:
                prefix, bodies = self._encode_frame(encoder, transfer, volume, chunk)
            size = len(prefix) + sum(len(b) for b in bodies)
            async with self.scheduler.transmit(transfer, priority, size):
                self._check_open()
                self._write(prefix, *bodies)
                await self._drain()
            wire += size
        return wire

    def _encode_frame(self, encoder: RegionEncoder, transfer: str, volume: str, chunk) -> tuple[bytes, list]:
        """A REGIONS frame's prefix and bodies (pure CPU on immutable data: safe on a worker thread).

        Under TLS the frame is one buffer: asyncio's TLS layer encrypts and sends each write
        on its own, and a frame of a sync's dirty blocks has up to hundreds of 4 KiB bodies
        (issue 14: that was a tenth of the primary's event loop with a sync running). The
        join copies on the worker thread; the TLS layer copies anyway.
        """
        segments = []
        for offset, data in chunk:
            enc = encoder.encode(data)
            segments.append((offset, enc.raw_size, int(enc.flags), enc.body))
        prefix = frames.regions_prefix(transfer.encode(), volume.encode(), segments)
        bodies = [body for *_, body in segments if len(body)]
        if self._tls:
            return b"".join([prefix, *bodies]), []
        return prefix, bodies

    async def ping(self, timeout: float = 10.0) -> float:
        """Round-trip time in seconds (answered after every earlier frame was handled)."""
        self._check_open()
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        start = time.perf_counter()
        try:
            self._write(frames.raw_frame(FrameType.PING, _PING.pack(rid)))
            await self._drain()
            try:
                await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise CommunicationError(f"Remote array '{self.peer}' did not answer a "
                                         f"ping within {timeout:g} s.",
                                         code="arvmRemoteTimeout") from None
            return time.perf_counter() - start
        finally:
            self._forget(rid, fut)

    def _forget(self, rid: int, fut: asyncio.Future) -> None:
        self._pending.pop(rid, None)
        if fut.done() and not fut.cancelled():
            fut.exception()  # raised through another path; do not warn "never retrieved"

    async def measure_bandwidth(self, nbytes: int = 16 * 1024 * 1024,
                                priority: Priority = Priority.HIGHEST) -> float:
        """Bytes/s of incompressible data to the remote array, through the scheduler."""
        self._check_open()
        chunk = memoryview(os.urandom(min(nbytes, 1024 * 1024) or 1))
        start = time.perf_counter()
        left = nbytes
        while left > 0:
            body = chunk[:min(left, len(chunk))]
            head = frames.pack_header(FrameType.DISCARD, 0, len(body), crc32(body))
            async with self.scheduler.transmit(BANDWIDTH_SENDER, priority, len(body) + len(head)):
                self._check_open()
                self._write(head, body)
                await self._drain()
            left -= len(body)
        await self.ping()
        return nbytes / max(time.perf_counter() - start, 1e-9)

    # -- closing ----------------------------------------------------------
    def _fail(self, reason: MirrorError) -> None:
        """Close now: every pending call fails with ``reason``."""
        if self._closed:
            return
        self._closed = True
        self.close_reason = reason
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(reason)
        self._pending.clear()
        self._writer.close()
        if self._task is not asyncio.current_task():
            self._task.cancel()
        self._closed_event.set()
        if self._on_closed is not None:
            self._on_closed(self)

    async def close(self) -> None:
        """Close in order: tell the peer, fail what is pending, wait for the socket."""
        if not self._closed:
            with contextlib.suppress(Exception):
                self._write(frames.raw_frame(FrameType.CLOSE, b""))
            self._fail(CommunicationError(
                f"The mirroring channel to remote array '{self.peer}' was closed."))
        await self.wait_closed()

    async def wait_closed(self) -> None:
        await self._closed_event.wait()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- receiving --------------------------------------------------------
    async def _read_loop(self) -> None:
        label = f"remote array '{self.peer}'"
        read = self._reader.readexactly
        try:
            while True:
                head = await read(frames.HEADER_SIZE)
                ftype, flags, length, crc, minor = frames.parse_header(head, label)
                self.bytes_received += frames.HEADER_SIZE + length
                if minor > self.peer_minor:
                    self.peer_minor = minor
                if ftype == FrameType.REGION:
                    await self._read_region(label, flags, length, crc)
                    continue
                if ftype == FrameType.REGIONS:
                    await self._read_regions(label, length, crc)
                    continue
                if ftype == FrameType.DISCARD and length > SMALL_FRAME:  # bandwidth test data, like region data
                    payload = await self._reader.read_body(length)
                else:
                    payload = await read(length) if length else b""
                if crc32(payload) != crc:
                    raise frames.checksum_error(label, ftype)
                await self._dispatch(ftype, payload, label)
        except ChannelError as exc:
            # Tell the sender why before closing, so its calls fail with the cause.
            with contextlib.suppress(Exception):
                self._write(frames.json_frame(FrameType.ERROR,
                                              {"code": exc.code, "message": exc.message}))
            self._fail(exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            why = "the connection was closed" if isinstance(exc, asyncio.IncompleteReadError) \
                else f"connection lost ({exc})"
            self._fail(self._lost(why))
        except asyncio.CancelledError:
            self._fail(self._lost("the session was stopped"))
            raise
        except Exception as exc:  # a bug must not leave callers waiting forever
            self._fail(CommunicationError(
                f"Mirroring channel to remote array '{self.peer}' failed: "
                f"{type(exc).__name__}: {exc}", code=REMOTE_INTERNAL))

    async def _read_region(self, label: str, flags: int, length: int, crc: int) -> None:
        read = self._reader.readexactly
        if length < frames.REGION_SIZE:
            raise ChannelError(f"{label} sent a truncated region frame.",
                               code="arvmChannelFrameCorrupt")
        meta = await read(frames.REGION_SIZE)
        offset, raw_len, tlen, vlen = frames.parse_region_meta(meta)
        blen = length - frames.REGION_SIZE - tlen - vlen
        if blen < 0:
            raise ChannelError(f"{label} sent a region frame with bad name lengths.",
                               code="arvmChannelFrameCorrupt")
        names = await read(tlen + vlen)
        body = await self._reader.read_body(blen) if blen else b""
        if crc32(body, crc32(names, crc32(meta))) != crc:
            raise frames.checksum_error(label, FrameType.REGION)
        try:
            transfer, volume = names[:tlen].decode(), names[tlen:].decode()
        except UnicodeDecodeError:
            raise ChannelError(f"{label} sent a region with undecodable names.",
                               code="arvmChannelFrameCorrupt") from None
        data = self._decoder.decode(flags, raw_len, body, label)
        await self._deliver(transfer, volume, [(offset, raw_len, data)])

    async def _read_regions(self, label: str, length: int, crc: int) -> None:
        read = self._reader.readexactly
        corrupt = "arvmChannelFrameCorrupt"
        if length < frames.REGIONS.size:
            raise ChannelError(f"{label} sent a truncated regions frame.", code=corrupt)
        head = await read(frames.REGIONS.size)
        tlen, vlen, count = frames.REGIONS.unpack(head)
        seg_len = count * frames.SEGMENT.size
        if frames.REGIONS.size + tlen + vlen + seg_len > length:
            raise ChannelError(f"{label} sent a regions frame with bad header lengths.", code=corrupt)
        rest = await read(tlen + vlen + seg_len)
        segments = [frames.SEGMENT.unpack_from(rest, tlen + vlen + i * frames.SEGMENT.size) for i in range(count)]
        blen = length - frames.REGIONS.size - len(rest)
        if sum(s[3] for s in segments) != blen:
            raise ChannelError(f"{label} sent a regions frame whose bodies do not add up.", code=corrupt)
        body = await self._reader.read_body(blen) if blen else b""
        if crc32(body, crc32(rest, crc32(head))) != crc:
            raise frames.checksum_error(label, FrameType.REGIONS)
        try:
            transfer, volume = rest[:tlen].decode(), rest[tlen:tlen + vlen].decode()
        except UnicodeDecodeError:
            raise ChannelError(f"{label} sent regions with undecodable names.", code=corrupt) from None
        view, pos, regions = memoryview(body), 0, []
        for offset, raw_len, flags, size in segments:
            regions.append((offset, raw_len, self._decoder.decode(flags, raw_len, view[pos:pos + size], label)))
            pos += size
        await self._deliver(transfer, volume, regions)

    async def _deliver(self, transfer: str, volume: str, regions: list) -> None:
        """Hand ``(offset, length, data)`` regions to the handler; a failure fails the transfer."""
        if transfer in self._failed_in:
            return  # the transfer already failed here; its sender was told
        try:
            if self.handler is None:
                raise MirrorError(f"Array '{self.local_name}' does not accept region "
                                  f"data on this channel.", code=REMOTE_INTERNAL)
            batch = getattr(self.handler, "handle_regions", None)
            if batch is not None and len(regions) > 1:
                await batch(self.peer, transfer, volume, regions)
            else:
                for offset, raw_len, data in regions:
                    await self.handler.handle_region(self.peer, transfer, volume, offset, raw_len, data)
        except Exception as exc:
            where = f"region {regions[0][0]}" if len(regions) == 1 else f"{len(regions)} regions"
            err = self._as_remote_error(exc, f"writing {where} of volume '{volume}'")
            self._failed_in[transfer] = err
            self._write(frames.json_frame(FrameType.REGION_FAILED, {
                "transfer": transfer, "code": err.code, "message": err.message}))

    def _as_remote_error(self, exc: BaseException, what: str) -> MirrorError:
        if isinstance(exc, MirrorError):
            return exc
        return MirrorError(f"Array '{self.local_name}' failed {what}: "
                           f"{type(exc).__name__}: {exc}", code=REMOTE_INTERNAL)

    async def _dispatch(self, ftype: int, payload: bytes, label: str) -> None:
        if ftype == FrameType.REQUEST:
            await self._handle_request(frames.parse_json(payload, label))
        elif ftype == FrameType.RESPONSE:
            msg = frames.parse_json(payload, label)
            fut = self._pending.get(msg.get("id"))
            if fut is not None and not fut.done():
                if "error" in msg:
                    err = msg["error"]
                    fut.set_exception(remote_error(str(err.get("code")), str(err.get("message"))))
                else:
                    fut.set_result(msg.get("result"))
        elif ftype == FrameType.PING:
            self._write(frames.raw_frame(FrameType.PONG, payload))
        elif ftype == FrameType.PONG:
            if len(payload) != _PING.size:
                raise ChannelError(f"{label} sent a PONG of {len(payload)} bytes; a PONG carries {_PING.size}.")
            (rid,) = _PING.unpack(payload)
            fut = self._pending.get(rid)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif ftype == FrameType.DISCARD:
            pass
        elif ftype == FrameType.REGION_FAILED:
            msg = frames.parse_json(payload, label)
            self._failed_out[str(msg.get("transfer"))] = remote_error(
                str(msg.get("code")), str(msg.get("message")))
        elif ftype == FrameType.CLOSE:
            self._fail(CommunicationError(
                f"Remote array '{self.peer}' closed the mirroring channel."))
        elif ftype == FrameType.ERROR:
            msg = frames.parse_json(payload, label)
            self._fail(CommunicationError(
                f"Remote array '{self.peer}' closed the mirroring channel: "
                f"{msg.get('message')}", code=str(msg.get("code") or CommunicationError.code)))
        else:
            raise ChannelError(f"{label} sent an unexpected {FrameType(ftype).name} frame.")

    async def _handle_request(self, msg: dict) -> None:
        rid, method = msg.get("id"), str(msg.get("method"))
        params = msg.get("params") or {}
        try:
            transfer = params.get("transfer") if isinstance(params, dict) else None
            if isinstance(transfer, str) and transfer in self._failed_in:
                # A region of this transfer was not written: never let it commit.
                raise self._failed_in[transfer]
            if self.handler is None:
                raise MirrorError(f"Array '{self.local_name}' does not accept requests "
                                  f"on this channel.", code=REMOTE_INTERNAL)
            result = await self.handler.handle_call(self.peer, method, params)
            reply: dict[str, Any] = {"id": rid, "result": result if result is not None else {}}
            frame = frames.json_frame(FrameType.RESPONSE, reply)
        except Exception as exc:
            err = self._as_remote_error(exc, f"'{method}'")
            frame = frames.json_frame(FrameType.RESPONSE, {
                "id": rid, "error": {"code": err.code, "message": err.message}})
        if not self._closed:
            self._write(frame)


# -- connecting -----------------------------------------------------------------
