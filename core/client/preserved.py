"""Preserved data of the managed arrays, over their REST APIs (the fleet's side of ``core.commands.preserved``).

Export writes the set's data and index on the machine that runs the client (the
console's or ``mirrorctl``'s), fetched from the array that kept them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from core.client.fleet import Fleet


class FleetPreserved:
    def __init__(self, fleet: "Fleet"):
        self._fleet = fleet

    async def list(self, array: str | None = None) -> list[dict]:
        if array:
            return await self._fleet.client(array).get("preserved-data")
        return [e for _, entries in await self._fleet._answers("preserved-data") for e in entries]

    async def _where(self, item: str) -> str:
        for name, entries in await self._fleet._answers("preserved-data"):
            if any(e["id"] == item for e in entries):
                return name
        raise NotFound(f"no preserved data '{item}'; see 'mirrorctl preserved list'", code="preservedDataNotFound")

    async def read(self, item: str) -> tuple[dict, bytes]:
        client = self._fleet.client(await self._where(item))
        return await client.get(f"preserved-data/{item}"), await client.get_bytes(f"preserved-data/{item}/data")

    async def export(self, item: str, directory: str) -> dict:
        target = Path(directory)
        if not target.is_dir():
            raise InvalidInput(f"{directory} is not a directory; give an existing directory to export into",
                               code="invalidPath")
        entry, data = await self.read(item)
        (target / f"{item}.bin").write_bytes(data)
        (target / f"{item}.json").write_text(json.dumps(entry["index"], indent=1))
        return {"id": item, "files": [str(target / f"{item}.json"), str(target / f"{item}.bin")]}

    async def restore(self, item: str, volume: str) -> dict:
        return await self._fleet.client(await self._where(item)).post(f"preserved-data/{item}/restore",
                                                                      {"volume": volume})

    async def delete(self, item: str) -> None:
        await self._fleet.client(await self._where(item)).delete(f"preserved-data/{item}")
