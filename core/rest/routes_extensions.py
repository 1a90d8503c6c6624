"""Project extensions beyond the Web Services: what the console and ``mirrorctl`` do that they lack.

Recovery Guru, secondary candidates with the reasons a volume is not eligible,
verification of a recovery point, sync history, DR drills, Long Running Operations
and the list of remote arrays. Same prefix and login as the rest; plain names;
bodies in the project's own camelCase JSON.
"""
from __future__ import annotations

from aiohttp import web

from core.errors import InvalidInput
from core.rest import models
from core.rest.routes_context import V2, Body, context, group_command, no_content, query_flag, query_int, reply
from core.rest.routes_mirrors import GROUP

REMOTE_ARRAYS = f"{V2}/remote-arrays"


async def guru(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply([models.problem_to_ws(p) for p in await ctx.engine.guru()])


async def guru_fix(request: web.Request) -> web.Response:
    """Run one of a current problem's actions (``POST guru/{problemId}/actions/{action}``)."""
    ctx = context(request)
    result = await ctx.engine.guru_fix(request.match_info["problem"], request.match_info["action"])
    return reply(models.jsonable(result))


async def candidates(request: web.Request) -> web.Response:
    """``?primaryVolume=V&remoteArray=B[&channel=fc|iscsi][&reservedPercent=20]``: every remote volume, eligible or why not."""
    ctx = context(request)
    primary = request.query.get("primaryVolume")
    remote = request.query.get("remoteArray")
    for name, value in (("primaryVolume", primary), ("remoteArray", remote)):
        if not value:
            raise InvalidInput(f"query parameter '{name}' is required", code="missingField")
    channel = request.query.get("channel") or None
    if channel not in (None, "fc", "iscsi", "fibre"):
        raise InvalidInput(f"query parameter 'channel' is '{channel}'; use fc or iscsi")
    try:
        reserved = float(request.query.get("reservedPercent") or 20)
    except ValueError:
        raise InvalidInput(f"query parameter 'reservedPercent' must be a number, not "
                           f"'{request.query['reservedPercent']}'") from None
    v = await ctx.volume(primary)
    found = await ctx.engine.candidates(ctx.ref(v.name), await ctx.resolve_remote(remote),
                                        "fc" if channel == "fibre" else channel, reserved)
    return reply([models.candidate_to_ws(c) for c in found])


async def verify(request: web.Request) -> web.Response:
    """Compare each secondary's recovery point with the primary's image at that instant.

    ``?online=true``: the background form (batches with pauses over the channel); what
    differs is marked changed, a Guru problem until the next sync resends it.
    """
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    if query_flag(request, "online"):
        return reply(await ctx.engine.online_verify(g.name))
    return reply(await ctx.engine.verify(g.name))


async def sync_history(request: web.Request) -> web.Response:
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    limit = query_int(request, "limit", 500, minimum=1)
    return reply([models.stats_to_ws(s) for s in await ctx.engine.sync_history(g.name, limit)])


async def drill_start(request: web.Request) -> web.Response:
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    return reply(await ctx.engine.drill_start(g.name), status=201)


async def drills(request: web.Request) -> web.Response:
    """The DR drills running on this array: ``[{group, array, recoveryPoint, exports}]``."""
    ctx = context(request)
    return reply([d for d in await ctx.engine.drills_running() if d["array"] == ctx.array])


async def long_running_operations(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply([op for op in await ctx.engine.long_running_operations() if op.get("array") == ctx.array])


def _remote_list_method(ctx, name: str):
    method = ctx.for_this_array(name)
    if method is None:
        raise InvalidInput("this array daemon keeps no list of remote arrays", code="notSupported")
    return method


async def list_remote_arrays(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply(models.jsonable(await _remote_list_method(ctx, "remote_arrays")()))


async def add_remote_array(request: web.Request) -> web.Response:
    """``{name, addresses: ["host:port", ...], password, wwn?}``: where a remote array listens, and its password."""
    ctx = context(request)
    add = _remote_list_method(ctx, "add_remote_array")
    body = await Body.read(request, ("name", "addresses", "password", "wwn"),
                           required=("name", "addresses", "password"))
    result = await add(body.text("name"), body.texts("addresses"), body.text("password"), body.text("wwn", ""))
    ctx.learn_wwn(body.text("name"), body.text("wwn", ""))
    return reply(models.jsonable(result), status=201)


async def remove_remote_array(request: web.Request) -> web.Response:
    ctx = context(request)
    await _remote_list_method(ctx, "remove_remote_array")(request.match_info["name"])
    return no_content()


def routes() -> list[web.RouteDef]:
    return [
        web.get(f"{V2}/guru", guru),
        web.post(f"{V2}/guru/{{problem:.+}}/actions/{{action}}", guru_fix),
        web.get(f"{V2}/candidates", candidates),
        web.get(f"{V2}/long-running-operations", long_running_operations),
        web.get(f"{V2}/drills", drills),
        web.get(REMOTE_ARRAYS, list_remote_arrays),
        web.post(REMOTE_ARRAYS, add_remote_array),
        web.delete(f"{REMOTE_ARRAYS}/{{name}}", remove_remote_array),
        web.post(f"{GROUP}/verify", verify),
        web.get(f"{GROUP}/sync-history", sync_history),
        web.post(f"{GROUP}/drill", drill_start),
        web.delete(f"{GROUP}/drill", group_command("drill_stop")),
    ]
