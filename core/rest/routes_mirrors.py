"""Mirror consistency groups (``async-mirrors``): create, settings, delete, role, sync, progress, test.

Bodies are the Web Services ones (``interfaceType: fibre``, ``manualSync``,
``syncWarnThresholdMinutes``...) plus the project's ``priority`` and
``resyncPolicy``. A group is created on both arrays by the engine, from this
array as the primary. Role changes answer once requested (``roleChangeProgress``
shows the rest), syncs once started unless ``?wait=true``.
"""
from __future__ import annotations

import inspect

from aiohttp import web

from core.eligibility import array_refusals
from core.errors import InvalidInput, MirrorError
from core.rest import models
from core.rest.routes_context import V2, Body, context, group_command, no_content, query_flag, reply, reply_text

GROUPS = f"{V2}/async-mirrors"
GROUP = f"{GROUPS}/{{gid}}"
SETTINGS_FIELDS = ("syncIntervalMinutes", "manualSync", "recoveryWarnThresholdMinutes", "repoUtilizationWarnThreshold",
                   "syncWarnThresholdMinutes", "interfaceType", "priority", "resyncPolicy")
CREATE_FIELDS = ("name", "secondaryArrayId") + SETTINGS_FIELDS
TEST_TYPES = ("basicConnectivityTest", "linkLatencyTest", "linkBandwidthTest")
DELETE_RP = "deleteRecoveryPointIfNecessary"


def settings(body: Body) -> dict:
    """Web Services settings as :class:`core.groups.GroupSettings` words; ``None`` leaves one unchanged.

    ``manualSync`` decides the mode; without it, an interval of 0 means manual (as the
    Web Services show a manual group) and any other interval means scheduled.
    """
    interval = body.integer("syncIntervalMinutes")
    manual = body.flag("manualSync")
    if manual is None and interval is not None:
        manual = interval == 0
    channel = body.choice("interfaceType", ("fibre", "fc", "iscsi"))
    return dict(channel={"fibre": "fc"}.get(channel, channel),
                sync_mode=None if manual is None else ("manual" if manual else "scheduled"),
                # 0 with manualSync false is a scheduled group with no interval: the engine refuses it
                sync_interval_minutes=interval if interval or (interval == 0 and manual is False) else None,
                priority=body.choice("priority", ("lowest", "low", "medium", "high", "highest")),
                resync_policy=body.choice("resyncPolicy", ("automatic", "manual")),
                sync_alert_minutes=body.integer("syncWarnThresholdMinutes"),
                recovery_point_alert_minutes=body.integer("recoveryWarnThresholdMinutes"),
                reserved_alert_percent=body.integer("repoUtilizationWarnThreshold"))


def accepts(method, keyword: str) -> bool:
    return keyword in inspect.signature(method).parameters


