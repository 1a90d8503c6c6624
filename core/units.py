"""Capacities as administrators type them: ``10GiB``, ``512MiB``, ``1.5TiB``."""
from __future__ import annotations

import re

from core.errors import InvalidInput

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
_UNITS = {
    "": 1, "b": 1,
    "k": KiB, "kb": 1000, "kib": KiB,
    "m": MiB, "mb": 1000**2, "mib": MiB,
    "g": GiB, "gb": 1000**3, "gib": GiB,
    "t": TiB, "tb": 1000**4, "tib": TiB,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int, what: str = "capacity") -> int:
    """Parse ``10GiB`` into bytes; a clear error names the accepted units."""
    if isinstance(text, int):
        if text < 0:
            raise InvalidInput(f"{what} must not be negative; give a size such as 10GiB")
        return text
    m = _PATTERN.match(str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise InvalidInput(
            f"{what} '{text}' is not a size; write a number with a unit such as 512MiB, 10GiB or 2TiB"
        )
    return int(float(m.group(1)) * _UNITS[unit])


def format_size(n: int | float) -> str:
    """Bytes as the console shows them: ``1.50 GiB``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def exact_size(n: int) -> str:
    """``2.00 GiB (2147483648 bytes)``: readable, and exact for scripts that match the number."""
    return f"{format_size(n)} ({n} bytes)"
