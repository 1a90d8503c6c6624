"""What the administrator selected in the tree: plain, immutable, shared by every panel."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Selection:
    """``kind`` is "array", "group", "pair" or "volume"; ``name`` is the group or volume name.

    A group is selected on one array side (``array``); a pair by its local volume on that side.
    """

    kind: str
    array: str
    name: str = ""

    @property
    def ref(self) -> str:
        """ARRAY/VOLUME for pairs and volumes, as the engine addresses them."""
        return f"{self.array}/{self.name}"
