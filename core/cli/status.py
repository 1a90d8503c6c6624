"""mirrorctl events / status: the event log and a one-screen summary."""
from __future__ import annotations

from core.cli import output
from core.cli.common import Result, command
from core.domain import GroupStatus


def register(sub) -> None:
    p = command(sub, "events", "the persistent event log", _events)
    p.add_argument("--array")
    p.add_argument("--limit", type=int, default=50)
    command(sub, "status", "arrays, groups and pairs at a glance", _status)


def _events(client, args) -> Result:
    evs = client.events(args.array, args.limit)
    rows = [[e.time.astimezone().strftime("%Y-%m-%d %H:%M:%S"), e.array, e.severity.upper(), e.object, e.code,
             e.message] for e in evs]
    return Result(evs, output.table(rows, ["TIME", "ARRAY", "SEVERITY", "OBJECT", "CODE", "MESSAGE"]))


def _status(client, args) -> Result:
    arrays = client.arrays_list()
    groups = client.groups()
    lines = ["Arrays:"] + [f"  {a.name:8} {a.model} fw {a.firmware}  {'online' if a.online else 'OFFLINE'}"
                           for a in arrays]
    lines.append("Mirror consistency groups:")
    for g in groups:
        lines.append(f"  {g.name} on {g.array} ({g.role}): {GroupStatus(g.status).label}, {len(g.pairs)} pair(s), "
                     f"last recovery point {output.when(g.last_recovery_point)}")
    if not groups:
        lines.append("  none (create one with 'mirrorctl group create')")
    data = {"arrays": arrays, "groups": groups}
    return Result(data, "\n".join(lines))
