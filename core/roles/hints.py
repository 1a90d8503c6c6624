"""What changed on an array's side of a group while its remote was unreachable (``reconcile.json``).

A hint asks the next reconciliation to look at the group even if the link never
seemed down (a forced change or a pair added while apart). Kept in the array's
data directory so a restart does not forget it.
"""
from __future__ import annotations

import json

from core.array import StorageArray

HINTS_FILE = "reconcile.json"


def hints(array: StorageArray) -> list[str]:
    path = array.data_dir / HINTS_FILE
    return json.loads(path.read_text()).get("groups", []) if path.exists() else []


def set_hint(array: StorageArray, group: str, on: bool) -> None:
    marked = set(hints(array))
    if (group in marked) == on:
        return
    marked.add(group) if on else marked.discard(group)
    (array.data_dir / HINTS_FILE).write_text(json.dumps({"groups": sorted(marked)}))


def clear(array: StorageArray) -> None:
    for name in hints(array):
        set_hint(array, name, False)
