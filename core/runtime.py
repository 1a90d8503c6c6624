"""Running the engine's asyncio loop on a thread, and calling it from elsewhere.

The engine lives on one loop. ``EngineLoop.run`` is what a thread runs (a plain
``threading.Thread`` for the CLI and tests, the console's QThread in the GUI);
``EngineLoop.submit`` hands a call to that loop from any other thread and returns a
``concurrent.futures.Future``. ``BlockingEngine`` wraps that for scripts and tests:
``client.volumes()`` blocks until the engine answered.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any, Callable

from core.engine import Engine

CLOSE_SECONDS = 10.0


class EngineLoop:
    """Owns the loop and the engine; ``run()`` blocks until ``request_stop()``."""

    def __init__(self, home: Path, purpose: str = "", engine_factory: Callable[..., Engine] = Engine,
                 nbd_port: int | None = None, **engine_options):
        self.home = Path(home)
        self.loop = asyncio.new_event_loop()
        self.engine = engine_factory(self.home, purpose, nbd_port=nbd_port, **engine_options)
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self.start_error: BaseException | None = None

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.engine.start())
        except BaseException as e:  # reported to the caller waiting on ``ready``
            self.start_error = e
            self.ready.set()
            self._close_loop()
            return
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self.engine.stop())
            finally:
                self._close_loop()

    def _close_loop(self) -> None:
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:  # bounded: a task that does not end when cancelled must not hang whoever stops the loop
            self.loop.run_until_complete(asyncio.wait(pending, timeout=CLOSE_SECONDS))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
        self.stopped.set()

    def submit(self, fn: Callable[..., Any], *args, **kwargs) -> concurrent.futures.Future:
        """Run ``fn(*args, **kwargs)`` on the engine loop; coroutines are awaited there."""
        async def call():
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(call(), self.loop)

    def request_stop(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)


class BlockingEngine:
    """The engine's service API as blocking calls, its loop on a background thread.

    Use as a context manager; errors raised by the engine (MirrorError...) are
    re-raised in the caller.
    """

    def __init__(self, home: Path, purpose: str = "", timeout: float | None = 600, nbd_port: int | None = None,
                 **engine_options):
        self._runner = EngineLoop(home, purpose, nbd_port=nbd_port, **engine_options)
        self._thread = threading.Thread(target=self._runner.run, name="mirror-engine", daemon=True)
        self.timeout = timeout

    @property
    def engine(self) -> Engine:
        return self._runner.engine

    def start(self) -> "BlockingEngine":
        self._thread.start()
        self._runner.ready.wait()
        if self._runner.start_error is not None:
            self._thread.join()
            raise self._runner.start_error
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._runner.request_stop()
            self._thread.join()

    def __enter__(self) -> "BlockingEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, fn: Callable[..., Any], *args, **kwargs):
        return self._runner.submit(fn, *args, **kwargs).result(self.timeout)

    def __getattr__(self, name: str):
        target = getattr(self._runner.engine, name)
        if not callable(target):
            return target
        return lambda *a, **kw: self.call(target, *a, **kw)
