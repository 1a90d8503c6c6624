"""The rule for the names of arrays, pools, volumes, groups and remote arrays (SPEC §2).

A module of its own, light to import: the console's wizards check a name as it is typed,
on the UI thread, and reaching this rule through ``core.array`` imported SQLAlchemy there
(about 0.35 s the first time a wizard opened).
"""
from __future__ import annotations

import re

from core.domain import NAME_MAX
from core.errors import InvalidInput

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(name: str, what: str, code: str = "invalidLabel") -> str:
    """Names are 1-30 characters of letters, digits, '_', '-', '.' (SPEC §2)."""
    if not name or len(name) > NAME_MAX:
        raise InvalidInput(f"{what} name '{name}' must be 1 to {NAME_MAX} characters; choose a shorter name", code=code)
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"{what} name '{name}' may only contain letters, digits, '_', '-' and '.', starting with a letter or digit",
            code=code)
    return name
