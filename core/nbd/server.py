"""A lean asyncio NBD server: fixed newstyle handshake, simple replies.

The handshake's options are answered by ``core.nbd.negotiation``; this module holds the
connection (its buffers, flow control and limits) and the request loop.

One :class:`_NbdConnection` per client, an ``asyncio.BufferedProtocol`` that parses
requests straight out of its own receive buffer: small requests are handled in
place (``struct.unpack_from`` and memoryview slices, no copies), large write
payloads are received directly into a per-connection payload buffer, and all
replies produced by one receive are sent with a single ``transport.write``.
Backend calls are synchronous on the loop thread, in request order.

A backend may be told about writes before they run (``intend_writes``, optional): a
mirrored volume then makes its write-intent bits durable first. When it answers
with an awaitable, the connection holds its requests (stops reading, keeps order)
until that is done, and the loop serves everyone else meanwhile; a large write is
announced as soon as its header arrives, so the wait overlaps its payload.

A misbehaving client (bad magic, garbage, oversize payload, disconnect mid-request)
only ever loses its own connection. Greedy or idle ones cannot pile up either: a
client has ``handshake_timeout`` seconds to choose an export, connections are capped
per export and in total, and a connection only gets its full receive buffer once it
chose an export (500 idle sockets cost 263 MiB when every one had it at once). Each
refusal and time-out is logged in one line.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from urllib.parse import quote

from core.errors import InvalidInput

from . import protocol as P
from .backend import ExportBackend, ExportProvider
from .negotiation import CLOSE, Negotiation

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0         # seconds from connecting to choosing an export
MAX_CONNECTIONS = 256            # every connection, negotiating or not
MAX_CONNECTIONS_PER_EXPORT = 32  # nbdcopy opens 4, fio one per job

_BUFFER_SIZE = 512 * 1024     # receive buffer for headers and small requests
_HANDSHAKE_BUFFER = 128 * 1024  # until an export is chosen: holds the largest option
_COMPACT_BELOW = 64 * 1024    # keep at least this much free space at the tail
_WRITE_HIGH = 4 * 1024 * 1024  # reply bytes buffered before we stop reading requests
_WRITE_LOW = 1024 * 1024

_S_FLAGS, _S_OPTIONS, _S_TRANSMISSION, _S_PAYLOAD, _S_CLOSED = range(5)


class NbdServer:
    """Serves the exports of an :class:`ExportProvider` over TCP.

    ``await start()`` binds (``port=0`` picks a free port, read it from ``port``);
    ``await stop()`` stops listening and closes every client connection.

    ``handshake_timeout`` closes a client that has not chosen an export in time;
    beyond ``max_connections`` a new connection is closed before the greeting, and
    beyond ``max_connections_per_export`` NBD_OPT_GO is answered NBD_REP_ERR_POLICY
    (clients show its message). Connected clients are never timed out: a kernel
    nbd-client may rightly sit idle for hours.
    """

    def __init__(self, provider: ExportProvider, host: str = "127.0.0.1", port: int = 0, *,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                 max_connections_per_export: int = MAX_CONNECTIONS_PER_EXPORT):
        if not 0 <= port <= 65535:
            raise InvalidInput(f"NBD port {port} is not a TCP port; give 1 to 65535, or 0 for a free one",
                               code="invalidPort")
        self.provider = provider
        self.host = host
        self.port = port
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.max_connections_per_export = max_connections_per_export
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_NbdConnection] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _NbdConnection(self), self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("NBD server listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        # Let connection_lost callbacks run so no transport outlives the server.
        for _ in range(3):
            if not self._connections:
                break
            await asyncio.sleep(0)

    async def __aenter__(self) -> "NbdServer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connections_to(self, name: str) -> int:
        """Connections that chose export ``name`` (negotiating ones are not counted)."""
        return sum(1 for c in self._connections if c.export_name == name)

    def uri(self, export_name: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nbd://{host}:{self.port}/{quote(export_name, safe='')}"

    def export(self, name: str) -> ExportBackend | None:
        """The export a client's option names (the handshake asks, ``core.nbd.negotiation``)."""
        backend = self.provider.lookup(name)
        if backend is None and name == "":
            # The empty name is the default export (clients send it for a URI
            # without a path); it is unambiguous when there is only one export.
            names = self.provider.names()
            if len(names) == 1:
                backend = self.provider.lookup(names[0])
        return backend


