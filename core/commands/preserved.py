"""Preserved data: the writes a role-conflict loser made while apart, kept before its resync.

When a role conflict is resolved, the side that yields writes the regions it changed
since the common recovery point to ``DATA_DIR/preserved/G-VOLUME-STAMP.bin`` with a
JSON index (offset, length and position of each region) before the winner's data
replaces them. They are never deleted silently: an administrator lists them, exports
them, restores them into a new volume, or deletes them.

A restored volume is a copy of the volume as it is now on that array (the winner's
data at the last recovery point) with the preserved regions written back on top: the
losing side's writes, in place, on a volume nothing else writes to.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from core.array import StorageArray
from core.datapath.extents import allocated_regions
from core.domain import Severity
from core.errors import InvalidInput, NotFound
from core.publisher import Publish
from core.replication.host_volumes import HostVolumes

COPY_CHUNK = 4 << 20


class PreservedData:
    """The preserved writes of this process's arrays, by id (the files' common stem)."""

    def __init__(self, arrays: Mapping[str, StorageArray], hosts: HostVolumes, publish: Publish):
        self._arrays = arrays
        self._hosts = hosts
        self._publish = publish

    def _entries(self, array: StorageArray) -> list[tuple[Path, dict]]:
        d = array.data_dir / "preserved"
        out = []
        for index in sorted(d.glob("*.json")) if d.exists() else ():
            try:
                out.append((index, json.loads(index.read_text())))
            except (OSError, ValueError) as e:  # a damaged index is listed, not hidden
                out.append((index, {"damaged": str(e)}))
        return out

    @staticmethod
    def _describe(array: StorageArray, index: Path, data: dict) -> dict:
        data_file = index.with_suffix(".bin")
        regions = data.get("regions", [])
        return {
            "id": index.stem, "array": array.name, "group": data.get("group", ""), "volume": data.get("volume", ""),
            "time": datetime.fromtimestamp(index.stat().st_mtime, timezone.utc).isoformat(),
            "bytes": sum(int(r["length"]) for r in regions), "regions": len(regions),
            "recoveryPointId": data.get("recovery_point_id"), "dataFile": str(data_file),
            "indexFile": str(index), "damaged": data.get("damaged", "" if data_file.exists() else
                                                           f"{data_file.name} is missing")}

    async def list(self, array: str | None = None) -> list[dict]:
        names = [array] if array else sorted(self._arrays)
        return [self._describe(self._arrays[n], i, d) for n in names if n in self._arrays
                for i, d in self._entries(self._arrays[n])]

    def _find(self, item: str) -> tuple[StorageArray, Path, dict]:
        for array in self._arrays.values():
            for index, data in self._entries(array):
                if index.stem == item:
                    if "damaged" in data:
                        raise InvalidInput(f"the index of preserved data {item} is damaged ({data['damaged']})",
                                           code="preservedDataDamaged")
                    return array, index, data
        raise NotFound(f"no preserved data '{item}'; see 'mirrorctl preserved list'", code="preservedDataNotFound")

    async def read(self, item: str) -> tuple[dict, bytes]:
        """The index and the bytes of one preserved set (for an export by a client)."""
        array, index, data = self._find(item)
        return self._describe(array, index, data) | {"index": data}, index.with_suffix(".bin").read_bytes()

    async def export(self, item: str, directory: str) -> dict:
        """Copy the data and its index into ``directory`` (on this array's machine)."""
        array, index, data = self._find(item)
        target = Path(directory)
        if not target.is_dir():
            raise InvalidInput(f"{directory} is not a directory; give an existing directory to export into",
                               code="invalidPath")
        for f in (index, index.with_suffix(".bin")):
            shutil.copyfile(f, target / f.name)
        array.log(Severity.INFO, data["group"], "arvmPreservedDataExported",
                  f"Preserved data {item} exported to {target}")
        return {"id": item, "files": [str(target / index.name), str(target / index.with_suffix('.bin').name)]}

    async def restore(self, item: str, volume: str) -> dict:
        """Create ``volume`` on the array that kept ``item``: the volume as it is now, the preserved writes on top."""
        array, index, data = self._find(item)
        source_row = array.volume(data["volume"])
        row = array.create_volume(volume, source_row.capacity, pool=source_row.pool)
        hv = self._hosts.open(array, row)
        src = str(array.volume_path(source_row))
        rs = data.get("region_size") or self._hosts.region_size
        # A copy of what the volume holds now (holes stay holes), on this loop: no commit applies meanwhile.
        with open(src, "rb", buffering=0) as f_in, open(hv.path, "r+b", buffering=0) as f_out:
            for r in allocated_regions(src, source_row.capacity, rs).tolist():
                f_in.seek(r * rs)
                chunk = f_in.read(min(rs, source_row.capacity - r * rs))
                f_out.seek(r * rs)
                f_out.write(chunk)
            with open(index.with_suffix(".bin"), "rb") as preserved:
                for region in data["regions"]:
                    preserved.seek(int(region["file_offset"]))
                    f_out.seek(int(region["offset"]))
                    f_out.write(preserved.read(int(region["length"])))
            os.fsync(f_out.fileno())
        array.log(Severity.INFO, volume, "arvmPreservedDataRestored",
                  f"Preserved data {item} ({len(data['regions'])} region(s) written on {data['volume']} while apart) "
                  f"restored into the new volume {array.name}/{volume}")
        self._publish("volume", array.name, volume)
        return {"id": item, "volume": f"{array.name}/{volume}"}

    async def delete(self, item: str) -> None:
        array, index, data = self._find(item)
        index.with_suffix(".bin").unlink(missing_ok=True)
        index.unlink()
        array.log(Severity.WARNING, data["group"], "arvmPreservedDataDeleted",
                  f"Preserved data {item} ({data['volume']}, {sum(int(r['length']) for r in data['regions'])} bytes) "
                  "deleted")
        self._publish("array", array.name, item)
