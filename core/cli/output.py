"""How mirrorctl prints: stable JSON with --json, aligned tables otherwise."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

from core.snapshots import Snapshot
from core.units import format_size


def to_plain(result):
    if isinstance(result, Snapshot):
        return result.to_json()
    if isinstance(result, (list, tuple)):
        return [to_plain(r) for r in result]
    if isinstance(result, dict):
        return {k: to_plain(v) for k, v in result.items()}
    return result


def emit_json(result) -> None:
    json.dump(to_plain(result), sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def table(rows: list[list], headers: list[str]) -> str:
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def when(t: datetime | None) -> str:
    if t is None:
        return "never"
    age = (datetime.now(timezone.utc) - t).total_seconds()
    return f"{t.astimezone().strftime('%Y-%m-%d %H:%M:%S')} ({_age(age)} ago)"


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def size(n: int) -> str:
    return format_size(n)


def kv(pairs: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)
