"""The one module that knows both worlds: the engine's asyncio loop and Qt.

``EngineBridge`` owns a QThread whose ``run()`` makes the engine (the engine factory is
called there, so the engine thread owns what it opens, and the first window never
waits for the fleet's imports: aiohttp, SQLAlchemy, numpy) and runs its
:class:`core.runtime.EngineLoop`. The GUI sends commands with
``call("create_group", ..., on_done=..., on_error=...)``; the engine answers on its
own thread, and the answer is handed back to the GUI thread through a queued signal,
so every callback and every slot runs on the GUI thread (touching widgets from a
worker thread crashes: napari #4982, Electrum #3326).

Engine events arrive on the engine thread; they are only *recorded* there (under a
lock) and re-emitted from a GUI-thread QTimer at ~15 Hz, coalesced by
(kind, array, object), so a burst of 10,000 progress events costs the UI a handful
of signals. Persisted log records (kind "event") are never coalesced: each one is a
line in the event log.

Only immutable data crosses: frozen snapshots from ``core.snapshots``, tuples,
strings and exceptions.
"""
from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, QThread, QTimer, Qt, Signal, Slot

from core.errors import MirrorError
from core.snapshots import EngineEvent

if TYPE_CHECKING:
    from core.runtime import EngineLoop

log = logging.getLogger(__name__)
THREAD_NAME = "mirror-engine-qt"


def _why(err: BaseException) -> str:
    return getattr(err, "message", None) or str(err) or type(err).__name__


class _EngineThread(QThread):
    """Makes the engine and runs its loop; reports start (or its failure) through ``sig_started``."""

    sig_started = Signal(str)  # "" when the engine is ready, else why it could not start

    def __init__(self, home: Path, purpose: str, engine_factory: Callable, on_ready: Callable[[], None]):
        super().__init__()  # no parent: a QThread's owner stops it explicitly (see EngineBridge.stop)
        self.setObjectName(THREAD_NAME)
        self._make = (home, purpose, engine_factory)
        self._on_ready = on_ready
        self._lock = threading.Lock()
        self._stopping = False
        self.runner: EngineLoop | None = None
        """Set on this thread once the engine is made; read on the GUI thread after ``sig_started``."""

    def run(self) -> None:
        # Name the Python side of this thread so the test-suite's leaked-thread check sees it.
        threading.current_thread().name = THREAD_NAME
        try:
            try:
                from core.runtime import EngineLoop

                home, purpose, factory = self._make
                runner = EngineLoop(home, purpose, engine_factory=factory)
            except Exception as err:  # a factory that cannot make the engine: said like a failed start
                if not isinstance(err, MirrorError):
                    log.error("the engine could not be made", exc_info=err)
                self.sig_started.emit(_why(err))
                return
            with self._lock:
                if self._stopping:  # stopped before the engine was made: it never starts
                    runner.loop.close()
                    return
                self.runner = runner
            runner.loop.call_soon(self._watch_ready)
            runner.run()
            if runner.start_error is not None:
                self.sig_started.emit(_why(runner.start_error))
        finally:
            # Python < 3.12 never forgets a foreign (dummy) thread: drop it, it has ended.
            threading._active.pop(threading.get_ident(), None)  # noqa: SLF001

    def request_stop(self) -> EngineLoop | None:
        """From the GUI thread: the engine is not to start, or is to stop; its loop when it was made."""
        with self._lock:
            self._stopping = True
            return self.runner

    def _watch_ready(self) -> None:
        # Runs on the engine loop: ``ready`` is set between engine.start() and run_forever().
        runner = self.runner
        if runner.ready.is_set():
            if runner.start_error is None:
                self._on_ready()
                self.sig_started.emit("")
        elif not runner.loop.is_closed():
            runner.loop.call_later(0.005, self._watch_ready)


