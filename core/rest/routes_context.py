"""What every route module shares: the array served, finding objects by path id, reading input.

A path names an object by its Web Services ref or by its name (a group's label, a
pair's local volume), so a script can use either. Every lookup is of *this* array's
side; a miss is a :class:`NotFound` that names what was asked for. Request bodies
are read here, once, with every field checked: an unknown field or a wrong type is
an ``InvalidInput`` that names the field, before anything is changed.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import json
import re
from typing import Iterable

from aiohttp import web

from core.errors import InvalidInput, NotFound
from core.rest import listing, models
from core.snapshots import GroupSnapshot, PairSnapshot, VolumeSnapshot

V2 = "/devmgr/v2/storage-systems/{system}"
_WWN = re.compile(r"^[0-9A-Fa-f]{32}$")


class ArrayContext:
    """The engine and the one array this REST app serves."""

    def __init__(self, engine, array: str):
        self.engine = engine
        self.array = array
        self._wwns: dict[str, str] = {}  # array name -> WWN, learnt once (a WWN never changes)
        self.group_texts = listing.GroupTexts()  # GET async-mirrors: each group's and pair's JSON while unchanged

    def ref(self, name: str) -> str:
        """The engine's ARRAY/VOLUME address of one of this array's volumes."""
        return f"{self.array}/{name}"

    # -- this array -------------------------------------------------------------------------
    async def wwn(self, name: str | None = None) -> str:
        """WWN of this array, or of a remote one when its remote-array entry knows it ("" if not)."""
        name = name or self.array
        if name not in self._wwns:
            if name == self.array:
                self._wwns[name] = (await self.engine.array(name)).wwn
            else:
                for entry in await self.remote_entries():
                    if entry.get("name") == name and entry.get("wwn"):
                        self._wwns[name] = entry["wwn"]
        return self._wwns.get(name, "")

    def learn_wwn(self, name: str, wwn: str) -> None:
        if wwn:
            self._wwns[name] = wwn

    async def is_system(self, system_id: str) -> bool:
        """``1``, the array's name or its WWN: the ways Web Services clients name a storage system."""
        return system_id in (models.SYSTEM_ID, self.array) or system_id.upper() == (await self.wwn()).upper()

    # -- objects of this array ------------------------------------------------------------------
    async def volume(self, vid: str) -> VolumeSnapshot:
        if "/" not in vid:  # a name: one volume's snapshot, not the whole array's (O(n) per lookup)
            with contextlib.suppress(NotFound):
                return await self.engine.volume(f"{self.array}/{vid}")
        for v in await self.engine.volumes(self.array):
            if v.name == vid or models.volume_ref(v.array, v.name) == vid.upper():
                return v
        raise NotFound(f"array {self.array} has no volume '{vid}' (give its id or its name); see "
                       f"'mirrorctl volume list --array {self.array}'", code="volumeNotFound")

    async def group(self, gid: str) -> GroupSnapshot:
        with contextlib.suppress(NotFound):  # a label: that group's snapshot, not every group's
            return await self.engine.group(gid, self.array)
        for g in await self.engine.groups(self.array):
            if g.name == gid or models.group_ref(g.array, g.name) == gid.upper():
                return g
        raise NotFound(f"array {self.array} has no mirror consistency group '{gid}' (give its id or its label)",
                       code="arvmGroupNotFound")

    async def pair(self, pid: str, group: GroupSnapshot | None = None) -> PairSnapshot:
        pairs = group.pairs if group is not None else await self.engine.pairs(array=self.array)
        for p in pairs:
            if p.local_volume == pid or models.pair_ref(p.array, p.local_volume) == pid.upper():
                return p
        where = f"group {group.name}" if group is not None else f"array {self.array}"
        raise NotFound(f"{where} has no mirrored pair '{pid}' (give its id or its local volume's name)",
                       code="arvmPairNotFound")

    async def group_json(self, g: GroupSnapshot) -> dict:
        """Each pair's ``totalSizeInBytes`` is its snapshot's volume capacity (no listing of every volume)."""
        return models.group_to_ws(g, await self.wwn(g.remote_array))

    async def groups_text(self, groups: list[GroupSnapshot]) -> str:
        """The JSON of ``groups`` as :meth:`group_json` gives each, for a listing (see core.rest.listing)."""
        wwns = {name: await self.wwn(name) for name in {g.remote_array for g in groups}}
        return listing.groups_text(groups, wwns, self.group_texts)

    async def pair_json(self, p: PairSnapshot) -> dict:
        return models.pair_to_ws(p, p.volume_capacity or None)

    # -- remote arrays -----------------------------------------------------------------------------
    def for_this_array(self, method_name: str):
        """An engine method about "the local array", told which one when it runs several (the lab)."""
        method = getattr(self.engine, method_name, None)
        if method is None:
            return None
        if "array" in inspect.signature(method).parameters:
            return functools.partial(method, array=self.array)
        return method

    async def remote_entries(self) -> list[dict]:
        """The remote-array list of this array (``{name, wwn, addresses...}``), when the engine keeps one."""
        listing = self.for_this_array("remote_arrays")
        return list(await listing()) if listing is not None else []

    async def remote_names(self) -> list[str]:
        """Arrays this one can mirror with: the engine's other arrays and its remote-array list."""
        names = [n for n in sorted(self.engine.arrays) if n != self.array]
        for entry in await self.remote_entries():
            name = entry.get("name")
            if name and name not in names and name != self.array:
                names.append(name)
        return names

    async def resolve_remote(self, remote_id: str) -> str:
        """A remote array's name from its name or WWN (``secondaryArrayId``)."""
        names = await self.remote_names()
        if remote_id in names:
            return remote_id
        for name in names:
            if (await self.wwn(name)).upper() == remote_id.upper():
                return name
        if _WWN.match(remote_id):
            raise NotFound(f"no remote array with WWN {remote_id} is known to {self.array}; known: "
                           f"{', '.join(names) or 'none'}", code="arvmRemoteArrayNotFound")
        return remote_id  # an unlisted name: the engine says whether it can reach it


