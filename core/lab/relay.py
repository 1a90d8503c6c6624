"""The lab link: a TCP relay on the mirroring channel that really cuts, throttles and delays it.

Each lab array's remote-array entries point at the relay's port for the other
array, so every channel byte between the arrays crosses this relay, and a fault
happens to the real TCP path (DESIGN: no "is the lab pretending?" branches):

- :meth:`LinkRelay.cut` resets every relayed connection at once (both arrays see
  the path die) and closes new ones as soon as they are accepted, until
  :meth:`LinkRelay.restore`;
- :meth:`LinkRelay.set` limits each direction of each route to a bandwidth (token
  bucket) and delays every chunk by a latency, in order, for open connections too.

Memory stays bounded: per connection and direction at most :data:`QUEUE_CHUNKS`
chunks of at most 256 KiB wait for their delivery time; a full queue stops reading,
so TCP flow control pushes back on the sender.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Callable

from core.lab.shaping import MAX_CHUNK, TokenBucket, check_bandwidth, check_latency

log = logging.getLogger(__name__)

QUEUE_CHUNKS = 32  # x 256 KiB: 8 MiB in flight per direction, enough for 250 MiB/s at 30 ms
STREAM_LIMIT = MAX_CHUNK  # reads as large as a chunk: a quarter more throughput than asyncio's 64 KiB
CONNECT_TIMEOUT = 5.0
# The kernel's receive buffer on the relay's side of each dialled connection. Left to
# autotuning, loopback buffers grow to megabytes, and a throttled link would swallow a
# whole sync at once: the sender would count it sent while it trickles through for
# seconds. A slow link pushes back on its sender; so does a small buffer.
RECEIVE_BUFFER = 128 * 1024
KEEP = object()  # LinkRelay.set: leave this setting as it is

_EXPECTED = (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError)


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
    server: asyncio.Server | None = None
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


class _Connection:
    """One relayed TCP connection: a reader and a writer task per direction, joined by a delay queue."""

    def __init__(self, relay: "LinkRelay", route: _Route, client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 server: tuple[asyncio.StreamReader, asyncio.StreamWriter]):
        self._relay, self._route = relay, route
        self._c_reader, self._c_writer = client  # the array that dialled
        self._s_reader, self._s_writer = server  # the route's target: the dialled array's channel
        self._tasks: list[asyncio.Task] = []

    async def run(self) -> None:
        up: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)
        down: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)
        route = self._route
        self._tasks = [
            asyncio.create_task(self._read(self._c_reader, up, route.to_target, route.sent_to_target)),
            asyncio.create_task(self._write(up, self._s_writer)),
            asyncio.create_task(self._read(self._s_reader, down, route.from_target, route.sent_from_target)),
            asyncio.create_task(self._write(down, self._c_writer)),
        ]
        failed = True
        try:
            # Both directions finished (each side half-closed in turn) or one failed: either way, done.
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            errors = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
            for e in errors:
                if not isinstance(e, _EXPECTED):
                    log.error("relay %s: %r", route.name, e)
            failed = bool(errors) or any(t.cancelled() for t in done)
        finally:
            self.close(reset=failed)

    async def _read(self, reader: asyncio.StreamReader, queue: asyncio.Queue, bucket: TokenBucket,
                    count: Callable[[int], None]) -> None:
        while True:
            data = await reader.read(bucket.chunk_size())
            if not data:
                break
            await bucket.take(len(data))
            count(len(data))
            await queue.put((time.monotonic() + self._relay.latency, data))
        await queue.put((time.monotonic() + self._relay.latency, None))  # EOF, after the bytes before it

    @staticmethod
    async def _write(queue: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        while True:
            due, data = await queue.get()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()  # half-close: the other direction keeps flowing
                return
            writer.write(data)
            await writer.drain()

    def close(self, reset: bool) -> None:
        """Stop relaying; ``reset`` drops both TCP connections at once (RST), as a cut path does."""
        for t in self._tasks:
            t.cancel()
        for w in (self._c_writer, self._s_writer):
            if reset:
                _reset(w)
            else:
                w.close()
        self._route.connections.discard(self)


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


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
            if route.server is not None:
                route.server.close()
            for conn in list(route.connections):
                conn.close(reset=True)
        for route in self._routes.values():
            if route.server is not None:
                await route.server.wait_closed()
        for task in list(self._handlers):  # those still connecting to a target
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def __aenter__(self) -> "LinkRelay":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _listen(self, route: _Route) -> None:
        handler = lambda r, w: self._accept(route, r, w)  # noqa: E731
        try:
            sock = _listening_socket(self.host, route.port)
        except OSError:  # the previous port is taken now: any free one will do
            sock = _listening_socket(self.host, 0)
        route.server = await asyncio.start_server(handler, sock=sock, limit=STREAM_LIMIT)
        route.port = route.server.sockets[0].getsockname()[1]

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
    async def _accept(self, route: _Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            await self._relay(route, reader, writer)
        except asyncio.CancelledError:
            _reset(writer)
        finally:
            self._handlers.discard(task)

    async def _relay(self, route: _Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            route.refused += 1
            _reset(writer)
            return
        try:
            host, port = split_address(route.target)
            s_reader, s_writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=STREAM_LIMIT),
                                                        CONNECT_TIMEOUT)
        except (*_EXPECTED, ValueError) as e:
            log.info("relay %s: cannot reach %s: %s", route.name, route.target, e)
            route.refused += 1
            _reset(writer)
            return
        if self._cut:  # cut while connecting
            route.refused += 1
            _reset(writer)
            _reset(s_writer)
            return
        for w in (writer, s_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # latency is ours to add
        route.accepted += 1
        conn = _Connection(self, route, (reader, writer), (s_reader, s_writer))
        route.connections.add(conn)
        try:
            await conn.run()
        finally:
            route.connections.discard(conn)
