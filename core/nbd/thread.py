"""An :class:`~core.nbd.server.NbdServer` on its own event loop and thread (tests, benchmarks, scripts)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from .backend import ExportProvider
from .server import NbdServer


class NbdServerThread:
    """Runs an :class:`NbdServer` on its own event loop in a background thread.

    For tests, the benchmark and scripts that are not asyncio programs. ``start()``
    returns once the server listens; ``stop()`` closes every connection, ends the
    loop and joins the thread, so nothing outlives it. Also a context manager.
    """

    def __init__(self, provider: ExportProvider, host: str = "127.0.0.1", port: int = 0, **limits):
        self.server = NbdServer(provider, host, port, **limits)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        return self.server.port

    def uri(self, export_name: str) -> str:
        return self.server.uri(export_name)

    def start(self) -> "NbdServerThread":
        self._thread = threading.Thread(target=self._run, name="nbd-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def _run(self) -> None:
        loop = self.loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:  # report bind errors to start()
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
        finally:
            loop.close()

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the server's loop and return its result."""
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run():
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return fut.result(timeout=30)

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._thread.is_alive() and self.loop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self.loop.stop)
            except RuntimeError:  # loop already closed
                pass
        self._thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> "NbdServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
