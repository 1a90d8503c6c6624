"""A client of one array daemon's REST API: HTTPS, a trusted or pinned certificate, basic auth.

Every client of an array — mirrorctl, the console's engine, the lab supervisor — talks
to it through this surface (DESIGN: no private path "because it is the same machine").
Errors come back as :class:`~core.errors.MirrorError` with the array's stable
``retcode``, so a refusal reads the same whether the engine ran here or over HTTP.

Trust: an array's certificate is usually self-signed. Give either ``cafile`` (the
certificate itself, or the CA that signed the administrator's own) or
``fingerprint`` (the SHA-256 of the certificate, as ``daemon.json`` and the array's
``about`` page show it): aiohttp checks the pin on every new TLS connection, so a
daemon that comes back with another certificate is refused, never silently trusted.
"""
from __future__ import annotations

import asyncio
import base64
import json as jsonlib
import ssl
import time
from typing import Any

import aiohttp

from core.errors import (CommunicationError, DataDirLocked, HostWriteRefused, InvalidInput, MirrorError, NotFound,
                         ReservedCapacityFull, VolumeFailed)

API_ROOT = "/devmgr/v2/storage-systems/1/"
ABOUT = "/devmgr/utils/about"
USER = "admin"


def normalise_fingerprint(text: str) -> bytes:
    """``AB:CD:...`` or ``abcd...`` (SHA-256, 64 hex digits) -> 32 bytes."""
    hexdigits = text.replace(":", "").strip().lower()
    try:
        digest = bytes.fromhex(hexdigits)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise MirrorError(f"certificate fingerprint '{text}' is not a SHA-256 (64 hexadecimal digits)",
                          code="invalidFingerprint")
    return digest


def _ssl_for(base_url: str, cafile: str | None, fingerprint: str | None):
    if cafile and fingerprint:
        raise MirrorError("give the array's certificate file or its fingerprint, not both", code="invalidInput")
    if not base_url.startswith("https:"):
        return False
    if fingerprint:
        return aiohttp.Fingerprint(normalise_fingerprint(fingerprint))
    return ssl.create_default_context(cafile=str(cafile) if cafile else None)


