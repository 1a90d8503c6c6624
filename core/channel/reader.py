"""Receiving the channel's bytes: a region's data lands once, in a buffer of its own size.

The receiver of an initial sync spent its loop copying (issue 14, perf): asyncio's
TLS layer decrypted every 256 KiB into a fresh bytes object, the StreamReader
appended it to its buffer, and ``readexactly`` copied the ~1 MiB frame body out
again. Here the transport reads through :class:`ChannelProtocol`, an
``asyncio.BufferedProtocol``, so the socket (or, under TLS, the SSL object as it
decrypts) writes into a buffer the :class:`ChannelReader` chooses. While
:meth:`ChannelReader.read_body` waits, that buffer is the rest of the body,
allocated at its final size. Otherwise it is a small buffer whose bytes go to the
StreamReader as ``data_received`` gave them, so the handshake and control frames,
the reader's limit and pausing, EOF and connection errors stay the StreamReader's.

A body gets a new buffer every time: handlers may keep what they were given.
"""
from __future__ import annotations

import asyncio

import numpy as np

# One read outside a body, a TLS record's worth: several control frames, or a frame's
# head and the start of its body (which is copied once more, into the body: the less,
# the better). At most a handshake frame, so that before login a peer is read no faster
# than it is checked (core.channel.stream).
READ_SIZE = 16 * 1024


class ChannelReader(asyncio.StreamReader):
    """A StreamReader that also receives ``n`` bytes in place (:meth:`read_body`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit=limit)
        self._chunk = memoryview(bytearray(READ_SIZE))
        self._body: memoryview | None = None  # what read_body still waits for

    async def read_body(self, n: int) -> memoryview:
        """Exactly ``n`` bytes, in a new buffer that the transport filled directly.

        Like ``readexactly`` otherwise: ``IncompleteReadError`` when the stream ends
        first, the connection's error when it failed.
        """
        if self._exception is not None:
            raise self._exception
        # Not bytearray(n): it would write n zeros for the socket to overwrite (perf: memset).
        body = memoryview(np.empty(n, np.uint8))
        have = min(len(self._buffer), n)
        if have:  # what arrived with the frame's head
            with memoryview(self._buffer) as buffered:
                body[:have] = buffered[:have]
            del self._buffer[:have]
            self._maybe_resume_transport()
        if have == n:
            return body
        self._body = body[have:]
        try:
            while self._body is not None:
                if self._eof:
                    raise asyncio.IncompleteReadError(bytes(body[:n - len(self._body)]), n)
                await self._wait_for_data("read_body")
        finally:
            self._body = None
        return body

    # -- what the transport calls, through ChannelProtocol ----------------
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._chunk if self._body is None else self._body

    def buffer_updated(self, nbytes: int) -> None:
        if self._body is None:
            self.feed_data(self._chunk[:nbytes])
        elif nbytes < len(self._body):
            self._body = self._body[nbytes:]
        else:
            self._body = None
            self._wakeup_waiter()


class ChannelProtocol(asyncio.StreamReaderProtocol, asyncio.BufferedProtocol):
    """A StreamReaderProtocol whose transport reads into the :class:`ChannelReader`'s buffers.

    Being a ``BufferedProtocol`` is what makes the socket transport ``recv_into``
    that buffer, and Python 3.11's SSL transport decrypt into it, instead of each
    handing over a new bytes object. Everything else (the writer's flow control,
    closing, the server's connection callback) is StreamReaderProtocol's.
    """

    def __init__(self, reader: ChannelReader, client_connected_cb=None) -> None:
        super().__init__(reader, client_connected_cb)
        self._channel_reader = reader

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._channel_reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._channel_reader.buffer_updated(nbytes)
