"""The lab link: a TCP relay on the mirroring channel that really cuts, throttles and delays it.

Each lab array's remote-array entries point at the relay's port for the other
array, so every channel byte between the arrays crosses this relay, and a fault
happens to the real TCP path (DESIGN: no "is the lab pretending?" branches):

- :meth:`LinkRelay.cut` resets every relayed connection at once (both arrays see
  the path die) and closes new ones as soon as they are accepted, until
  :meth:`LinkRelay.restore`;
- :meth:`LinkRelay.set` limits each direction of each route to a bandwidth (token
  bucket) and delays every chunk by a latency, in order, for open connections too.

Bytes are moved in the kernel: each direction of a connection splices from one
socket into a pipe and from the pipe into the other socket (``splice(2)``), so the
relay neither copies nor holds the channel's bytes in Python, and a lab sync does
not pay a third process's copies on the machine's cores. The pipe is the delay
queue: what is read waits there until its delivery time, in order. Memory stays
bounded by the pipe (:data:`PIPE_BYTES`, or the size an unprivileged process may
have); a full pipe stops reading, so TCP flow control pushes back on the sender.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Callable

from core.lab.shaping import TokenBucket, check_bandwidth, check_latency
from core.units import MiB

log = logging.getLogger(__name__)

PIPE_BYTES = 8 * MiB  # in flight per direction: enough for 250 MiB/s at 30 ms (1 MiB when not root)
CONNECT_TIMEOUT = 5.0
# The kernel's receive buffer on the relay's side of each dialled connection. Left to
# autotuning, loopback buffers grow to megabytes, and a throttled link would swallow a
# whole sync at once: the sender would count it sent while it trickles through for
# seconds. A slow link pushes back on its sender; so does a small buffer.
RECEIVE_BUFFER = 128 * 1024
KEEP = object()  # LinkRelay.set: leave this setting as it is
_SPLICE = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK

_EXPECTED = (OSError, asyncio.TimeoutError)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address '{address}' is not host:port")
    return host.strip("[]"), int(port)


@dataclass
class _Route:
    """Connections to one array's channel: where to listen, where to forward, counters."""

    name: str
    target: str
    port: int = 0
    listener: socket.socket | None = None
    acceptor: asyncio.Task | None = None
    to_target: TokenBucket = field(default_factory=TokenBucket)
    from_target: TokenBucket = field(default_factory=TokenBucket)
    connections: set["_Connection"] = field(default_factory=set)
    accepted: int = 0
    refused: int = 0
    bytes_to_target: int = 0
    bytes_from_target: int = 0

    def sent_to_target(self, n: int) -> None:
        self.bytes_to_target += n

    def sent_from_target(self, n: int) -> None:
        self.bytes_from_target += n


def _pipe() -> tuple[int, int, int]:
    """A non-blocking pipe as large as this process may have: (read end, write end, bytes)."""
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    for size in (PIPE_BYTES, MiB):
        try:
            return r, w, fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, size)
        except OSError:  # EPERM beyond /proc/sys/fs/pipe-max-size without CAP_SYS_RESOURCE
            continue
    return r, w, fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)


