"""The lab link relay as a background process, with a small control API.

``mirrorctl lab relay --home H --route SiteA=HOST:PORT --route SiteB=HOST:PORT`` (started
by ``lab up``; not meant to be typed) runs a :class:`~core.lab.relay.LinkRelay` until
SIGTERM/SIGINT. Its control API is aiohttp on 127.0.0.1, on a random port, and needs
``Authorization: Bearer TOKEN`` with a random token: other local users cannot cut a
lab's link. Port and token are in ``H/relay.json`` (mode 0600), with the routes:

    {"pid": 4242, "controlUrl": "http://127.0.0.1:40123", "token": "...", "startedAt": "...",
     "routes": {"SiteA": {"listen": "127.0.0.1:40001", "target": "127.0.0.1:39001"}, ...}}

- ``GET /link`` -> the link's state (:meth:`LinkRelay.status`);
- ``POST /link`` with ``{"cut": true|false}`` and/or ``{"bandwidth": bytes/s|null, "latency": s}``;
- ``POST /routes`` with ``{"routes": {"SiteA": "HOST:PORT"}}`` when a daemon moved.

Errors are JSON ``{errorMessage, localizedMessage, retcode, codeType}`` like the arrays'.
The listening ports are remembered in ``H/link-ports.json`` and reused when free, so
the arrays' remote-array entries stay valid across relay restarts.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
import signal
import socket
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import web

from core.errors import InvalidInput, MirrorError
from core.lab.processes import read_json, write_atomic
from core.lab.relay import LinkRelay, split_address

log = logging.getLogger(__name__)

RELAY_FILE = "relay.json"
RELAY_PID = "relay.pid"
RELAY_LOG = "relay.log"
PORTS_FILE = "link-ports.json"


def remembered_ports(home: Path) -> dict[str, int]:
    ports = (read_json(Path(home) / PORTS_FILE) or {}).get("ports", {})
    return {k: int(v) for k, v in ports.items() if isinstance(v, int)}


def parse_routes(items: list[str]) -> dict[str, str]:
    """``NAME=HOST:PORT`` arguments -> {name: "host:port"}."""
    routes: dict[str, str] = {}
    for item in items:
        name, sep, target = item.partition("=")
        try:
            split_address(target)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise InvalidInput(f"route '{item}' is not NAME=HOST:PORT", code="invalidRoute")
        routes[name] = target
    return routes


def _error(e: MirrorError, status: int = 400) -> web.Response:
    return web.json_response({"errorMessage": e.message, "localizedMessage": e.message, "retcode": e.code,
                              "codeType": "labError"}, status=status)


def control_app(relay: LinkRelay, token: str, on_routes) -> web.Application:
    """The control API over ``relay``; ``on_routes()`` runs after the routes changed."""

    @web.middleware
    async def guard(request, handler):
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(MirrorError("the lab link's control API needs the token from relay.json",
                                      code="notAuthorized"), 401)
        try:
            return await handler(request)
        except MirrorError as e:
            return _error(e)

    async def body_of(request) -> dict:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object", code="invalidRequest")
        return body

    async def get_link(request):
        return web.json_response(relay.status())

    async def post_link(request):
        body = await body_of(request)
        unknown = set(body) - {"cut", "bandwidth", "latency"}
        if unknown:
            raise InvalidInput(f"unknown link setting(s) {', '.join(sorted(unknown))}; "
                               "give cut, bandwidth or latency", code="invalidRequest")
        if "cut" in body and not isinstance(body["cut"], bool):
            raise InvalidInput("cut must be true or false", code="invalidRequest")
        settings = {k: body[k] for k in ("bandwidth", "latency") if k in body}
        relay.set(**settings)  # validates before anything changes
        closed = None
        if body.get("cut") is True:
            closed = relay.cut()
        elif body.get("cut") is False:
            relay.restore()
        log.info("link %s", json.dumps({**body, **({"connectionsClosed": closed} if closed is not None else {})}))
        return web.json_response({**relay.status(), **({"connectionsClosed": closed} if closed is not None else {})})

    async def post_routes(request):
        body = await body_of(request)
        routes = body.get("routes")
        if not isinstance(routes, dict) or not all(isinstance(v, str) for v in routes.values()):
            raise InvalidInput('give {"routes": {"NAME": "HOST:PORT", ...}}', code="invalidRequest")
        await relay.set_routes(parse_routes([f"{k}={v}" for k, v in routes.items()]))
        on_routes()
        log.info("routes %s", json.dumps(routes))
        return web.json_response(relay.status())

    app = web.Application(middlewares=[guard])
    app.router.add_get("/link", get_link)
    app.router.add_post("/link", post_link)
    app.router.add_post("/routes", post_routes)
    return app


async def serve(home: Path, routes: dict[str, str]) -> None:
    """Relay until SIGTERM/SIGINT; ``relay.json`` exists exactly while the control API answers."""
    home = Path(home)
    relay = LinkRelay(routes, remembered_ports(home))
    await relay.start()
    token = secrets.token_urlsafe(32)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    info = {"pid": os.getpid(), "controlUrl": "http://127.0.0.1:%d" % sock.getsockname()[1], "token": token,
            "startedAt": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def publish() -> None:
        status = relay.status()["routes"]
        write_atomic(home / PORTS_FILE, json.dumps({"ports": relay.ports()}, indent=2) + "\n")
        write_atomic(home / RELAY_FILE, json.dumps(
            {**info, "routes": {n: {"listen": r["listen"], "target": r["target"]} for n, r in status.items()}},
            indent=2) + "\n", mode=0o600)

    runner = web.AppRunner(control_app(relay, token, publish), access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.SockSite(runner, sock).start()
        publish()
        log.info("lab link relay %s: %s", info["controlUrl"],
                 ", ".join(f"{n} {relay.address(n)} -> {t}" for n, t in routes.items()))
        await stop.wait()
    finally:
        if (read_json(home / RELAY_FILE) or {}).get("pid") == os.getpid():
            (home / RELAY_FILE).unlink(missing_ok=True)
        await runner.cleanup()
        await relay.close()
        log.info("lab link relay stopped")


def run(home: Path, routes: dict[str, str]) -> None:
    """The ``mirrorctl lab relay`` process body: logs to stderr (the supervisor's relay.log)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(home, routes))