CONTEXT = web.AppKey("context", ArrayContext)


def context(request: web.Request) -> ArrayContext:
    return request.app[CONTEXT]


# -- responses ---------------------------------------------------------------------------------------
def reply(data, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=listing.dumps)


def reply_text(text: str, status: int = 200) -> web.Response:
    """A reply whose JSON is already text (as :func:`reply` would have encoded it)."""
    return web.json_response(text=text, status=status)


def group_command(method: str):
    """A route that runs ``engine.<method>(group name)`` on the group in its path and answers 204."""
    async def handler(request: web.Request) -> web.Response:
        ctx = context(request)
        g = await ctx.group(request.match_info["gid"])
        await getattr(ctx.engine, method)(g.name)
        return no_content()
    handler.__name__ = method
    return handler


def no_content() -> web.Response:
    return web.Response(status=204)


# -- request bodies ------------------------------------------------------------------------------------
class Body:
    """A JSON object body whose fields are checked on the way in; ``null`` counts as absent."""

    def __init__(self, data: dict):
        self.data = data

    @classmethod
    async def read(cls, request: web.Request, fields: Iterable[str], required: Iterable[str] = (),
                   optional_body: bool = False) -> "Body":
        raw = await request.read()  # bounded by the app's client_max_size (BODY_LIMIT): 413 beyond
        if not raw.strip():
            if optional_body:
                return cls({})
            raise InvalidInput("this request needs a JSON object body", code="invalidJson")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidInput(f"the request body is not valid JSON: {e}", code="invalidJson") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"the request body must be a JSON object, not {type(data).__name__}",
                               code="invalidJson")
        allowed = list(fields)
        for key in data:
            if key not in allowed:
                raise InvalidInput(f"unknown field '{key}'; this request accepts: {', '.join(allowed)}",
                                   code="unknownField")
        for key in required:
            if data.get(key) is None:
                raise InvalidInput(f"field '{key}' is required", code="missingField")
        return cls(data)

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise InvalidInput(f"field '{name}' must be a string, not {json.dumps(value)}")
        return value

    def choice(self, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
        value = self.text(name, default)
        options = list(choices)
        if value is not None and value not in options:
            raise InvalidInput(f"field '{name}' is '{value}'; use one of: {', '.join(options)}")
        return value

    def flag(self, name: str, default: bool | None = None) -> bool | None:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidInput(f"field '{name}' must be true or false, not {json.dumps(value)}")
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            shown = f"'{value}'" if isinstance(value, str) else json.dumps(value)  # as query parameters quote it
            raise InvalidInput(f"field '{name}' must be a whole number, not {shown}")
        return int(value)

    def number(self, name: str, default: float | None = None) -> float | None:
        value = self.data.get(name)
        if value is None:
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"field '{name}' must be a number, not {json.dumps(value)}") from None

    def texts(self, name: str) -> list[str] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"field '{name}' must be a list of strings, not {json.dumps(value)}")
        return value


# -- query strings ----------------------------------------------------------------------------------------
def query_int(request: web.Request, name: str, default: int | None = None, minimum: int = 0) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"query parameter '{name}' must be a whole number, not '{raw}'") from None
    if value < minimum:
        raise InvalidInput(f"query parameter '{name}' must be at least {minimum}, not {value}")
    return value


def query_flag(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise InvalidInput(f"query parameter '{name}' must be true or false, not '{raw}'")