class ArrayClient:
    """Async calls to one array: ``await client.get("async-mirrors")``; close it (or ``async with``).

    Paths are relative to ``/devmgr/v2/storage-systems/1/`` unless they start with ``/``.
    The aiohttp session is made on first use, inside the loop that uses it.
    """

    def __init__(self, base_url: str, password: str, *, cafile: str | None = None, fingerprint: str | None = None,
                 timeout: float = 30, saved_as: str | None = None):
        """``saved_as``: the managed array's display name, for a message that says how to re-trust it."""
        self.base_url = base_url.rstrip("/")
        self.saved_as = saved_as
        # The header is built here: aiohttp's BasicAuth helper is deprecated from 3.14 on.
        self._auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode("ascii")}
        self._ssl = _ssl_for(self.base_url, cafile, fingerprint)
        self.pinned_sha256 = normalise_fingerprint(fingerprint).hex() if fingerprint else None
        self._cafile = cafile
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._closed = False  # closed for good: a call after close() opens no new session
        # What the console shows of a managed array's reachability: when it last answered
        # (time.time()), and why the last call could not reach it (None once it answers again).
        self.last_answered: float | None = None
        self.last_error: str | None = None
        self.presented_sha256: str | None = None  # set when the array presented another certificate than the pin

    @classmethod
    def for_daemon(cls, info: dict, password: str, **kwargs) -> "ArrayClient":
        """A client of the daemon described by its ``daemon.json`` (REST URL, pinned certificate)."""
        return cls(info["restUrl"], password, fingerprint=info["certificateSha256"], **kwargs)

    # -- calls ----------------------------------------------------------------
    async def get(self, path: str, **params) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.request("POST", path, json=json)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    async def put_bytes(self, path: str, data: bytes, **params) -> Any:
        return await self.request("PUT", path, params=params, data=data,
                                  headers={"Content-Type": "application/octet-stream"})

    async def get_bytes(self, path: str, **params) -> bytes:
        return await self.request("GET", path, params=params, raw=True)

    async def about(self) -> dict:
        """The array's identity (needs no password): version, systemId, arrayName, worldWideName."""
        return await self.request("GET", ABOUT, auth=False)

    async def request(self, method: str, path: str, **kwargs) -> Any:
        """One call; ``timeout`` overrides the client's (None: no limit, for a sync that runs to its end)."""
        try:
            result = await self._request(method, path, **kwargs)
        except MirrorError as e:
            if isinstance(e, CommunicationError) or e.code.startswith("certificate"):
                self.last_error = e.message
            elif getattr(e, "http_status", None) is not None:  # it answered, if only to refuse
                self.answered()
            raise
        self.answered()
        return result

    def certificate_changed(self, e: aiohttp.ServerFingerprintMismatch) -> MirrorError:
        """The array presented another certificate than the pinned one: refused, both fingerprints in one line."""
        self.presented_sha256 = e.got.hex()
        if self.saved_as:
            message = (f"the certificate of array '{self.saved_as}' changed: {self.base_url} now presents SHA-256 "
                       f"{e.got.hex()}, the accepted one is {e.expected.hex()}; if it was replaced on purpose, check "
                       f"it and add the array again ('mirrorctl array remove {self.saved_as}', then 'array add')")
        else:
            message = (f"the array at {self.base_url} presented certificate SHA-256 {e.got.hex()}, not the pinned "
                       f"{e.expected.hex()}; if its certificate was replaced on purpose, pin the new one")
        self.last_error = message
        return MirrorError(message, code="certificateMismatch")

    def answered(self) -> None:
        """The array answered (a call, or its event stream): reachable now."""
        self.last_answered = time.time()
        self.last_error = None
        self.presented_sha256 = None

    async def _request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                       data: bytes | None = None, headers: dict | None = None, raw: bool = False,
                       auth: bool = True, timeout: float | None | object = ...) -> Any:
        url = self.url(path)
        session = self._open()
        limit = {} if timeout is ... else {"timeout": aiohttp.ClientTimeout(total=timeout)}
        try:
            headers = {**(self._auth if auth else {}), **(headers or {})}
            async with session.request(method, url, params=_plain_params(params), json=json, data=data,
                                       headers=headers, **limit) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise _http_error(self.base_url, method, url, resp, body)
                if raw:
                    return body
                if not body:
                    return None
                if resp.content_type == "application/json":
                    return await resp.json()
                return body.decode("utf-8", "replace")
        except aiohttp.ServerFingerprintMismatch as e:
            raise self.certificate_changed(e) from None
        except aiohttp.ClientConnectorCertificateError as e:
            trusted = f"the certificate in {self._cafile}" if self._cafile else "this system's CAs"
            raise MirrorError(f"the array at {self.base_url} presented a certificate that {trusted} does not "
                              f"vouch for ({e.certificate_error}); give its certificate or fingerprint",
                              code="certificateUntrusted") from None
        except aiohttp.ClientConnectorError as e:
            reason = (e.os_error.strerror or str(e.os_error)) if e.os_error else str(e)
            raise CommunicationError(f"cannot reach the array at {self.base_url}: {reason}",
                                     code="arrayUnreachable") from None
        except asyncio.TimeoutError:
            raise CommunicationError(f"the array at {self.base_url} did not answer {method} {path} within "
                                     f"{self.timeout:g} s", code="arrayUnreachable") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as e:
            raise CommunicationError(f"the connection to the array at {self.base_url} failed during {method} "
                                     f"{path}: {e or type(e).__name__}", code="arrayUnreachable") from None

    def stream(self, path: str, headers: dict | None = None):
        """An open streaming response (the event stream): ``async with client.stream(p) as resp``.

        No total timeout: the stream lasts as long as the array runs; the reader notices a
        dead connection by the server's heartbeats stopping (see core.client.events).
        """
        return self._open().get(self.url(path), headers={**self._auth, **(headers or {})},
                                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout))

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else API_ROOT + path)

    # -- life cycle -----------------------------------------------------------
    def _open(self) -> aiohttp.ClientSession:
        if self._closed:  # a call still running when its fleet stopped: no new connection left unclosed
            raise CommunicationError(f"the client of {self.base_url} is closed", code="clientClosed")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "ArrayClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _plain_params(params: dict | None) -> dict | None:
    """Query parameters as the Web Services API spells them (``true``, no ``None``)."""
    if not params:
        return None
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items() if v is not None}


