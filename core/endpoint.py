"""What an array answers to its peer over the mirroring channel.

The engine sends a remote array configuration messages ("create your side of this
group") and, from the data path, transfer messages. Each message names a method
registered here; the handler runs on the receiving array's engine thread.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from core import sides
from core.errors import InvalidInput

Handler = Callable[..., Awaitable[dict] | dict]


class ArrayEndpoint:
    """Dispatches peer calls to one array's handlers."""

    def __init__(self, array):
        self.array = array
        self._methods: dict[str, Handler] = {}
        a = array
        self.register("array.describe", lambda peer: a.snapshot().to_json())
        self.register("volume.list", lambda peer: {"volumes": [a.volume_snapshot(v).to_json() for v in a.volumes()]})
        self.register("group.create", lambda peer, **p: _done(sides.create_group_side(a, **p)))
        self.register("group.update", lambda peer, **p: _done(sides.update_group_side(a, **p)))
        self.register("group.delete", lambda peer, **p: _done(sides.delete_group_side(a, **p)))
        self.register("pair.create", lambda peer, **p: _done(sides.create_pair_side(a, **p)))
        self.register("pair.remove", lambda peer, **p: _done(sides.remove_pair_side(a, **p)))
        self.register("volume.digest", lambda peer, **p: _digest(a, **p))

    def register(self, method: str, handler: Handler) -> None:
        self._methods[method] = handler

    async def handle_call(self, peer: str, method: str, params: dict) -> dict:
        handler = self._methods.get(method)
        if handler is None:
            raise InvalidInput(f"array {self.array.name} does not understand '{method}'; upgrade it",
                               code="arvmUnsupportedRequest")
        result = handler(peer, **params)
        if hasattr(result, "__await__"):
            result = await result
        return result or {}


def _done(_result) -> dict:
    return {"ok": True}


def _digest(array, volume: str, size: int, exclude: list[int]) -> dict:
    """Digests of a secondary's committed recovery point, for ``verify``."""
    from core.replication.verify import volume_digests
    from core.domain import REGION_SIZE

    row = array.volume(volume)
    return {"digests": volume_digests(str(array.volume_path(row)), size, REGION_SIZE, exclude)}
