"""Opening mirroring channel sessions: the connecting side and the listening side (SPEC §3).

Both run the authentication handshake (core.channel.auth) and then hand the
connection to a :class:`~core.channel.session.Session`.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as _ssl
from collections import deque
from typing import Callable

from core.channel import auth, frames
from core.channel.bandwidth import LinkScheduler
from core.channel.frames import ChannelError, FrameType
from core.channel.session import ChannelHandler, Session
from core.channel.stream import open_channel_connection, start_channel_server
from core.errors import CommunicationError, MirrorError

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_CODE = "arvmChannelHandshakeTimeout"

# on_refused(peer_address, code, message): the address (no port) a refused login came from.
RefusalCallback = Callable[[str, str, str], None]


class ChannelClient:
    """Opens sessions to a remote array."""

    @staticmethod
    async def connect(addresses: list[tuple[str, int]], local_name: str, remote_name: str,
                      remote_password: str, timeout: float = 10.0, *,
                      ssl: _ssl.SSLContext | None = None,
                      handler: ChannelHandler | None = None,
                      scheduler: LinkScheduler | None = None) -> Session:
        """Try each channel address in turn; the first that connects carries the session.

        A refusal (wrong password, protocol version) is final and raised at once;
        an unreachable address moves on to the next. When none connects, the error
        lists every address with its reason.
        """
        if not addresses:
            raise CommunicationError(f"Remote array '{remote_name}' has no channel address.")
        failures = []
        for host, port in addresses:
            peer = f"remote array '{remote_name}' ({host}:{port})"
            writer = None
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await open_channel_connection(
                        host, port, ssl=ssl, server_hostname=host if ssl is not None else None)
                    await auth.client_handshake(reader, writer, local_name, remote_name,
                                                remote_password, peer)
                    reader.logged_in()
            except (OSError, asyncio.IncompleteReadError, TimeoutError, _ssl.SSLError) as exc:
                if writer is not None:
                    writer.close()
                reason = "timed out" if isinstance(exc, TimeoutError) else \
                    "connection closed" if isinstance(exc, asyncio.IncompleteReadError) else \
                    (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
                failures.append(f"{host}:{port} ({reason})")
                continue
            except ChannelError as exc:
                if writer is not None:
                    writer.close()
                if exc.code == "arvmChannelVersionMismatch":
                    raise  # the same array on every address: trying others cannot help
                failures.append(f"{host}:{port} (not a mirroring channel port: {exc.code})")
                continue
            except BaseException:
                if writer is not None:
                    writer.close()
                raise
            return Session(reader, writer, local_name, remote_name, handler, scheduler)
        raise CommunicationError(
            f"Cannot reach remote array '{remote_name}' on any of its channel addresses: "
            f"{', '.join(failures)}. Check the link and that the remote array is running.")


class ChannelServer:
    """Listens for arrays that mirror to this one and dispatches to ``handler``.

    Every refusal (wrong password, version mismatch, a protocol error or a handshake
    that timed out, a login refused by the ``throttle``, a session closed for a
    protocol error) is logged in one line and passed to ``on_refused(peer_address,
    code, message)``, so the array's event log can show who is knocking; ``errors``
    keeps the latest of them. Failed logins slow down further ones from the same
    address (:class:`~core.channel.auth.LoginThrottle`).
    """

    def __init__(self, local_name: str, salt: bytes, stored_hash: bytes,
                 handler: ChannelHandler, host: str = "127.0.0.1", port: int = 0, *,
                 ssl: _ssl.SSLContext | None = None, scheduler: LinkScheduler | None = None,
                 handshake_timeout: float = 10.0, on_refused: RefusalCallback | None = None,
                 throttle: auth.LoginThrottle | None = None):
        self.local_name = local_name
        self.handler = handler
        self.host = host
        self.sessions: set[Session] = set()
        self.errors: deque[MirrorError] = deque(maxlen=100)
        self.on_refused = on_refused
        self.throttle = throttle if throttle is not None else auth.LoginThrottle()
        self._salt = salt
        self._hash = stored_hash
        self._requested_port = port
        self._ssl = ssl
        self._scheduler = scheduler
        self._handshake_timeout = handshake_timeout
        self._server: asyncio.base_events.Server | None = None
        self._handshakes: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the channel server is not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await start_channel_server(
            self._on_connect, self.host, self._requested_port, ssl=self._ssl)

    async def stop(self) -> None:
        """Stop listening and close every session."""
        if self._server is not None:
            self._server.close()
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in list(self.sessions)), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._handshakes.add(task)
        addr = writer.get_extra_info("peername")
        address = str(addr[0]) if addr else "an unknown address"
        peer = f"the array connecting from {addr[0]}:{addr[1]}" if addr else "a connecting array"
        verdict: bool | None = None  # for the throttle: logged in, refused, or neither
        wait = self.throttle.admit(address)
        try:
            if wait is None:  # not admitted, so not finished either: no further failure counted
                exc = auth.login_throttled(self.local_name, address)
                self._refused(address, exc)
                with contextlib.suppress(Exception):
                    writer.write(frames.json_frame(FrameType.ERROR, {"code": exc.code, "message": exc.message}))
                await self._close_quietly(writer)
                return
            if wait:
                await asyncio.sleep(wait)  # before reading a word from an address that keeps failing
            async with asyncio.timeout(self._handshake_timeout):
                name = await auth.server_handshake(reader, writer, self.local_name,
                                                   self._salt, self._hash, peer)
            reader.logged_in()
            verdict = True
        except MirrorError as exc:
            verdict = False
            self.throttle.finish(address, False)  # counted now: the next attempt may already be on its way
            self._refused(address, exc)
            await self._close_quietly(writer)
            return
        except TimeoutError:
            self._refused(address, CommunicationError(
                f"{peer} did not complete the mirroring channel handshake within "
                f"{self._handshake_timeout:g} s; the connection was closed.", code=HANDSHAKE_TIMEOUT_CODE))
            await self._close_quietly(writer)
            return
        except (OSError, asyncio.IncompleteReadError, _ssl.SSLError):
            await self._close_quietly(writer)
            return
        except asyncio.CancelledError:
            # Only ``stop`` cancels a handshake; ending quietly keeps asyncio from
            # logging a traceback for the connection callback.
            writer.close()
            return
        finally:
            self._handshakes.discard(task)
            if wait is not None and verdict is not False:
                self.throttle.finish(address, verdict)
        self.sessions.add(Session(reader, writer, self.local_name, name, self.handler, self._scheduler,
                                  on_closed=lambda session: self._session_closed(session, address)))

    def _session_closed(self, session: Session, address: str) -> None:
        self.sessions.discard(session)
        if isinstance(session.close_reason, ChannelError):
            self._refused(address, session.close_reason)

    def _refused(self, address: str, exc: MirrorError) -> None:
        """Record a refusal: one log line, ``errors``, and the ``on_refused`` callback."""
        self.errors.append(exc)
        log.warning("mirroring channel of %s refused %s: %s [%s]", self.local_name, address, exc.message, exc.code)
        if self.on_refused is None:
            return
        try:
            self.on_refused(address, exc.code, exc.message)
        except Exception:  # whoever listens must not take the channel down with it
            log.exception("on_refused callback failed for %s", address)

    @staticmethod
    async def _close_quietly(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await writer.drain()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
