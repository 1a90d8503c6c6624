"""``GET /metrics``: Prometheus scrapes the array daemon directly (same HTTPS and basic auth)."""
from __future__ import annotations

from aiohttp import web

from core.rest import metrics
from core.rest.routes_context import context

METRICS_PATH = "/metrics"


async def get_metrics(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await metrics.scrape(ctx.engine, ctx.array)
    return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})


def routes() -> list[web.RouteDef]:
    return [web.get(METRICS_PATH, get_metrics)]