class _NbdConnection(asyncio.BufferedProtocol):
    """One client: handshake, then the request loop."""

    def __init__(self, server: NbdServer):
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray(_HANDSHAKE_BUFFER)  # grows to _BUFFER_SIZE once an export is chosen
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._state = _S_FLAGS
        self._no_zeroes = False
        self._negotiation: Negotiation | None = None  # made with the first option
        self._backend: ExportBackend | None = None
        self._out: list[bytes] = []
        # A write whose payload is being received into its own buffer.
        self._payload = bytearray()
        self._payload_view = memoryview(self._payload)
        self._payload_fill = 0
        self._pending: tuple[int, int, int, int] | None = None
        self._peer = None
        self._blocked = False  # requests wait in the buffer until replies drain
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._held: asyncio.Future | None = None  # requests wait for the backend (intend_writes)
        self._payload_wait: asyncio.Future | None = None  # what the write being received waits for

    @property
    def export_name(self) -> str | None:
        return self._backend.name if self._backend is not None else None

    # -- asyncio callbacks --------------------------------------------------
    def connection_made(self, transport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "an unknown address")
        server = self._server
        if len(server._connections) >= server.max_connections:
            log.warning("NBD: refused a connection from %s: %d connections open (limit %d)",
                        self._peer, len(server._connections), server.max_connections)
            self._state = _S_CLOSED
            transport.abort()  # before the greeting: the protocol has no earlier way to say no
            return
        self._handshake_timer = asyncio.get_running_loop().call_later(server.handshake_timeout,
                                                                      self._handshake_timed_out)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        transport.set_write_buffer_limits(high=_WRITE_HIGH, low=_WRITE_LOW)
        self._server._connections.add(self)
        transport.write(P.GREETING.pack(P.NBDMAGIC, P.IHAVEOPT,
                                        P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES))

    def connection_lost(self, exc) -> None:
        self._state = _S_CLOSED
        self._cancel_handshake_timer()
        self._server._connections.discard(self)
        self._backend = None
        self._pending = None
        for wait in (self._held, self._payload_wait):
            if wait is not None and not wait.done():
                wait.add_done_callback(_consume)  # nobody waits any more: no "never retrieved" noise

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop reading its requests.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is None or self._state == _S_CLOSED:
            return
        if self._blocked:
            self._blocked = False
            self.buffer_updated(0)  # answer the requests left waiting
            if self._blocked or self._state == _S_CLOSED:
                return
        if self._held is None:
            self._transport.resume_reading()

    def get_buffer(self, sizehint: int):
        if self._state == _S_PAYLOAD:
            return self._payload_view[self._payload_fill:self._pending[3]]
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._buf) - self._end < _COMPACT_BELOW:
            self._compact()
        return self._view[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._state == _S_CLOSED:
            return
        if self._held is not None:  # bytes read before the pause took effect: they wait too
            if self._state == _S_PAYLOAD:
                self._payload_fill += nbytes
            else:
                self._end += nbytes
            return
        try:
            if self._state == _S_PAYLOAD:
                self._payload_fill += nbytes
                if self._payload_fill < self._pending[3]:
                    return
                self._finish_payload_write()
            else:
                self._end += nbytes
                if self._state == _S_TRANSMISSION:
                    self._process_requests()
                else:
                    self._process_handshake()
        except Exception:  # a bug must cost one connection, never the server
            log.exception("NBD connection from %s failed; closing it", self._peer)
            self._out.clear()
            self.abort()
            return
        self._flush_out()

    def eof_received(self):
        return False  # close our side too

    # -- waiting for the backend (intend_writes) ------------------------------
    def _hold(self, wait) -> None:
        """Stop handling requests until ``wait`` is done; order is kept (nothing else runs first)."""
        self._held = wait
        self._transport.pause_reading()
        wait.add_done_callback(self._release)

    def _release(self, wait) -> None:
        self._held = None
        # A failure shows in the writes themselves: run them unannounced, each marks the
        # log on its own and reports the error (announcing again would retry forever).
        failed = _consume(wait)
        if self._state == _S_CLOSED or self._transport is None:
            return
        try:
            if self._pending is not None and self._state == _S_PAYLOAD:
                self._finish_payload_write()
            if self._held is None and self._state == _S_TRANSMISSION:
                self._process_requests(announce=not failed)
        except Exception:
            log.exception("NBD connection from %s failed; closing it", self._peer)
            self._out.clear()
            self.abort()
            return
        self._flush_out()
        if self._held is None and not self._blocked and self._state != _S_CLOSED:
            self._transport.resume_reading()

    # -- helpers ------------------------------------------------------------
    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._state in (_S_FLAGS, _S_OPTIONS):
            log.warning("NBD: closed the connection from %s: no export chosen within %g s",
                        self._peer, self._server.handshake_timeout)
            self.abort()

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def abort(self) -> None:
        self._state = _S_CLOSED
        if self._transport is not None:
            self._transport.abort()

    def _close(self) -> None:
        """Send what is queued, then close (a protocol error or a goodbye)."""
        self._flush_out()
        self._state = _S_CLOSED
        if self._transport is not None:
            self._transport.close()

    def _flush_out(self) -> None:
        out = self._out
        if out:
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def _compact(self) -> None:
        start, end = self._start, self._end
        if start:
            self._buf[0:end - start] = self._buf[start:end]
            self._start, self._end = 0, end - start

    def _room_for(self, need: int) -> None:
        """Make sure a message of ``need`` bytes from ``_start`` fits in the buffer."""
        if self._start + need > len(self._buf):
            self._compact()

    # -- handshake ----------------------------------------------------------
    def _process_handshake(self) -> None:
        buf = self._buf
        while self._state in (_S_FLAGS, _S_OPTIONS):
            avail = self._end - self._start
            if self._state == _S_FLAGS:
                if avail < 4:
                    return
                (flags,) = P.CLIENT_FLAGS.unpack_from(buf, self._start)
                self._start += 4
                if flags & ~P.KNOWN_CLIENT_FLAGS:
                    return self._close()
                self._no_zeroes = bool(flags & P.CLIENT_FLAG_NO_ZEROES)
                self._state = _S_OPTIONS
                continue
            if avail < 16:
                return
            magic, opt, length = P.OPTION_HEADER.unpack_from(buf, self._start)
            if magic != P.IHAVEOPT or length > P.MAX_OPTION_LENGTH:
                return self._close()
            if avail < 16 + length:
                self._room_for(16 + length)
                return
            data = bytes(buf[self._start + 16:self._start + 16 + length])
            self._start += 16 + length
            self._handle_option(opt, data)
        if self._state == _S_TRANSMISSION and self._end > self._start:
            self._process_requests()  # a pipelining client sent requests already

    def _handle_option(self, opt: int, data: bytes) -> None:
        if self._negotiation is None:
            self._negotiation = Negotiation(self._server, self._peer, self._out, self._no_zeroes)
        outcome = self._negotiation.option(opt, data)
        if outcome is CLOSE:
            self._close()
        elif outcome is not None:
            self._enter_transmission(outcome)

    def _enter_transmission(self, backend: ExportBackend) -> None:
        self._cancel_handshake_timer()
        self._backend = backend
        self._state = _S_TRANSMISSION
        if len(self._buf) < _BUFFER_SIZE:  # room for pipelined requests; keep what already arrived
            pending = self._buf[self._start:self._end]
            self._buf = bytearray(_BUFFER_SIZE)
            self._buf[:len(pending)] = pending
            self._view = memoryview(self._buf)
            self._start, self._end = 0, len(pending)

    # -- transmission -------------------------------------------------------
    def _process_requests(self, announce: bool = True) -> None:
        """Handle every complete request in the buffer (the hot path)."""
        buf = self._buf
        view = self._view
        out = self._out
        unpack = P.REQUEST.unpack_from
        pack_reply = P.SIMPLE_REPLY.pack
        RMAGIC = P.REQUEST_MAGIC
        SMAGIC = P.SIMPLE_REPLY_MAGIC
        backend = self._backend
        size = backend.size
        start, end = self._start, self._end
        intend = getattr(backend, "intend_writes", None) if announce else None
        if intend is not None:
            wait = self._announce_writes(intend, start, end)
            if wait is not None:
                return self._hold(wait)
        queued = 0
        while end - start >= 28:
            magic, flags, cmd, cookie, offset, length = unpack(buf, start)
            if magic != RMAGIC:
                self._start = end
                log.info("NBD client %s sent a bad request magic; closing", self._peer)
                return self._close()
            if cmd == 1:  # NBD_CMD_WRITE: header and payload
                if length > P.MAX_PAYLOAD:
                    self._start = end
                    out.append(pack_reply(SMAGIC, P.NBD_EINVAL, cookie))
                    return self._close()  # cannot skip the payload safely
                total = 28 + length
                if end - start < total:
                    self._start = start
                    self._await_payload(flags, cookie, offset, length, total)
                    return
                data = view[start + 28:start + total]
                start += total
                if flags & ~1:
                    err = P.NBD_EINVAL
                elif offset + length > size:
                    err = P.NBD_ENOSPC
                else:
                    try:
                        if backend.read_only:
                            err = P.NBD_EPERM
                        else:
                            backend.write(offset, data, flags == 1)
                            err = 0
                    except Exception as exc:
                        err = P.error_code(exc)
                out.append(pack_reply(SMAGIC, err, cookie))
                continue
            start += 28
            if cmd == 0:  # NBD_CMD_READ
                if flags or length > P.MAX_PAYLOAD or offset + length > size:
                    out.append(pack_reply(SMAGIC, P.NBD_EINVAL, cookie))
                    continue
                try:
                    data = backend.read(offset, length)
                    err = 0 if len(data) == length else P.NBD_EIO
                except Exception as exc:
                    err = P.error_code(exc)
                out.append(pack_reply(SMAGIC, err, cookie))
                if not err:
                    out.append(data)
                    queued += length
                    if queued >= _WRITE_HIGH:
                        # A client that does not read its replies must not make us
                        # buffer a reply for every read it pipelined.
                        queued = 0
                        self._start = start
                        self._flush_out()
                        if self._transport.get_write_buffer_size() > _WRITE_HIGH:
                            self._blocked = True
                            self._transport.pause_reading()
                            return
            elif cmd == 2:  # NBD_CMD_DISC: no reply; earlier requests are done
                self._start = end
                return self._close()
            else:
                out.append(pack_reply(SMAGIC, self._other_command(cmd, flags, offset, length),
                                      cookie))
        self._start, self._end = start, end
        if start == end:
            self._start = self._end = 0

    def _announce_writes(self, intend, start: int, end: int) -> asyncio.Future | None:
        """Tell the backend every complete write-like request of the buffer before any runs.

        A mirrored volume then makes its change log durable once for the batch
        (ExportBackend.intend_writes is optional; see core.replication.host_volume).
        Returns what to wait for before running them, if anything.
        """
        buf, unpack = self._buf, P.REQUEST.unpack_from
        ranges = []
        while end - start >= 28:
            magic, _flags, cmd, _cookie, offset, length = unpack(buf, start)
            if magic != P.REQUEST_MAGIC:
                break
            if cmd == 1:
                if length > P.MAX_PAYLOAD or end - start < 28 + length:
                    break
                start += 28 + length
            else:
                start += 28
            if cmd in (1, 4, 6):  # WRITE, TRIM, WRITE_ZEROES
                ranges.append((offset, length))
        return _intend(intend, ranges, self._peer) if ranges else None

    def _other_command(self, cmd: int, flags: int, offset: int, length: int) -> int:
        """FLUSH, TRIM, WRITE_ZEROES and unknown commands; returns the error value."""
        allowed = P.ALLOWED_CMD_FLAGS.get(cmd)
        if allowed is None or flags & ~allowed:
            return P.NBD_EINVAL
        backend = self._backend
        try:
            if cmd == P.CMD_FLUSH:
                backend.flush()
                return 0
            if backend.read_only:
                return P.NBD_EPERM
            fua = bool(flags & P.CMD_FLAG_FUA)
            if cmd == P.CMD_TRIM:
                if offset + length > backend.size:
                    return P.NBD_EINVAL
                if length:
                    backend.trim(offset, length)
                if fua:
                    backend.flush()
                return 0
            # NBD_CMD_WRITE_ZEROES; NO_HOLE is accepted, the backend never
            # needs a hole to return zeroes.
            if offset + length > backend.size:
                return P.NBD_ENOSPC
            if length:
                backend.write_zeroes(offset, length, fua)
            return 0
        except Exception as exc:
            return P.error_code(exc)

    def _await_payload(self, flags: int, cookie: int, offset: int, length: int,
                       total: int) -> None:
        """A write is incomplete: wait in place, or receive it into its own buffer."""
        if self._start + total <= len(self._buf):
            return
        if total <= len(self._buf) // 2:
            self._compact()
            return
        if len(self._payload) < length:
            self._payload = bytearray(length)
            self._payload_view = memoryview(self._payload)
        have = self._end - self._start - 28
        if have:
            self._payload_view[:have] = self._view[self._start + 28:self._end]
        self._payload_fill = have
        self._pending = (flags, cookie, offset, length)
        self._start = self._end = 0
        self._state = _S_PAYLOAD
        intend = getattr(self._backend, "intend_writes", None)
        if intend is not None and not flags & ~P.CMD_FLAG_FUA and offset + length <= self._backend.size:
            self._payload_wait = _intend(intend, [(offset, length)], self._peer)  # overlaps the payload

    def _finish_payload_write(self) -> None:
        wait, self._payload_wait = self._payload_wait, None
        if wait is not None and not wait.done():
            return self._hold(wait)  # _release comes back here
        flags, cookie, offset, length = self._pending
        self._pending = None
        self._state = _S_TRANSMISSION
        backend = self._backend
        if flags & ~P.CMD_FLAG_FUA:
            err = P.NBD_EINVAL
        elif offset + length > backend.size:
            err = P.NBD_ENOSPC
        else:
            data = self._payload_view[:length]
            try:
                if backend.read_only:
                    err = P.NBD_EPERM
                else:
                    backend.write(offset, data, bool(flags & P.CMD_FLAG_FUA))
                    err = 0
            except Exception as exc:
                err = P.error_code(exc)
        self._out.append(P.SIMPLE_REPLY.pack(P.SIMPLE_REPLY_MAGIC, err, cookie))



def _intend(intend, ranges, peer) -> asyncio.Future | None:
    """Announce writes to a backend; a future to wait for when it asks for one."""
    try:
        wait = intend(ranges)
    except Exception:  # the writes themselves report any error
        log.exception("announcing writes to %s failed", peer)
        return None
    if wait is None:
        return None
    return asyncio.ensure_future(wait)


def _consume(wait: asyncio.Future) -> bool:
    """Retrieve a finished wait's outcome (no 'never retrieved' warning); True if it failed."""
    return wait.cancelled() or wait.exception() is not None
