"""The event log and the live event stream of this array (project extensions).

``GET events?since=N&limit=M`` pages through the persisted log (Syncthing's
``/rest/events?since=N``); ``GET event-stream`` is Server-Sent Events of every
change, replaying the log after ``Last-Event-ID`` so a reconnecting console misses
nothing that was persisted.
"""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from core.errors import InvalidInput
from core.rest import events, models
from core.rest.errors import STREAMING
from core.rest.routes_context import V2, context, query_int, reply

HUB = web.AppKey("event-hub", events.EventHub)
EVENT_LIMIT_MAX = 10_000


async def list_events(request: web.Request) -> web.Response:
    ctx = context(request)
    since = query_int(request, "since", 0)
    limit = query_int(request, "limit", 200, minimum=1)
    if limit > EVENT_LIMIT_MAX:
        raise InvalidInput(f"query parameter 'limit' must be at most {EVENT_LIMIT_MAX}, not {limit}")
    records = ctx.engine.get_array(ctx.array).events(limit=limit, since_id=since)
    return reply([models.event_to_ws(e) for e in records])


def _last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.query.get("since")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"Last-Event-ID '{raw}' is not an event id from this stream") from None


async def event_stream(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    hub = request.app[HUB]
    resume_after = _last_event_id(request)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    listener = hub.listen()  # before reading the log: nothing falls between replay and live
    try:
        backlog = [] if resume_after is None else \
            ctx.engine.get_array(ctx.array).events(limit=events.REPLAY_LIMIT, since_id=resume_after)
        await resp.prepare(request)
        request[STREAMING] = True
        if len(backlog) == events.REPLAY_LIMIT:
            await resp.write(f": replay limited to the latest {events.REPLAY_LIMIT} events\n\n".encode())
        replayed_up_to = resume_after or 0
        for record in backlog:
            await resp.write(events.replayed(record))
            replayed_up_to = record.id
        await _stream_live(request, resp, listener, replayed_up_to)
    except ConnectionResetError:
        pass  # the client went away
    finally:
        listener.close()
    return resp


async def _stream_live(request: web.Request, resp: web.StreamResponse, listener: events.Listener,
                       replayed_up_to: int) -> None:
    next_heartbeat = time.monotonic() + events.HEARTBEAT_SECONDS
    while not listener.overflowed:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        wait = max(0.0, min(1.0, next_heartbeat - time.monotonic()))  # wake at least once a second to see a hang-up
        try:
            item = await asyncio.wait_for(listener.queue.get(), timeout=wait)
        except asyncio.TimeoutError:
            if time.monotonic() >= next_heartbeat:
                await resp.write(events.HEARTBEAT)
                next_heartbeat = time.monotonic() + events.HEARTBEAT_SECONDS
            continue
        if item is None:
            return  # the server is shutting down
        position, ev = item
        if ev.event is not None and ev.event.id <= replayed_up_to:
            continue  # already sent from the log
        await resp.write(events.message(position, ev))


def routes() -> list[web.RouteDef]:
    return [web.get(f"{V2}/events", list_events), web.get(f"{V2}/event-stream", event_stream)]
