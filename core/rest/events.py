"""Engine events to Server-Sent Events: one engine subscription per app, one queue per client.

Message ids are positions in the array's persisted event log: an ``event`` message
carries its record's id, every other change (group, pair, progress...) the id of
the latest record before it. A client that reconnects with ``Last-Event-ID: N`` is
replayed every persisted record after N; transient changes are not replayed (they
say "this changed", so a reconnected client refetches what it shows).

A client that cannot keep up is disconnected rather than buffered without bound:
it reconnects with its Last-Event-ID and loses nothing that was persisted.
"""
from __future__ import annotations

import asyncio
import json

from core.rest import models
from core.snapshots import EngineEvent

HEARTBEAT_SECONDS = 15.0  # proxies close idle connections; a comment line keeps this one open
QUEUE_LIMIT = 1000
REPLAY_LIMIT = 10_000


class Listener:
    """One event-stream client's queue of ``(log position, EngineEvent)``; ``None`` ends the stream."""

    def __init__(self, hub: "EventHub"):
        self.queue: asyncio.Queue = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False
        self._hub = hub

    def close(self) -> None:
        self._hub.remove(self)


class EventHub:
    """Subscribes to the engine once and hands this array's events to every listener."""

    def __init__(self, engine, array: str):
        self.engine = engine
        self.array = array
        self.position = 0  # id of the latest persisted event of this array
        self._listeners: set[Listener] = set()
        self._unsubscribe = None

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def start(self) -> None:
        """Subscribe; runs on the engine's loop (the app's startup), where the engine may be touched."""
        latest = self.engine.get_array(self.array).events(limit=1)
        self.position = latest[-1].id if latest else 0
        self._unsubscribe = self.engine.subscribe(self._on_event)

    def stop(self) -> None:
        """Unsubscribe and end every stream (the server is shutting down)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for listener in list(self._listeners):
            self._end(listener)
        self._listeners.clear()

    def listen(self) -> Listener:
        listener = Listener(self)
        self._listeners.add(listener)
        return listener

    def remove(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def _on_event(self, ev: EngineEvent) -> None:
        if ev.array not in (self.array, ""):
            return  # not this array's (an engine serves one array; kept as a guard)
        if ev.event is not None:
            self.position = max(self.position, ev.event.id)
        for listener in list(self._listeners):
            try:
                listener.queue.put_nowait((self.position, ev))
            except asyncio.QueueFull:
                listener.overflowed = True
                self._listeners.discard(listener)

    @staticmethod
    def _end(listener: Listener) -> None:
        try:
            listener.queue.put_nowait(None)
        except asyncio.QueueFull:
            listener.overflowed = True


def message(position: int, ev: EngineEvent) -> bytes:
    """One SSE message: ``id`` the log position, ``event`` the kind, ``data`` one line of JSON."""
    data = {"kind": ev.kind, "array": ev.array, "object": ev.object, "data": models.jsonable(list(ev.data)),
            "event": models.event_to_ws(ev.event) if ev.event is not None else None}
    return f"id: {position}\nevent: {ev.kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def replayed(record) -> bytes:
    """A persisted record sent again to a reconnecting client, in the shape it had live."""
    return message(record.id, EngineEvent("event", record.array, record.object, event=record))


HEARTBEAT = b": heartbeat\n\n"
