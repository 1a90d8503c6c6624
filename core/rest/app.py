"""The array daemon's REST application: login, error mapping, path tidying and the route table.

Everything runs on the engine's own asyncio loop (the engine is not thread-safe):
``start_rest`` is awaited there and every handler awaits engine coroutines
directly. The route table is built here, in one place, from each resource
family's ``routes()``.

Requests pass, outermost first: errors (one JSON shape for every failure) ->
login (HTTP basic, ``admin`` + the array password; only ``/devmgr/utils/about`` is
open) -> dispatch (doubled and trailing slashes tidied, ``{system}`` checked, body size
bounded) -> the handler.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import ssl

from aiohttp import web

from core.rest import events, routes_events, routes_extensions, routes_lab, routes_metrics, routes_mirrors
from core.rest import routes_pairs, routes_preserved, routes_system, routes_volumes
from core.rest.errors import BODY_LIMIT, error_middleware, error_response, too_large
from core.rest.routes_context import CONTEXT, ArrayContext, context
from core.snapshots import EngineEvent

ADMIN_USER = "admin"
OPEN_PATHS = (routes_system.ABOUT_PATH,)
SHUTDOWN_SECONDS = 5.0  # event streams end at shutdown; nothing else runs long
_SLASHES = re.compile(r"/{2,}")
# Pair routes before group routes: "async-mirrors/incomplete-pairs" must not be taken for a group id.
ROUTE_FAMILIES = (routes_system, routes_volumes, routes_pairs, routes_mirrors, routes_extensions, routes_lab,
                  routes_events, routes_metrics, routes_preserved)


class Login:
    """HTTP basic auth against the array password, remembering logins already verified.

    The password check is PBKDF2 (about 50 ms of CPU on the engine's loop), so a
    client polling every second would spend a good part of the loop on it: a
    verified ``Authorization`` header is remembered (as an HMAC under a per-process
    key, never in clear) until the password changes.
    """

    MAX_REMEMBERED = 64

    def __init__(self, ctx: ArrayContext):
        self.ctx = ctx
        self.realm = f'Basic realm="Async Mirror array {ctx.array}", charset="UTF-8"'
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()

    def forget(self, ev: EngineEvent) -> None:
        """Called for every engine event: a change of this array (its password) drops what was verified."""
        if ev.kind == "array" and ev.array == self.ctx.array:
            self._verified.clear()

    def allows(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        token = hmac.new(self._key, header.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
        if token in self._verified:
            return True
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep or user != ADMIN_USER or not self.ctx.engine.get_array(self.ctx.array).check_password(password):
            return False
        if len(self._verified) >= self.MAX_REMEMBERED:
            self._verified.clear()
        self._verified.add(token)
        return True


LOGIN = web.AppKey("login", Login)
_LOGIN_SUBSCRIPTION = web.AppKey("login-subscription", object)  # its unsubscribe function


def _tidy(path: str) -> str:
    """Doubled slashes collapsed and a trailing one dropped: ``base_url + "/" + path`` scripts still work."""
    tidy = _SLASHES.sub("/", path)
    return tidy[:-1] if len(tidy) > 1 and tidy.endswith("/") else tidy


@web.middleware
async def login_middleware(request: web.Request, handler) -> web.StreamResponse:
    if _tidy(request.path) in OPEN_PATHS or request.app[LOGIN].allows(request.headers.get("Authorization")):
        return await handler(request)
    # Nothing but the challenge: a prober learns no more than that a login is needed.
    return web.Response(status=401, headers={"WWW-Authenticate": request.app[LOGIN].realm})


@web.middleware
async def dispatch_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Innermost: route untidy paths (``//``, a trailing ``/``) as if written tidily, check ``{system}``, bound the body."""
    if _tidy(request.path) != request.path:
        tidy = request.clone(rel_url=request.rel_url.with_path(_tidy(request.path)))
        match = await request.app.router.resolve(tidy)
        match.add_app(request.app)
        match.freeze()
        tidy._match_info = match  # what aiohttp's own normalize_path_middleware does, without the redirect
        request, handler = tidy, match.handler
    system = request.match_info.get("system")
    if system is not None and not await context(request).is_system(system):
        ctx = context(request)
        return error_response(404, "storageSystemNotFound",
                              f"no storage system '{system}' here; this daemon serves {ctx.array} "
                              f"(id 1, WWN {await ctx.wwn()})")
    route = request.match_info.route
    if (request.content_length or 0) > BODY_LIMIT and not routes_volumes.streams_data(route.handler):
        return too_large()
    return await handler(request)


def build_app(engine, array_name: str) -> web.Application:
    """The REST app serving ``array_name`` of ``engine`` (login, errors, path tidying, every route)."""
    ctx = ArrayContext(engine, array_name)
    app = web.Application(middlewares=[error_middleware, login_middleware, dispatch_middleware],
                          client_max_size=BODY_LIMIT)
    app[CONTEXT] = ctx
    app[LOGIN] = Login(ctx)
    app[routes_events.HUB] = events.EventHub(engine, array_name)
    for family in ROUTE_FAMILIES:
        app.add_routes(family.routes())
    app.on_startup.append(_subscribe)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_unsubscribe)
    return app


async def _subscribe(app: web.Application) -> None:
    app[routes_events.HUB].start()
    app[_LOGIN_SUBSCRIPTION] = app[CONTEXT].engine.subscribe(app[LOGIN].forget)


async def _end_streams(app: web.Application) -> None:
    app[routes_events.HUB].stop()


async def _unsubscribe(app: web.Application) -> None:
    app[routes_events.HUB].stop()
    app[_LOGIN_SUBSCRIPTION]()


async def start_rest(engine, array_name: str, host: str, port: int,
                     ssl_context: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    """Serve ``array_name`` on ``host:port`` (0 picks a free port); returns the runner and the bound port.

    Await it on the engine's loop. ``ssl_context`` comes from :func:`core.rest.tls.server_context`;
    ``None`` serves plain HTTP (behind a TLS-terminating proxy only).
    """
    runner = web.AppRunner(build_app(engine, array_name), shutdown_timeout=SHUTDOWN_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]


async def stop_rest(runner: web.AppRunner) -> None:
    """Stop serving: end event streams, close connections, unsubscribe from the engine."""
    await runner.cleanup()
