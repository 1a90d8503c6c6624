"""What an array answers to its peer over the mirroring channel.

The engine sends a remote array configuration messages ("create your side of this
group") and, from the data path, transfer messages. Each array answers from one
handler table, built once by the engine from its collaborators' tables (this
module's, the receiver's, the role coordinator's, the reconciler's); a message
answered twice is refused at start. Handlers run on the receiving array's loop.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from core import sides
from core.errors import InvalidInput

Handler = Callable[..., Awaitable[dict] | dict]


class ArrayEndpoint:
    """Dispatches peer calls to one array's handler table (built once, by the engine)."""

    def __init__(self, array, handlers: dict[str, Handler]):
        self.array = array
        self._methods = dict(handlers)

    async def handle_call(self, peer: str, method: str, params: dict) -> dict:
        handler = self._methods.get(method)
        if handler is None:
            raise InvalidInput(f"array {self.array.name} does not understand '{method}'; upgrade it",
                               code="arvmUnsupportedRequest")
        result = handler(peer, **params)
        if hasattr(result, "__await__"):
            result = await result
        return result or {}


def array_handlers(a) -> dict[str, Handler]:
    """The messages about the array itself and its group sides (the data path's are the receiver's)."""
    return {
        "array.describe": lambda peer: a.snapshot().to_json(),
        "volume.list": lambda peer: {"volumes": [a.volume_snapshot(v).to_json() for v in a.volumes()]},
        "group.create": lambda peer, **p: _done(sides.create_group_side(a, **p)),
        "group.update": lambda peer, **p: _done(sides.update_group_side(a, **p)),
        "group.delete": lambda peer, **p: _done(sides.delete_group_side(a, **p)),
        "volume.digest": lambda peer, **p: _digest(a, **p),
    }


def handler_table(*tables: dict[str, Handler]) -> dict[str, Handler]:
    """One table from each collaborator's; a message answered twice is a wiring mistake, refused at start."""
    out: dict[str, Handler] = {}
    for table in tables:
        twice = sorted(set(out) & set(table))
        if twice:
            raise ValueError(f"channel messages answered twice: {', '.join(twice)}")
        out.update(table)
    return out


def _done(_result) -> dict:
    return {"ok": True}


def _digest(array, volume: str, size: int, exclude: list[int]) -> dict:
    """Digests of a secondary's committed recovery point, for ``verify``."""
    from core.replication.verify import volume_digests
    from core.domain import REGION_SIZE

    row = array.volume(volume)
    return {"digests": volume_digests(str(array.volume_path(row)), size, REGION_SIZE, exclude)}