async def list_groups(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply_text(await ctx.groups_text(await ctx.engine.groups(ctx.array)))


async def create_group(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await Body.read(request, CREATE_FIELDS, required=("name", "secondaryArrayId"))
    remote = await ctx.resolve_remote(body.text("secondaryArrayId"))
    g = await ctx.engine.create_group(body.text("name"), primary_array=ctx.array, secondary_array=remote,
                                      **settings(body))
    return reply(await ctx.group_json(g), status=201)


async def get_group(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply(await ctx.group_json(await ctx.group(request.match_info["gid"])))


async def update_group(request: web.Request) -> web.Response:
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    body = await Body.read(request, SETTINGS_FIELDS)
    await ctx.engine.update_group(g.name, **settings(body))
    return reply(await ctx.group_json(await ctx.group(g.name)))


async def change_role(request: web.Request) -> web.Response:
    """``{role, noSync, force}``: this array's side becomes ``role``; ``force`` when the arrays cannot talk."""
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    body = await Body.read(request, ("role", "noSync", "force"), required=("role",))
    role = body.choice("role", ("primary", "secondary"))
    if body.flag("noSync", False):
        raise InvalidInput("noSync is not supported: a role change always sends the last changes first, so no "
                           "host data is lost; leave noSync out or set it to false", code="notSupported")
    change = ctx.engine.promote if role == "primary" else ctx.engine.demote
    await change(g.name, ctx.array, force=body.flag("force", False), wait=False)
    return reply(await ctx.group_json(await ctx.group(g.name)))


def _recovery_point_option(method, wanted: bool) -> dict:
    """Pass ``deleteRecoveryPointIfNecessary`` on only when the engine knows it; refuse ``true`` otherwise."""
    if not wanted:
        return {}
    if accepts(method, "delete_recovery_point_if_necessary"):
        return {"delete_recovery_point_if_necessary": True}
    raise InvalidInput(f"{DELETE_RP}=true is not supported: this array never gives up a group's recovery point "
                       "to make room; increase the reserved capacity instead", code="notSupported")


async def sync_group(request: web.Request) -> web.Response:
    """Start a synchronization; ``?wait=true`` answers with its statistics once the recovery point commits."""
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    body = await Body.read(request, (DELETE_RP,), optional_body=True)
    options = _recovery_point_option(ctx.engine.sync_now, body.flag(DELETE_RP, False))
    if query_flag(request, "wait"):
        stats = await ctx.engine.sync_now(g.name, wait=True, after_running=True, **options)
        return reply(models.stats_to_ws(stats) if stats is not None else None)
    await ctx.engine.sync_now(g.name, **options)
    return no_content()


async def resume_group(request: web.Request) -> web.Response:
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    options = _recovery_point_option(ctx.engine.resume, query_flag(request, DELETE_RP))
    await ctx.engine.resume(g.name, **options)
    return no_content()


async def group_progress(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply(models.progress_to_ws(await ctx.group(request.match_info["gid"])))


async def all_progress(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply([models.progress_to_ws(g) for g in await ctx.engine.groups(ctx.array)])


async def test_link(request: web.Request) -> web.Response:
    """Test communication with the group's remote array over the mirroring channel."""
    ctx = context(request)
    g = await ctx.group(request.match_info["gid"])
    body = await Body.read(request, ("requestedTestType",), required=("requestedTestType",))
    kind = body.choice("requestedTestType", TEST_TYPES)
    r = await ctx.engine.test_communication(ctx.array, g.remote_array)
    measured = {"basicConnectivityTest": r["connected"], "linkLatencyTest": r["latency_ms"] is not None,
                "linkBandwidthTest": r["bandwidth_mib_s"] is not None}[kind]
    return reply({"requestedTestType": kind, "testResult": "passed" if measured else "failed",
                  "remoteTargetName": g.remote_array, "connected": r["connected"],
                  "latencyMilliseconds": r["latency_ms"], "bandwidthMiBPerSecond": r["bandwidth_mib_s"],
                  "message": r["message"]})


async def remote_systems(request: web.Request) -> web.Response:
    """Arrays this one can mirror with, each described by itself over the channel, and whether it may."""
    ctx = context(request)
    local = await ctx.engine.array(ctx.array)
    out = []
    for name in await ctx.remote_names():
        try:
            remote = await ctx.engine.remote_array(ctx.array, name)
        except MirrorError as e:
            out.append({"id": name, "name": name, "wwn": await ctx.wwn(name), "reachable": False,
                        "eligible": False, "reasons": [e.message], "codes": [e.code]})
            continue
        ctx.learn_wwn(name, remote.wwn)
        refusals = array_refusals(local, remote)
        out.append({**models.array_to_ws(remote, system_id=name), "reachable": True, "eligible": not refusals,
                    "reasons": [r.message for r in refusals], "codes": [r.code for r in refusals],
                    "commonChannelTypes": sorted(local.channel_types & remote.channel_types)})
    return reply(out)


def routes() -> list[web.RouteDef]:
    # Fixed names first: a group labelled "progress" is still reachable by its id.
    return [
        web.get(GROUPS, list_groups),
        web.post(GROUPS, create_group),
        web.get(f"{GROUPS}/progress", all_progress),
        web.get(f"{GROUPS}/arvm-arrays", remote_systems),
        web.get(GROUP, get_group),
        web.post(GROUP, update_group),
        web.delete(GROUP, group_command("delete_group")),
        web.post(f"{GROUP}/role", change_role),
        web.delete(f"{GROUP}/role", group_command("role_cancel")),
        web.post(f"{GROUP}/sync", sync_group),
        web.post(f"{GROUP}/suspend", group_command("suspend")),
        web.post(f"{GROUP}/resume", resume_group),
        web.get(f"{GROUP}/progress", group_progress),
        web.post(f"{GROUP}/test", test_link),
    ]
