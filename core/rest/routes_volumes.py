"""Volumes: list, show, create (Web Services body), expand, delete, and host I/O on their data.

Sizes follow the Web Services: ``size`` with ``sizeUnit`` (``bytes``, ``kb``, ``mb``,
``gb``, ``tb``, binary multiples as on the real product), ``segSize`` in KiB.

``volumes/{vol}/data`` reads and writes through the engine's host path, exactly
what an NBD client does (change tracking, role checks, a secondary refusing
writes). It streams in bounded chunks, so neither direction holds a large transfer
in memory, and it is the one route exempt from the 1 MiB body limit.
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from core.errors import InvalidInput
from core.rest import models
from core.rest.errors import STREAMING
from core.rest.routes_context import V2, Body, context, no_content, query_int, reply
from core.rest.routes_system import pool_named
from core.units import GiB, KiB, MiB, TiB

CHUNK = 1 << 20  # host I/O per engine call: bounded memory, the loop stays responsive
SIZE_UNITS = {"bytes": 1, "b": 1, "kb": KiB, "mb": MiB, "gb": GiB, "tb": TiB, "pb": 1 << 50}
CREATE_FIELDS = ("poolId", "name", "size", "sizeUnit", "segSize", "dataAssuranceEnabled", "driveType", "security",
                 "driveSecurity", "raidLevel", "resourcePartitioning", "owner")


def size_in_bytes(body: Body, size_field: str) -> int:
    unit = body.text("sizeUnit").lower()
    if unit not in SIZE_UNITS:
        raise InvalidInput(f"field 'sizeUnit' is '{unit}'; use one of: {', '.join(SIZE_UNITS)}")
    size = body.number(size_field)
    if size < 0:
        raise InvalidInput(f"field '{size_field}' must not be negative", code="invalidCapacity")
    return int(size * SIZE_UNITS[unit])


async def list_volumes(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply([models.volume_to_ws(v) for v in await ctx.engine.volumes(ctx.array)])


async def get_volume(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply(models.volume_to_ws(await ctx.volume(request.match_info["vol"])))


async def create_volume(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await Body.read(request, CREATE_FIELDS, required=("name", "size", "sizeUnit"))
    pool = (await pool_named(ctx, body.text("poolId"))).name if body.has("poolId") else None
    raid = body.text("raidLevel", "6")
    v = await ctx.engine.create_volume(
        ctx.ref(body.text("name")), size_in_bytes(body, "size"), pool=pool,
        drive_type=body.choice("driveType", ("nvme", "sas")), security=body.choice("security", ("none", "fde", "fips"),
                                                                                    "none"),
        drive_security=body.flag("driveSecurity", False), data_assurance=body.flag("dataAssuranceEnabled", False),
        resource_partitioning=body.flag("resourcePartitioning", False),
        raid_level=raid[4:] if raid.lower().startswith("raid") else raid,
        segment_size=body.integer("segSize", 128) * KiB, owner=body.choice("owner", ("A", "B")))
    return reply(models.volume_to_ws(v), status=201)


async def expand_volume(request: web.Request) -> web.Response:
    """``{expansionSize, sizeUnit}``: the volume's new capacity (volumes only grow)."""
    ctx = context(request)
    v = await ctx.volume(request.match_info["vol"])
    body = await Body.read(request, ("expansionSize", "sizeUnit"), required=("expansionSize", "sizeUnit"))
    grown = await ctx.engine.resize_volume(ctx.ref(v.name), size_in_bytes(body, "expansionSize"))
    return reply(models.volume_to_ws(grown))


async def delete_volume(request: web.Request) -> web.Response:
    ctx = context(request)
    v = await ctx.volume(request.match_info["vol"])
    await ctx.engine.delete_volume(ctx.ref(v.name))
    return no_content()


def _check_range(v, offset: int, length: int) -> None:
    if offset + length > v.capacity:
        room = max(0, v.capacity - offset)
        raise InvalidInput(f"{length} bytes at offset {offset} go beyond the end of volume {v.name} "
                           f"({v.capacity} bytes); at most {room} bytes fit there", code="invalidRange")


