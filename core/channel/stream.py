"""The stream under a channel connection: small until the peer has logged in.

An asyncio ``StreamReader`` keeps reading from the socket until its buffer holds
twice its limit. With the session's limit (4 MiB, so whole regions arrive without
pausing) an unauthenticated peer that sends and never reads could make an array
buffer 8 MiB per connection before a single frame was checked. Before login only
handshake frames are expected (at most :data:`~core.channel.frames.PRE_AUTH_MAX_PAYLOAD`),
so until :meth:`ChannelStreamReader.logged_in` the reader's limit is half a handshake
frame (it pauses the socket once a whole frame is waiting), the socket is read a
frame's worth at a time (the reader's own buffer, :data:`~core.channel.reader.READ_SIZE`),
and under TLS the undecrypted bytes waiting are capped the same way. What one
connection can make an array hold before login is then a few handshake frames, not
megabytes.
"""
from __future__ import annotations

import asyncio

from core.channel import frames
from core.channel.reader import ChannelProtocol, ChannelReader

STREAM_LIMIT = 4 * 1024 * 1024  # after login: whole regions without pausing
PRE_AUTH_FRAME = frames.HEADER_SIZE + frames.PRE_AUTH_MAX_PAYLOAD
PRE_AUTH_LIMIT = PRE_AUTH_FRAME // 2  # StreamReader stops reading at twice its limit


class ChannelStreamReader(ChannelReader):
    """A channel reader with the pre-login bounds until :meth:`logged_in` lifts them."""

    def __init__(self) -> None:
        super().__init__(PRE_AUTH_LIMIT)

    def set_transport(self, transport: asyncio.BaseTransport) -> None:
        super().set_transport(transport)
        _small_reads(transport, True)

    def logged_in(self) -> None:
        """The peer proved the password: read at full speed from now on."""
        self._limit = STREAM_LIMIT
        if self._transport is not None:
            _small_reads(self._transport, False)
        self._maybe_resume_transport()


def _small_reads(transport: asyncio.BaseTransport, small: bool) -> None:
    """Under TLS, read and keep waiting at most a handshake frame of ciphertext (``small``), or as asyncio does.

    Plaintext needs nothing here: the transport reads into the reader's own buffer.
    asyncio's TLS layer reads the socket up to 256 KiB at a time (its ``max_size``) and
    keeps up to 256 KiB of ciphertext waiting; the read size has no public setting,
    so the attribute is set on this connection's TLS layer only, and dropped again
    after login. Transports without it (another event loop) keep their own sizes; the
    reader's limit still applies.
    """
    if not hasattr(transport, "set_read_buffer_limits"):
        return  # plain TCP
    transport.set_read_buffer_limits(high=PRE_AUTH_FRAME if small else None)
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    if ssl_protocol is None or "max_size" not in dir(type(ssl_protocol)):
        return
    if small:
        ssl_protocol.max_size = PRE_AUTH_FRAME
    else:
        ssl_protocol.__dict__.pop("max_size", None)


async def open_channel_connection(host: str, port: int, **kwargs) -> tuple[ChannelStreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` with a :class:`ChannelStreamReader`."""
    loop = asyncio.get_running_loop()
    reader = ChannelStreamReader()
    protocol = ChannelProtocol(reader)
    transport, _ = await loop.create_connection(lambda: protocol, host, port, **kwargs)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def start_channel_server(client_connected_cb, host: str, port: int, **kwargs) -> asyncio.base_events.Server:
    """``asyncio.start_server`` whose connections read through a :class:`ChannelStreamReader`."""
    loop = asyncio.get_running_loop()

    def factory() -> ChannelProtocol:
        return ChannelProtocol(ChannelStreamReader(), client_connected_cb)

    return await loop.create_server(factory, host, port, **kwargs)