class _Flow:
    """One direction of a relayed connection: ``src`` -> pipe -> ``dst``, each chunk due after the latency.

    Event-driven on the loop: ``src`` is read while the pipe has room and the bucket
    allows; the oldest chunk is written once it is due and ``dst`` takes it. EOF on
    ``src`` becomes a half-close of ``dst`` after the bytes before it; an error ends
    the flow through ``ended``.
    """

    def __init__(self, src: socket.socket, dst: socket.socket, bucket: TokenBucket, count: Callable[[int], None],
                 latency: Callable[[], float], ended: Callable[["_Flow", BaseException | None], None]):
        self._loop = asyncio.get_running_loop()
        self._src, self._dst = src.fileno(), dst.fileno()
        self._dst_sock = dst
        self._bucket, self._count, self._latency, self._ended = bucket, count, latency, ended
        self._r, self._w, self._capacity = _pipe()
        self._chunks: collections.deque[list] = collections.deque()  # [due, bytes left] ([due, None]: EOF)
        self._in_pipe = 0
        self._reading = self._writing = self._eof = self._stopped = False
        self._read_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._want_read()

    def stop(self) -> None:
        """Stop moving bytes and free the pipe; the sockets are the connection's to close."""
        if self._stopped:
            return
        self._stopped = True
        for timer in (self._read_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        if self._reading:
            self._loop.remove_reader(self._src)
        if self._writing:
            self._loop.remove_writer(self._dst)
        self._reading = self._writing = False
        os.close(self._r)
        os.close(self._w)

    # -- src -> pipe ------------------------------------------------------------
    def _want_read(self) -> None:
        """Read ``src`` while the pipe has room and the bucket allows; otherwise stop until they do.

        A full pipe is read again when :meth:`_flush` drained some; a bucket in debt, on a timer.
        """
        if self._stopped or self._eof or self._in_pipe >= self._capacity:
            self._pause_reading()
            return
        wait = self._bucket.wait()
        if wait > 0:
            self._pause_reading()
            if self._read_timer is None:
                self._read_timer = self._loop.call_later(wait, self._on_read_timer)
        elif not self._reading:
            self._loop.add_reader(self._src, self._on_readable)
            self._reading = True

    def _on_read_timer(self) -> None:
        self._read_timer = None
        self._want_read()

    def _pause_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._src)
            self._reading = False

    def _on_readable(self) -> None:
        room = self._capacity - self._in_pipe
        want = room if self._bucket.rate is None else min(self._bucket.chunk_size(), room)
        try:
            n = os.splice(self._src, self._w, want, flags=_SPLICE)
        except BlockingIOError:
            if self._in_pipe:  # the pipe's pages are full of small pieces: wait for the writer
                self._pause_reading()
            return
        except OSError as e:
            self._ended(self, e)
            return
        self._eof = n == 0
        self._chunks.append([time.monotonic() + self._latency(), n or None])
        if n:
            self._bucket.debit(n)
            self._count(n)
            self._in_pipe += n
        self._want_read()
        self._flush()

    # -- pipe -> dst ------------------------------------------------------------
    def _on_write_timer(self) -> None:
        self._write_timer = None
        self._flush()

    def _flush(self) -> None:
        """Write every chunk that is due, until dst is full (then wait for it) or one is not due yet."""
        if self._stopped or self._write_timer is not None:
            return
        drained = False
        while self._chunks:
            chunk = self._chunks[0]
            delay = chunk[0] - time.monotonic()
            if delay > 0:
                self._stop_writing()  # dst's readiness means nothing until the chunk is due
                self._write_timer = self._loop.call_later(delay, self._on_write_timer)
                break
            if chunk[1] is None:
                self._chunks.popleft()
                self._stop_writing()
                self._half_close()
                return
            try:
                k = os.splice(self._r, self._dst, chunk[1], flags=_SPLICE)
            except BlockingIOError:
                if not self._writing:
                    self._loop.add_writer(self._dst, self._flush)
                    self._writing = True
                break
            except OSError as e:
                self._ended(self, e)
                return
            if k == 0:
                self._ended(self, ConnectionError("the relay's pipe ran dry before its bytes were written"))
                return
            chunk[1] -= k
            self._in_pipe -= k
            drained = True
            if chunk[1] == 0:
                self._chunks.popleft()
        else:
            self._stop_writing()
        if drained:
            self._want_read()

    def _stop_writing(self) -> None:
        if self._writing:
            self._loop.remove_writer(self._dst)
            self._writing = False

    def _half_close(self) -> None:
        try:
            self._dst_sock.shutdown(socket.SHUT_WR)  # the other direction keeps flowing
        except OSError as e:
            self._ended(self, e)
            return
        self._ended(self, None)


class _Connection:
    """One relayed TCP connection: a spliced flow per direction."""

    def __init__(self, relay: "LinkRelay", route: _Route, client: socket.socket, server: socket.socket):
        self._relay, self._route = relay, route
        self._client, self._server = client, server  # the array that dialled; the route's target
        self._flows: list[_Flow] = []
        self._finished: set[_Flow] = set()
        self._done: asyncio.Future = asyncio.get_running_loop().create_future()
        self._closed = False

    async def run(self) -> None:
        route, latency = self._route, lambda: self._relay.latency
        self._flows = [_Flow(self._client, self._server, route.to_target, route.sent_to_target, latency, self._ended),
                       _Flow(self._server, self._client, route.from_target, route.sent_from_target, latency,
                             self._ended)]
        for flow in self._flows:
            flow.start()
        failed = True
        try:
            # Both directions finished (each side half-closed in turn) or one failed: either way, done.
            failed = await self._done
        finally:
            self.close(reset=failed)

    def _ended(self, flow: _Flow, error: BaseException | None) -> None:
        if self._done.done():
            return
        if error is not None:
            if not isinstance(error, _EXPECTED):
                log.error("relay %s: %r", self._route.name, error)
            self._done.set_result(True)
            return
        self._finished.add(flow)
        if len(self._finished) == len(self._flows):
            self._done.set_result(False)

    def close(self, reset: bool) -> None:
        """Stop relaying; ``reset`` drops both TCP connections at once (RST), as a cut path does."""
        if not self._done.done():
            self._done.set_result(reset)
        if self._closed:
            return
        self._closed = True
        for flow in self._flows:
            flow.stop()
        for sock in (self._client, self._server):
            _close(sock, reset)
        self._route.connections.discard(self)