async def read_data(request: web.Request) -> web.StreamResponse:
    """``?offset=N&length=L`` (default: to the end of the volume) as ``application/octet-stream``."""
    ctx = context(request)
    v = await ctx.volume(request.match_info["vol"])
    offset = query_int(request, "offset", 0)
    length = query_int(request, "length", max(0, v.capacity - offset))
    _check_range(v, offset, length)
    ref = ctx.ref(v.name)
    # The first chunk is read before the status line: a failed volume is a proper error, not a cut stream.
    chunk = await ctx.engine.host_read(ref, offset, min(CHUNK, length))
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.content_length = length
    await resp.prepare(request)
    request[STREAMING] = True
    pos, end = offset, offset + length
    while True:
        await resp.write(chunk)
        pos += len(chunk)
        if pos >= end:
            break
        chunk = await ctx.engine.host_read(ref, pos, min(CHUNK, end - pos))
    await resp.write_eof()
    return resp


async def write_data(request: web.Request) -> web.Response:
    """The body (``Content-Length`` bytes) written at ``?offset=N``; nothing is written if it would not fit."""
    ctx = context(request)
    v = await ctx.volume(request.match_info["vol"])
    size = request.content_length
    if size is None:
        raise web.HTTPLengthRequired(text="send the data with a Content-Length header, so it can be checked "
                                          "against the volume's capacity before anything is written")
    offset = query_int(request, "offset", 0)
    if query_int(request, "length", size) != size:
        raise InvalidInput(f"query parameter 'length' ({request.query['length']}) differs from the body's "
                           f"Content-Length ({size})", code="invalidRange")
    _check_range(v, offset, size)
    ref = ctx.ref(v.name)
    pos, end = offset, offset + size
    while pos < end:
        try:
            chunk = await request.content.readexactly(min(CHUNK, end - pos))
        except asyncio.IncompleteReadError:
            raise InvalidInput(f"the body ended after {pos - offset} of its {size} bytes; those were written",
                               code="incompleteBody") from None
        pos += await ctx.engine.host_write(ref, pos, chunk)
    await ctx.engine.host_flush(ref)
    return reply({"volume": v.name, "offset": offset, "bytesWritten": pos - offset})


async def trim_data(request: web.Request) -> web.Response:
    """``DELETE volumes/{vol}/data?offset=N&length=L``: hosts discard those bytes (NBD TRIM); they read as zeros."""
    ctx = context(request)
    v = await ctx.volume(request.match_info["vol"])
    offset = query_int(request, "offset", 0)
    length = query_int(request, "length", max(0, v.capacity - offset))
    _check_range(v, offset, length)
    await ctx.engine.host_trim(ctx.ref(v.name), offset, length)
    return reply({"volume": v.name, "offset": offset, "bytesTrimmed": length})


async def set_ownership(request: web.Request) -> web.Response:
    """``POST volumes/{vol}/ownership {"owningControllerId": "A"|"B"}``: the volume's preferred owner."""
    ctx = context(request)
    v = await ctx.volume(request.match_info["vol"])
    body = await Body.read(request, ("owningControllerId",), required=("owningControllerId",))
    await ctx.engine.set_volume_owner(ctx.ref(v.name), body.choice("owningControllerId", ("A", "B")))
    return reply(models.volume_to_ws(await ctx.volume(v.name)))


def streams_data(handler) -> bool:
    """The routes whose body is volume data, not JSON: exempt from the body limit."""
    return handler in (read_data, write_data)


def routes() -> list[web.RouteDef]:
    return [
        web.get(f"{V2}/volumes", list_volumes),
        web.post(f"{V2}/volumes", create_volume),
        web.get(f"{V2}/volumes/{{vol}}", get_volume),
        web.delete(f"{V2}/volumes/{{vol}}", delete_volume),
        web.post(f"{V2}/volumes/{{vol}}/expand", expand_volume),
        web.get(f"{V2}/volumes/{{vol}}/data", read_data),
        web.put(f"{V2}/volumes/{{vol}}/data", write_data),
        web.delete(f"{V2}/volumes/{{vol}}/data", trim_data),
        web.post(f"{V2}/volumes/{{vol}}/ownership", set_ownership),
    ]
