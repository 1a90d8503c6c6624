"""The storage system itself: ``/devmgr/utils/about``, the system, its pools, its password.

``about`` answers without a login, as on the real product: clients use it to find
out what they are talking to (and which array, by WWN) before they authenticate.
"""
from __future__ import annotations

import uuid
from importlib import metadata

from aiohttp import web

from core.errors import InvalidInput, NotFound
from core.rest import models
from core.rest.routes_context import V2, Body, context, no_content, reply

ABOUT_PATH = "/devmgr/utils/about"


def _version() -> str:
    try:
        return metadata.version("async-mirror-console")
    except metadata.PackageNotFoundError:
        return "0+unknown"


async def about(request: web.Request) -> web.Response:
    ctx = context(request)
    wwn = await ctx.wwn()
    return reply({"version": _version(), "runningAsProxy": False,
                  "systemId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:storage-array:{wwn}")),
                  "arrayName": ctx.array, "worldWideName": wwn})


async def list_systems(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply([models.array_to_ws(await ctx.engine.array(ctx.array))])


async def get_system(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply(models.array_to_ws(await ctx.engine.array(ctx.array)))


async def list_pools(request: web.Request) -> web.Response:
    ctx = context(request)
    a = await ctx.engine.array(ctx.array)
    return reply([models.pool_to_ws(p, a.name) for p in a.pools])


async def get_pool(request: web.Request) -> web.Response:
    ctx = context(request)
    a = await ctx.engine.array(ctx.array)
    return reply(models.pool_to_ws(await pool_named(ctx, request.match_info["pool"]), a.name))


async def pool_named(ctx, pid: str):
    """A pool of this array by its ref or its name."""
    a = await ctx.engine.array(ctx.array)
    for p in a.pools:
        if p.name == pid or models.pool_ref(a.name, p.name) == pid.upper():
            return p
    raise NotFound(f"array {a.name} has no storage pool '{pid}' (pools: {', '.join(p.name for p in a.pools)})",
                   code="storagePoolNotFound")


async def change_password(request: web.Request) -> web.Response:
    """``{currentAdminPassword, newPassword}``: a wrong current password is 422 ``invalidPassword``, not 401."""
    ctx = context(request)
    body = await Body.read(request, ("currentAdminPassword", "newPassword", "adminPassword"),
                           required=("currentAdminPassword", "newPassword"))
    if body.flag("adminPassword", True) is False:
        raise InvalidInput("this array has only the administrator password; leave out adminPassword or set it "
                           "to true", code="notSupported")
    await ctx.engine.change_password(ctx.array, body.text("currentAdminPassword"), body.text("newPassword"))
    return no_content()


ISCSI_FIELDS = {key: name for name, key in models.ISCSI_TO_WS.items()}
CLEARABLE = ("vlanId", "ethernetPriority")  # null turns them off


async def get_iscsi_settings(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply(models.iscsi_to_ws(await ctx.engine.iscsi_settings(ctx.array)))


async def set_iscsi_settings(request: web.Request) -> web.Response:
    """Any of ``{vlanId, tcpListenPort, jumboFrames, ethernetPriority}``; ``null`` clears the VLAN or the priority."""
    ctx = context(request)
    body = await Body.read(request, ISCSI_FIELDS)
    changes = {}
    for key, name in ISCSI_FIELDS.items():
        if key not in body.data:
            continue
        if body.data[key] is None:
            if key not in CLEARABLE:
                raise InvalidInput(f"field '{key}' cannot be null; give a value", code="invalidIscsiSetting")
            changes[name] = None
        else:
            changes[name] = body.flag(key) if key == "jumboFrames" else body.integer(key)
    return reply(models.iscsi_to_ws(await ctx.engine.set_iscsi_settings(ctx.array, **changes)))


def routes() -> list[web.RouteDef]:
    return [
        web.get(ABOUT_PATH, about),
        web.get("/devmgr/v2/storage-systems", list_systems),
        web.get(V2, get_system),
        web.get(f"{V2}/storage-pools", list_pools),
        web.get(f"{V2}/storage-pools/{{pool}}", get_pool),
        web.post(f"{V2}/passwords", change_password),
        web.get(f"{V2}/iscsi/mirroring-settings", get_iscsi_settings),
        web.post(f"{V2}/iscsi/mirroring-settings", set_iscsi_settings),
    ]