class EngineBridge(QObject):
    """Engine calls in, results and events out, all delivered on the GUI thread."""

    sig_ready = Signal()
    """The engine has started; calls made before this were queued and are now sent."""
    sig_start_failed = Signal(str)
    """The engine could not start (e.g. the lab is locked by another console); the message says why."""
    sig_engine_event = Signal(object)
    """A coalesced :class:`core.snapshots.EngineEvent` (kind, array, object, event)."""
    sig_groups_polled = Signal(tuple)
    """The live ``groups()`` snapshots, polled at ``poll_hz`` for charts and progress bars."""
    sig_stopped = Signal()
    """The engine loop has ended and the arrays' locks are released."""

    _sig_result = Signal(int, bool, object)  # internal: (call id, ok, result or exception)

    def __init__(self, home: Path | str, engine_factory: Callable, purpose: str = "console", event_hz: float = 15.0,
                 poll_hz: float = 5.0, parent: QObject | None = None):
        """``engine_factory(home, purpose)`` makes what answers the calls: a fleet of array daemons
        reached over REST (:func:`core.cli.common.lab_fleet_factory` for the lab in ``home``). It is
        called on the engine thread when the bridge starts; an exception it raises is a failed start.
        """
        super().__init__(parent)
        self.home = Path(home)
        self._thread = _EngineThread(self.home, purpose, engine_factory, self._subscribe_on_engine_thread)
        self._thread.sig_started.connect(self._on_started, Qt.QueuedConnection)
        self._sig_result.connect(self._deliver, Qt.QueuedConnection)
        self._ids = itertools.count(1)
        self._callbacks: dict[int, tuple[Callable | None, Callable | None]] = {}
        self._queued: list[tuple[int, str, tuple, dict]] = []
        self._ready = False
        self._closed = False
        self._unsubscribe: Callable[[], None] | None = None
        # Written on the engine thread, drained on the GUI thread.
        self._lock = threading.Lock()
        self._pending_events: dict[tuple[str, str, str], EngineEvent] = {}
        self._pending_records: list[EngineEvent] = []
        self._event_timer = QTimer(self)
        self._event_timer.setInterval(max(1, int(1000 / event_hz)))
        self._event_timer.timeout.connect(self._flush_events)
        self._poll_timer = QTimer(self)
        self._poll_timer.setInterval(max(1, int(1000 / poll_hz)) if poll_hz else 0)
        self._poll_timer.timeout.connect(self._poll)
        self._poll_in_flight = False
        self._poll_hz = poll_hz

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        """Start the engine thread; returns at once (the window is shown before the engine is ready)."""
        self._thread.start()

    @property
    def engine(self):
        """What answers the calls, None before it is made (read it only to decide things after ``stop``:
        it belongs to the engine thread)."""
        runner = self._thread.runner
        return runner.engine if runner is not None else None

    @property
    def _runner(self) -> EngineLoop:
        return self._thread.runner  # made before sig_started(""): every call is sent after it

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def polling(self) -> bool:
        """The live ``groups()`` are polled (``sig_groups_polled``): progress needs no fetch of its own."""
        return bool(self._poll_hz)

    @property
    def running(self) -> bool:
        return self._thread.isRunning()

    def stop(self) -> None:
        """Stop the engine loop, wait for its thread, release the arrays' locks. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._event_timer.stop()
        self._poll_timer.stop()
        if self._thread.isRunning():
            runner = self._thread.request_stop()
            if runner is not None:
                if self._unsubscribe is not None:
                    runner.submit(self._unsubscribe)
                runner.request_stop()
            self._thread.wait()
        self._callbacks.clear()
        self._queued.clear()
        self.sig_stopped.emit()

    @Slot(str)
    def _on_started(self, error: str) -> None:
        if self._closed:
            return
        if error:
            self.sig_start_failed.emit(error)
            return
        self._ready = True
        self._event_timer.start()
        if self._poll_hz:
            self._poll_timer.start()
        queued, self._queued = self._queued, []
        for call_id, method, args, kwargs in queued:
            self._submit(call_id, method, args, kwargs)
        self.sig_ready.emit()

    # -- commands -------------------------------------------------------------------
    def call(self, method: str, *args, on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[MirrorError], None] | None = None, **kwargs) -> int:
        """Run ``engine.<method>(*args, **kwargs)`` on the engine; callbacks run on the GUI thread.

        ``on_error`` receives a :class:`MirrorError` (unexpected exceptions are wrapped,
        a method the engine does not have yet becomes ``code="notImplemented"``).
        Returns a call id. Calls made before the engine is ready wait for it.
        """
        call_id = next(self._ids)
        if self._closed:
            return call_id
        self._callbacks[call_id] = (on_done, on_error)
        if self._ready:
            self._submit(call_id, method, args, kwargs)
        else:
            self._queued.append((call_id, method, args, kwargs))
        return call_id

    def _submit(self, call_id: int, method: str, args: tuple, kwargs: dict) -> None:
        future = self._runner.submit(self._invoke, method, args, kwargs)

        def done(f, call_id=call_id):  # engine thread
            if f.cancelled():
                self._sig_result.emit(call_id, False, MirrorError("the engine stopped", code="engineStopped"))
                return
            exc = f.exception()
            if exc is None:
                self._sig_result.emit(call_id, True, f.result())
            else:
                if not isinstance(exc, MirrorError):
                    log.error("engine call %s failed", method, exc_info=exc)
                    exc = MirrorError(f"{method} failed: {exc}", code="internalError")
                self._sig_result.emit(call_id, False, exc)
        future.add_done_callback(done)

    def _invoke(self, method: str, args: tuple, kwargs: dict):  # engine thread
        target = getattr(self._runner.engine, method, None)
        if target is None or method.startswith("_"):
            raise MirrorError(f"this engine does not offer '{method}' yet", code="notImplemented")
        return target(*args, **kwargs)

    @Slot(int, bool, object)
    def _deliver(self, call_id: int, ok: bool, value: object) -> None:
        callbacks = self._callbacks.pop(call_id, None)
        if callbacks is None or self._closed:
            return
        on_done, on_error = callbacks
        if ok:
            if on_done is not None:
                on_done(value)
        elif on_error is not None:
            on_error(value)
        else:
            log.warning("engine call failed: %s", value)

    # -- events ---------------------------------------------------------------------
    def _subscribe_on_engine_thread(self) -> None:
        self._unsubscribe = self._runner.engine.subscribe(self._record_event)

    def _record_event(self, ev: EngineEvent) -> None:  # engine thread: record only, never touch Qt objects
        with self._lock:
            if ev.kind == "event":
                self._pending_records.append(ev)
            else:
                self._pending_events[(ev.kind, ev.array, ev.object)] = ev

    @Slot()
    def _flush_events(self) -> None:
        with self._lock:
            if not self._pending_events and not self._pending_records:
                return
            events = list(self._pending_events.values())
            records = self._pending_records
            self._pending_events = {}
            self._pending_records = []
        for ev in events + records:
            self.sig_engine_event.emit(ev)

    @Slot()
    def _poll(self) -> None:
        if self._poll_in_flight:
            return  # never pile polls up behind a slow engine
        self._poll_in_flight = True

        def done(groups):
            self._poll_in_flight = False
            self.sig_groups_polled.emit(tuple(groups))

        def failed(_err):
            self._poll_in_flight = False
        self.call("groups", on_done=done, on_error=failed)