def _close(sock: socket.socket, reset: bool) -> None:
    if reset:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _listening_socket(host: str, port: int) -> socket.socket:
    """A bound socket whose accepted connections inherit :data:`RECEIVE_BUFFER` (set before the handshake)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class LinkRelay:
    """One listening port per array, forwarding to that array's channel address.

    ``routes`` maps array name -> its channel ``host:port``; ``ports`` the ports to
    listen on when free (the previous run's, so remote-array entries stay valid).
    """

    def __init__(self, routes: dict[str, str], ports: dict[str, int] | None = None, host: str = "127.0.0.1"):
        self.host = host
        self._routes = {name: _Route(name, target, (ports or {}).get(name, 0)) for name, target in routes.items()}
        self._cut = False
        self._bandwidth: int | None = None
        self.latency = 0.0
        self._handlers: set[asyncio.Task] = set()

    # -- life cycle -----------------------------------------------------------
    async def start(self) -> None:
        for route in self._routes.values():
            await self._listen(route)

    async def close(self) -> None:
        for route in self._routes.values():
            self._stop_listening(route)
            for conn in list(route.connections):
                conn.close(reset=True)
        for task in list(self._handlers):  # those still connecting to a target
            task.cancel()
        acceptors = [r.acceptor for r in self._routes.values() if r.acceptor is not None]
        if self._handlers or acceptors:
            await asyncio.gather(*self._handlers, *acceptors, return_exceptions=True)

    async def __aenter__(self) -> "LinkRelay":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _listen(self, route: _Route) -> None:
        try:
            sock = _listening_socket(self.host, route.port)
        except OSError:  # the previous port is taken now: any free one will do
            sock = _listening_socket(self.host, 0)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
        route.listener, route.port = sock, sock.getsockname()[1]
        route.acceptor = asyncio.create_task(self._accept_loop(route, sock))

    @staticmethod
    def _stop_listening(route: _Route) -> None:
        if route.acceptor is not None:
            route.acceptor.cancel()
        if route.listener is not None:
            route.listener.close()
            route.listener = None

    # -- the link's state -----------------------------------------------------
    @property
    def is_cut(self) -> bool:
        return self._cut

    @property
    def bandwidth(self) -> int | None:
        return self._bandwidth

    def cut(self) -> int:
        """Cut the link: reset every relayed connection now; returns how many there were."""
        self._cut = True
        conns = [c for r in self._routes.values() for c in list(r.connections)]
        for conn in conns:
            conn.close(reset=True)
        return len(conns)

    def restore(self) -> None:
        self._cut = False

    def set(self, bandwidth=KEEP, latency=KEEP) -> None:
        """Change the bandwidth (bytes/s per direction and route, None = unlimited) and/or latency (s)."""
        if bandwidth is not KEEP:
            self._bandwidth = check_bandwidth(bandwidth)
            for route in self._routes.values():
                route.to_target.set_rate(self._bandwidth)
                route.from_target.set_rate(self._bandwidth)
        if latency is not KEEP:
            self.latency = check_latency(latency)

    async def set_routes(self, routes: dict[str, str]) -> None:
        """Point routes at new channel addresses (a daemon restarted on another port); add new routes.

        Open connections keep their old target (its daemon is gone anyway); new ones use the new.
        """
        for name, target in routes.items():
            split_address(target)
            route = self._routes.get(name)
            if route is None:
                route = self._routes[name] = _Route(name, target)
                route.to_target.set_rate(self._bandwidth)
                route.from_target.set_rate(self._bandwidth)
                await self._listen(route)
            route.target = target

    def address(self, name: str) -> str:
        """Where the other arrays reach array ``name``'s channel through the link."""
        return f"{self.host}:{self._routes[name].port}"

    def ports(self) -> dict[str, int]:
        return {name: r.port for name, r in self._routes.items()}

    def status(self) -> dict:
        return {
            "cut": self._cut, "bandwidth": self._bandwidth, "latency": self.latency,
            "routes": {name: {"listen": self.address(name), "target": r.target, "connections": len(r.connections),
                              "accepted": r.accepted, "refused": r.refused, "bytesToTarget": r.bytes_to_target,
                              "bytesFromTarget": r.bytes_from_target}
                       for name, r in self._routes.items()},
        }

    # -- connections ----------------------------------------------------------
    async def _accept_loop(self, route: _Route, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(listener)
            except OSError as e:  # out of descriptors, say: keep listening
                log.warning("relay %s: accept failed: %s", route.name, e)
                await asyncio.sleep(0.1)
                continue
            client.setblocking(False)
            task = asyncio.create_task(self._accept(route, client))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _accept(self, route: _Route, client: socket.socket) -> None:
        try:
            await self._relay(route, client)
        except asyncio.CancelledError:
            _close(client, reset=True)

    async def _relay(self, route: _Route, client: socket.socket) -> None:
        if self._cut:
            route.refused += 1
            _close(client, reset=True)
            return
        try:
            server = await asyncio.wait_for(_dial(route.target), CONNECT_TIMEOUT)
        except (*_EXPECTED, ValueError) as e:
            log.info("relay %s: cannot reach %s: %s", route.name, route.target, e)
            route.refused += 1
            _close(client, reset=True)
            return
        if self._cut:  # cut while connecting
            route.refused += 1
            _close(client, reset=True)
            _close(server, reset=True)
            return
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # latency is ours to add
        route.accepted += 1
        conn = _Connection(self, route, client, server)
        route.connections.add(conn)
        try:
            await conn.run()
        finally:
            route.connections.discard(conn)


async def _dial(target: str) -> socket.socket:
    """A connected non-blocking socket to ``host:port``."""
    host, port = split_address(target)
    loop = asyncio.get_running_loop()
    family, kind, proto, _, address = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock
