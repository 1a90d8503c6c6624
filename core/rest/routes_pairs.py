"""Mirrored pairs: members of a group, their reserved capacity ("repository") and incomplete ones.

A pair is created from the primary array with ``{primaryVolumeRef,
secondaryVolumeRef, percentCapacity, secondaryPercentCapacity}``; each volume may be
given by ref or by name. The secondary volume lives on the remote array, so its ref
is looked up there (over the channel) and only when a ref, not a name, was given.
"""
from __future__ import annotations

import re

from aiohttp import web

from core.errors import NotFound
from core.rest import models
from core.rest.routes_context import Body, context, no_content, reply
from core.rest.routes_mirrors import GROUP, GROUPS

PAIRS = f"{GROUP}/pairs"
PAIR_UTILIZATION = f"{GROUPS}/pairs/{{pid}}/repository-utilization"
CREATE_FIELDS = ("primaryVolumeRef", "secondaryVolumeRef", "percentCapacity", "secondaryPercentCapacity")
_VOLUME_REF = re.compile(r"^02[0-9A-Fa-f]{38}$")


async def list_pairs(request: web.Request) -> web.Response:
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    return reply([await ctx.pair_json(p) for p in g.pairs])


async def _remote_volume_name(ctx, remote: str, ref: str) -> str:
    if not _VOLUME_REF.match(ref):
        return ref
    for v in await ctx.engine.remote_volumes(ctx.array, remote):
        if models.volume_ref(remote, v.name) == ref.upper():
            return v.name
    raise NotFound(f"array {remote} has no volume with ref {ref}", code="volumeNotFound")


async def add_pair(request: web.Request) -> web.Response:
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    body = await Body.read(request, CREATE_FIELDS, required=("primaryVolumeRef", "secondaryVolumeRef"))
    primary = await ctx.volume(body.text("primaryVolumeRef"))
    secondary = await _remote_volume_name(ctx, g.remote_array, body.text("secondaryVolumeRef"))
    p = await ctx.engine.add_pair(g.name, ctx.ref(primary.name), f"{g.remote_array}/{secondary}",
                                  body.number("percentCapacity", 20.0), body.number("secondaryPercentCapacity"))
    return reply(await ctx.pair_json(p), status=201)


async def get_pair(request: web.Request) -> web.Response:
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    return reply(await ctx.pair_json(await ctx.pair(request.match_info["pid"], g)))


async def remove_pair(request: web.Request) -> web.Response:
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    p = await ctx.pair(request.match_info["pid"], g)
    await ctx.engine.remove_pair(ctx.ref(p.local_volume))
    return no_content()


async def all_utilization(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply([models.utilization_to_ws(p) for p in await ctx.engine.pairs(array=ctx.array)])


async def pair_utilization(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply(models.utilization_to_ws(await ctx.pair(request.match_info["pid"])))


async def increase_reserved(request: web.Request) -> web.Response:
    """``{percent}`` of the base volume: reserved capacity only grows (project extension)."""
    ctx = context(request)
    p = await ctx.pair(request.match_info["pid"])
    body = await Body.read(request, ("percent",), required=("percent",))
    await ctx.engine.increase_reserved_capacity(ctx.ref(p.local_volume), body.number("percent"))
    return reply(models.utilization_to_ws(await ctx.pair(p.local_volume)))


async def incomplete_pairs(request: web.Request) -> web.Response:
    """Pairs created here while the remote array was unreachable, not yet completed on it."""
    ctx = context(request)
    return reply([await ctx.pair_json(p) for p in await ctx.engine.pairs(array=ctx.array)
                  if p.status == "incomplete"])


def routes() -> list[web.RouteDef]:
    """Registered before the group routes: ``async-mirrors/incomplete-pairs`` is not a group."""
    return [
        web.get(f"{GROUPS}/incomplete-pairs", incomplete_pairs),
        web.get(f"{GROUPS}/pairs/repository-utilization", all_utilization),
        web.get(PAIR_UTILIZATION, pair_utilization),
        web.post(f"{GROUPS}/pairs/{{pid}}/reserved-capacity", increase_reserved),
        web.get(PAIRS, list_pairs),
        web.post(PAIRS, add_pair),
        web.get(f"{PAIRS}/{{pid}}", get_pair),
        web.delete(f"{PAIRS}/{{pid}}", remove_pair),
    ]
