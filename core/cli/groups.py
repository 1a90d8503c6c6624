"""mirrorctl group ...: mirror consistency groups."""
from __future__ import annotations

from core.cli import output
from core.cli.common import Result, command
from core.domain import GroupStatus
from core.errors import InvalidInput


def _whole(what: str):
    """An argparse type: a whole number, else one line naming the option (not argparse's usage text)."""
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"{what} '{text}' is not a whole number; give e.g. 10", code="invalidInput") from None
    return parse


def _settings_args(p, create: bool) -> None:
    p.add_argument("--channel", choices=["fc", "iscsi"])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--manual", action="store_true", help="synchronize only on request")
    mode.add_argument("--interval", type=_whole("--interval"), metavar="MIN", help="synchronize every MIN minutes (default 10)")
    p.add_argument("--priority", choices=["lowest", "low", "medium", "high", "highest"])
    p.add_argument("--resync", choices=["automatic", "manual"])
    p.add_argument("--sync-alert", type=_whole("--sync-alert"), metavar="MIN", help="alert when a sync takes longer (default 10)")
    p.add_argument("--recovery-point-alert", type=_whole("--recovery-point-alert"), metavar="MIN",
                   help="alert when the recovery point is older (default 30; >= 2 x sync alert)")
    p.add_argument("--reserved-alert", type=_whole("--reserved-alert"), metavar="PCT", help="alert above this reserved capacity use (80)")


def _settings(args) -> dict:
    mode = "manual" if args.manual else ("scheduled" if args.interval is not None else None)
    return dict(channel=args.channel, sync_mode=mode, sync_interval_minutes=args.interval, priority=args.priority,
                resync_policy=args.resync, sync_alert_minutes=args.sync_alert,
                recovery_point_alert_minutes=args.recovery_point_alert, reserved_alert_percent=args.reserved_alert)


def register(sub) -> None:
    grp = sub.add_parser("group", help="mirror consistency groups")
    gsub = grp.add_subparsers(dest="group_command", metavar="GROUP_COMMAND", required=True)
    p = command(gsub, "create", "create a mirror consistency group on both arrays", _create)
    p.add_argument("name")
    p.add_argument("--primary-array", required=True)
    p.add_argument("--secondary-array", required=True)
    _settings_args(p, True)
    command(gsub, "list", "list groups (each array's side)", _list).add_argument("--array")
    p = command(gsub, "show", "show a group", _show)
    p.add_argument("name")
    p.add_argument("--array", help="show this array's side (default: the primary side)")
    p = command(gsub, "set", "change a group's synchronization settings", _set)
    p.add_argument("name")
    _settings_args(p, False)
    command(gsub, "delete", "delete an empty group on both arrays", _delete).add_argument("name")


def _create(client, args) -> Result:
    g = client.create_group(args.name, args.primary_array, args.secondary_array, **_settings(args))
    return Result(g, f"Created mirror consistency group {g.name}: {g.array} (primary) -> {g.remote_array} "
                     f"(secondary), {describe_mode(g)}")


def describe_mode(g) -> str:
    return "manual synchronization" if g.sync_mode == "manual" else f"every {g.sync_interval_minutes} min"


def _list(client, args) -> Result:
    groups = client.groups(args.array)
    rows = [[g.name, g.array, g.role, g.remote_array, GroupStatus(g.status).label, describe_mode(g), len(g.pairs),
             output.when(g.last_recovery_point)] for g in groups]
    return Result(groups, output.table(rows, ["GROUP", "ARRAY", "ROLE", "REMOTE", "STATUS", "SYNC", "PAIRS",
                                              "LAST RECOVERY POINT"]))


def _show(client, args) -> Result:
    g = client.group(args.name, args.array)
    info = [("Group", g.name), ("Array", f"{g.array} ({g.role})"), ("Remote array", g.remote_array),
            ("Status", GroupStatus(g.status).label), ("Channel", g.channel.upper()), ("Synchronization", describe_mode(g)),
            ("Priority", g.priority), ("Resync policy", g.resync_policy),
            ("Alert thresholds", f"sync {g.sync_alert_minutes} min, recovery point {g.recovery_point_alert_minutes} "
                                 f"min, reserved capacity {g.reserved_alert_percent} %"),
            ("Last recovery point", output.when(g.last_recovery_point)),
            ("Unsynchronized", output.size(g.unsynchronized_bytes))]
    if g.progress:
        info.append(("Progress", f"{g.progress.percent:.1f} % of {output.size(g.progress.bytes_total)}"))
    if g.last_sync:
        s = g.last_sync
        info.append(("Last sync", f"{s.outcome}: {output.size(s.bytes_sent)} sent, {output.size(s.unique_changed_bytes)}"
                                  f" changed, {s.duration_seconds:.2f} s"))
    text = output.kv(info)
    if g.pairs:
        text += "\n\n" + output.table([[p.primary_ref, p.secondary_ref, p.status,
                                         f"{p.reserved_capacity.utilization_pct:.1f} %"] for p in g.pairs],
                                      ["PRIMARY", "SECONDARY", "STATUS", "RESERVED USED"])
    return Result(g, text)


def _set(client, args) -> Result:
    g = client.update_group(args.name, **_settings(args))
    return Result(g, f"Updated {g.name}: {describe_mode(g)}, priority {g.priority}, resync {g.resync_policy}")


def _delete(client, args) -> Result:
    client.delete_group(args.name)
    return Result({"deleted": args.name}, f"Deleted mirror consistency group {args.name}")
