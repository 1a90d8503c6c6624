"""mirrorctl events / status: the event log and a one-screen summary."""
from __future__ import annotations

from core.cli import output
from core.cli.common import Result, command, with_engine
from core.domain import GroupStatus
from core.errors import InvalidInput

EVENTS_LIMIT_MAX = 10_000  # an array daemon returns at most this many events per request


def register(sub) -> None:
    p = command(sub, "events", "the persistent event log", _events, engine=False)
    p.add_argument("--array")
    p.add_argument("--limit", default="50", help=f"show the newest N events (1 to {EVENTS_LIMIT_MAX})")
    command(sub, "status", "arrays, groups and pairs at a glance", _status)


def events_limit(text: str) -> int:
    """``--limit``: a whole number the daemons accept, checked before reaching them."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= EVENTS_LIMIT_MAX:
        raise InvalidInput(f"--limit {text} is not a number of events from 1 to {EVENTS_LIMIT_MAX}; "
                           "give e.g. --limit 50", code="invalidLimit")
    return value


def _events(args) -> Result:
    limit = events_limit(args.limit)
    return with_engine(args, lambda client: _list_events(client, args.array, limit))


def _list_events(client, array: str | None, limit: int) -> Result:
    evs = client.events(array, limit)
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
