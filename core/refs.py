"""How volumes are addressed: ``ARRAY/VOLUME``."""
from __future__ import annotations

from core.errors import InvalidInput


def split_ref(ref: str) -> tuple[str, str]:
    """``SiteA/db`` -> ("SiteA", "db")."""
    parts = str(ref).split("/")
    if len(parts) != 2 or not all(parts):
        raise InvalidInput(f"'{ref}' is not a volume address; write it as ARRAY/VOLUME, e.g. SiteA/db",
                           code="invalidVolumeRef")
    return parts[0], parts[1]
