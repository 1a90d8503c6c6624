"""Preserved data (project extension): what a role-conflict loser wrote while apart, kept before its resync.

``GET preserved-data`` lists them; ``GET preserved-data/{id}`` gives one set's index;
``GET preserved-data/{id}/data`` its bytes (regions back to back, as the index places
them); ``POST preserved-data/{id}/restore`` (``{volume}``) creates a new volume with the
writes in place; ``DELETE preserved-data/{id}`` deletes them.
"""
from __future__ import annotations

from aiohttp import web

from core.rest import models
from core.rest.routes_context import V2, Body, context, no_content, reply

PRESERVED = f"{V2}/preserved-data"


async def list_preserved(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply(await ctx.engine.preserved_data(ctx.array))


async def get_preserved(request: web.Request) -> web.Response:
    ctx = context(request)
    entry, _ = await ctx.engine.preserved_read(request.match_info["id"])
    return reply(models.jsonable(entry))


async def preserved_bytes(request: web.Request) -> web.Response:
    ctx = context(request)
    _, data = await ctx.engine.preserved_read(request.match_info["id"])
    return web.Response(body=data, content_type="application/octet-stream")


async def restore_preserved(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await Body.read(request, ("volume",), required=("volume",))
    return reply(await ctx.engine.preserved_restore(request.match_info["id"], body.text("volume")), status=201)


async def delete_preserved(request: web.Request) -> web.Response:
    ctx = context(request)
    await ctx.engine.preserved_delete(request.match_info["id"])
    return no_content()


def routes() -> list[web.RouteDef]:
    return [
        web.get(PRESERVED, list_preserved),
        web.get(f"{PRESERVED}/{{id}}", get_preserved),
        web.get(f"{PRESERVED}/{{id}}/data", preserved_bytes),
        web.post(f"{PRESERVED}/{{id}}/restore", restore_preserved),
        web.delete(f"{PRESERVED}/{{id}}", delete_preserved),
    ]
