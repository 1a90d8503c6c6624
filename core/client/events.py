"""Reading an array's live event stream (Server-Sent Events, ``GET event-stream``).

The daemon sends ``id:``/``event:``/``data:`` records and a heartbeat comment every
few seconds; a stream that stays silent for three heartbeats is taken as dead (a
cut management network does not always close the TCP connection), so the reader
raises and its owner reconnects, passing the last id so nothing in between is lost.
"""
from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator, Callable

import aiohttp

from core.errors import CommunicationError, MirrorError

SILENCE_SECONDS = 45.0  # three of the daemon's 15 s heartbeats


async def follow_events(client, last_event_id: str | None = None,
                        on_open: Callable[[], None] | None = None) -> AsyncIterator[tuple[str, str, dict]]:
    """Yield ``(kind, id, data)`` for every event of ``client``'s array until the stream ends.

    ``on_open`` is called once the array has accepted the stream (it answers again).
    """
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    try:
        async with client.stream("event-stream", headers=headers) as resp:
            if resp.status >= 400:
                body = await resp.text()
                raise MirrorError(f"the array at {client.base_url} refused its event stream ({resp.status}): "
                                  f"{body[:200]}", code="eventStreamRefused")
            kind, event_id, data = "message", "", []
            answered = getattr(client, "answered", lambda: None)
            answered()
            if on_open is not None:
                on_open()
            while True:
                async with asyncio.timeout(SILENCE_SECONDS):  # not wait_for: it can swallow a cancel (3.11)
                    line = await resp.content.readline()
                if not line:
                    return
                answered()  # an event or a heartbeat: the array is there (the console shows when it last was)
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if not text:  # a blank line ends one event
                    if data:
                        yield kind, event_id, json.loads("\n".join(data))
                    kind, data = "message", []
                    continue
                field, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    kind = value
                elif field == "id":
                    event_id = value
                elif field == "data":
                    data.append(value)
    except aiohttp.ServerFingerprintMismatch as e:
        raise client.certificate_changed(e) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        error = CommunicationError(f"the event stream of the array at {client.base_url} broke: "
                                   f"{_reason(e)}", code="arrayUnreachable")
        if hasattr(client, "last_error"):
            client.last_error = error.message
        raise error from None


def _reason(e: BaseException) -> str:
    if isinstance(e, aiohttp.ClientConnectorError) and e.os_error is not None:
        return e.os_error.strerror or str(e.os_error)
    return str(e) or type(e).__name__
