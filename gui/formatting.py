"""How values are spelled in the console (ages, rates, times): one place, same words everywhere."""
from __future__ import annotations

from datetime import datetime, timezone

from core.units import format_size


def age(seconds: float | None) -> str:
    if seconds is None:
        return "none yet"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {(seconds % 3600) // 60:.0f} min"


def since(when: datetime | None) -> float | None:
    if when is None:
        return None
    now = datetime.now(when.tzinfo or None) if when.tzinfo else datetime.now()
    return (now - when).total_seconds()


def timestamp(when: datetime | None) -> str:
    if when is None:
        return "\u2014"
    if when.tzinfo is not None:
        when = when.astimezone()
    return when.strftime("%Y-%m-%d %H:%M:%S")


def when(value) -> str:
    """A time that may come as an ISO string (REST answers, drill results) spelled like every other time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value  # not a time: shown as the engine said it
    return timestamp(value)


def rate(bytes_per_s: float | None) -> str:
    if not bytes_per_s:
        return "\u2014"
    return f"{format_size(bytes_per_s)}/s"


def eta(seconds: float | None) -> str:
    return "\u2014" if seconds is None else age(seconds)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
