"""Changes of the arrays, told to whoever listens: the console's bridge, the REST event stream, metrics."""
from __future__ import annotations

import logging
from typing import Callable, Protocol

from core.snapshots import EngineEvent, EventRecord

log = logging.getLogger(__name__)
Subscriber = Callable[[EngineEvent], None]


class Publish(Protocol):
    """What a collaborator is given to tell about a change."""

    def __call__(self, kind: str, array: str = "", obj: str = "", event: EventRecord | None = None,
                 data: tuple = ()) -> None: ...


class Publisher:
    """Calls every subscriber (on the engine thread) for every change."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for every change; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def publish(self, kind: str, array: str = "", obj: str = "", event: EventRecord | None = None,
                data: tuple = ()) -> None:
        ev = EngineEvent(kind=kind, array=array, object=obj, event=event, data=data)
        for cb in list(self._subscribers):
            try:
                cb(ev)
            except Exception:  # a broken subscriber must not stop the engine
                log.exception("engine event subscriber failed")

    def array_event(self, record: EventRecord) -> None:
        """An array logged an event (``StorageArray.on_event``)."""
        self.publish("event", record.array, record.object, event=record)
