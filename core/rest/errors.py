"""How a refusal reaches a REST client: the one place that maps errors to HTTP.

Every error body has the Web Services shape ``{errorMessage, localizedMessage,
retcode, codeType}``; ``retcode`` is the engine's stable code (SANtricity names
where one exists), ``errorMessage`` the one line that says what to change.

Status codes, and why:

* ``NotFound`` -> 404.
* ``InvalidInput`` -> 422, and so is everything wrong with a request itself: bad
  JSON, an unknown field (named in the message), a wrong type, an unsupported option
  (retcode ``notSupported``), a wrong current password (retcode ``invalidPassword``).
* ``CommunicationError`` -> 424 Failed Dependency: this daemon is healthy, the remote
  array it needed is not. 503 would say *this* server is unavailable and make
  clients and proxies retry it, which does not help.
* any other ``MirrorError`` -> 409 Conflict: a refusal given the current state of
  the arrays (group not empty, sync running, role change pending, volume already
  mirrored, data directory locked...). The same request succeeds once the state
  changes, which is what 409 says; 422 is kept for requests that can never succeed.
* a body over 1 MiB -> 413 (the volume data endpoint streams and is exempt).
* aiohttp's own 404/405 -> the same status, as JSON.
* anything unexpected -> 500 with a one-line message; the traceback goes to the
  server log only, never into a body.

``codeType`` is ``devicemgrerror`` for refusals by the array, ``webservices`` for
requests the REST layer itself cannot route or accept, ``internal`` for 500.

401 is not produced here: a failed login gets an empty body and a
``WWW-Authenticate`` header (see :mod:`core.rest.app`), nothing a prober can read.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from core.errors import CommunicationError, InvalidInput, MirrorError, NotFound

log = logging.getLogger(__name__)

BODY_LIMIT = 1 << 20  # 1 MiB: every JSON body fits many times over
STREAMING = web.RequestKey("streaming", bool)  # the response is already under way


def error_body(retcode: str, message: str, code_type: str = "devicemgrerror") -> dict:
    return {"errorMessage": message, "localizedMessage": message, "retcode": retcode, "codeType": code_type}


def error_response(status: int, retcode: str, message: str, code_type: str = "devicemgrerror") -> web.Response:
    return web.json_response(error_body(retcode, message, code_type), status=status)


def status_for(error: MirrorError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, InvalidInput):
        return 422
    if isinstance(error, CommunicationError):
        return 424
    return 409


def too_large() -> web.Response:
    return error_response(413, "requestTooLarge",
                          f"the request body is larger than {BODY_LIMIT // (1 << 20)} MiB; send less "
                          "(volume data goes to .../volumes/{vol}/data, which streams)", "webservices")


_HTTP_RETCODES = {404: "notFound", 405: "methodNotAllowed", 413: "requestTooLarge"}


def _http_error(request: web.Request, e: web.HTTPException) -> web.Response:
    if e.status == 413:
        return too_large()
    if e.status == 404:
        message = f"no such resource: {request.method} {request.path}"
    elif isinstance(e, web.HTTPMethodNotAllowed):
        message = (f"{request.method} is not allowed on {request.path}; use "
                   f"{', '.join(sorted(e.allowed_methods))}")
    else:
        message = e.text if e.text and not e.text.startswith(str(e.status)) else e.reason
    return error_response(e.status, _HTTP_RETCODES.get(e.status, "httpError"), message, "webservices")


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Outermost middleware: every failure becomes one JSON error body, no traceback."""
    try:
        return await handler(request)
    except MirrorError as e:
        if request.get(STREAMING):
            raise  # the status line is gone: dropping the connection is the only honest signal
        return error_response(status_for(e), e.code, e.message)
    except web.HTTPException as e:
        if e.status < 400 or request.get(STREAMING):
            raise
        return _http_error(request, e)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as e:
        log.exception("REST %s %s failed", request.method, request.path)
        if request.get(STREAMING):
            raise
        return error_response(500, "internalError",
                              f"internal error ({type(e).__name__}) in {request.method} {request.path}; "
                              "the details are in the array daemon's log", "internal")