# Refusals that callers catch by class (a host write to a secondary, a failed volume...): the same
# class over REST as from the engine, so a refusal reads the same wherever the array runs.
REFUSAL_CLASSES = {cls.code: cls for cls in (HostWriteRefused, VolumeFailed, ReservedCapacityFull, DataDirLocked)}


def _http_error(base_url: str, method: str, url: str, resp: aiohttp.ClientResponse, body: bytes) -> MirrorError:
    """The array's JSON error (``errorMessage``, ``retcode``) as a MirrorError, whatever the status."""
    message = code = None
    try:
        doc = jsonlib.loads(body) if body else None
        if isinstance(doc, dict):
            message = doc.get("errorMessage") or doc.get("localizedMessage")
            code = doc.get("retcode") or doc.get("codeType")
    except ValueError:
        pass
    if message is None:
        text = body.decode("utf-8", "replace").strip().splitlines()
        message = f"{method} {url} answered HTTP {resp.status} {resp.reason}" + (f": {text[0][:200]}" if text else "")
    if resp.status == 401:
        error: MirrorError = MirrorError(
            f"the array at {base_url} refused the password for user '{USER}' ({message}); "
            "give that array's admin password", code=code or "authenticationFailed")
    elif resp.status == 404:
        error = NotFound(message, code=code or "notFound")
    elif code in REFUSAL_CLASSES:
        error = REFUSAL_CLASSES[code](message, code=code)
    elif resp.status == 422:
        error = InvalidInput(message, code=code or "invalidInput")
    else:  # 424 (a remote array of that array did not answer) stays a refusal BY the array: it answered
        error = MirrorError(message, code=code or f"http{resp.status}")
    error.http_status = resp.status
    return error


class BlockingArrayClient:
    """The same calls, blocking, for the CLI and the lab supervisor (never inside a running loop).

    It owns a private event loop and runs each call to completion on it in the calling
    thread. Not ``asyncio.run`` per call: an aiohttp session belongs to one loop, so a
    loop per call would mean a new session and a new TLS handshake for every request;
    one loop keeps the pooled, already-pinned connections across a command's calls.
    Use it from one thread at a time.
    """

    def __init__(self, base_url: str, password: str, **kwargs):
        self._client = ArrayClient(base_url, password, **kwargs)
        self._loop = asyncio.new_event_loop()

    @classmethod
    def for_daemon(cls, info: dict, password: str, **kwargs) -> "BlockingArrayClient":
        return cls(info["restUrl"], password, fingerprint=info["certificateSha256"], **kwargs)

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def _run(self, coro):
        if self._loop.is_closed():
            coro.close()
            raise MirrorError(f"the client of {self.base_url} is closed", code="clientClosed")
        return self._loop.run_until_complete(coro)

    def get(self, path: str, **params) -> Any:
        return self._run(self._client.get(path, **params))

    def post(self, path: str, json: Any = None) -> Any:
        return self._run(self._client.post(path, json))

    def delete(self, path: str) -> Any:
        return self._run(self._client.delete(path))

    def put_bytes(self, path: str, data: bytes, **params) -> Any:
        return self._run(self._client.put_bytes(path, data, **params))

    def get_bytes(self, path: str, **params) -> bytes:
        return self._run(self._client.get_bytes(path, **params))

    def about(self) -> dict:
        return self._run(self._client.about())

    def close(self) -> None:
        if not self._loop.is_closed():
            try:
                self._loop.run_until_complete(self._client.close())
            finally:
                self._loop.close()

    def __enter__(self) -> "BlockingArrayClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
