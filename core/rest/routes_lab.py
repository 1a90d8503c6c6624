"""Lab faults and the host workload of this array, for DR drills and training (project extensions).

A fault injected here happens to the real thing the engine runs: a failed volume
refuses host I/O and fails its pair, a reset controller hands its volumes over.
"""
from __future__ import annotations

from aiohttp import web

from core.rest.routes_context import V2, Body, context, no_content, reply

LAB = f"{V2}/lab"


async def volume_fault(request: web.Request) -> web.Response:
    """``POST lab/volumes/{vol}/fail`` or ``.../repair``."""
    ctx = context(request)
    v = await ctx.volume(request.match_info["vol"])
    act = ctx.engine.volume_fail if request.match_info["action"] == "fail" else ctx.engine.volume_repair
    await act(ctx.ref(v.name))
    return no_content()


async def controller_fault(request: web.Request) -> web.Response:
    """``POST lab/controllers/{ctrl}/reset`` or ``.../restore`` (controller A or B)."""
    ctx = context(request)
    act = ctx.engine.controller_reset if request.match_info["action"] == "reset" else ctx.engine.controller_restore
    await act(ctx.array, request.match_info["ctrl"])
    return no_content()


async def get_workload(request: web.Request) -> web.Response:
    ctx = context(request)
    info = await ctx.engine.workload()
    return reply({"running": info is not None, **(info or {})})


async def start_workload(request: web.Request) -> web.Response:
    """``{volumes: [id or name...], rateMib, pattern: random|sequential}``: hosts writing through the host path."""
    ctx = context(request)
    body = await Body.read(request, ("volumes", "rateMib", "pattern"), required=("volumes", "rateMib"))
    refs = [ctx.ref((await ctx.volume(vid)).name) for vid in body.texts("volumes")]
    info = await ctx.engine.start_workload(refs, body.number("rateMib"),
                                           body.choice("pattern", ("random", "sequential"), "random"))
    return reply({"running": True, **info}, status=201)


async def stop_workload(request: web.Request) -> web.Response:
    """Stop the workload; answers what it wrote."""
    ctx = context(request)
    info = await ctx.engine.stop_workload()
    return reply({"running": False, **(info or {})})


def routes() -> list[web.RouteDef]:
    return [
        web.post(f"{LAB}/volumes/{{vol}}/{{action:fail|repair}}", volume_fault),
        web.post(f"{LAB}/controllers/{{ctrl}}/{{action:reset|restore}}", controller_fault),
        web.get(f"{LAB}/workload", get_workload),
        web.post(f"{LAB}/workload", start_workload),
        web.delete(f"{LAB}/workload", stop_workload),
    ]
