"""mirrorctl drill start|stop --group G: DR drill clones of a recovery point over NBD.

The secondary array's daemon exposes the clone as NBD exports (``VOLUME-drill``) and
keeps serving them while periodic syncs go on, until ``drill stop`` discards the
clone and its writes (a drill survives a restart of the daemon).
"""
from __future__ import annotations

from core.cli.common import Result, command


def register(sub) -> None:
    d = sub.add_parser("drill", help="DR drill: a writable copy of a group's recovery point, mirroring goes on")
    dsub = d.add_subparsers(dest="drill_command", metavar="DRILL_COMMAND", required=True)
    command(dsub, "start", "expose the copy as NBD exports (VOLUME-drill on the secondary array)",
            _start).add_argument("--group", required=True)
    command(dsub, "stop", "discard the drill copy and its writes", _stop).add_argument("--group", required=True)
    command(dsub, "list", "the DR drills running now, with their NBD exports", _list)


def _start(client, args) -> Result:
    info = client.drill_start(args.group)
    lines = [f"DR drill of {args.group} on {info['array']} at recovery point {info['recoveryPoint']} "
             f"('mirrorctl drill stop --group {args.group}' ends it; its writes are discarded):"]
    lines += [f"  {ref}: {uri}" for ref, uri in info["exports"].items()]
    return Result(info, "\n".join(lines))


def _stop(client, args) -> Result:
    client.drill_stop(args.group)
    return Result({"group": args.group, "stopped": True}, f"DR drill of {args.group} ended; its writes are discarded")


def _list(client, args) -> Result:
    drills = client.drills_running()
    if not drills:
        return Result([], "No DR drill is running")
    lines = []
    for d in drills:
        lines.append(f"{d['group']} on {d['array']} at recovery point {d['recoveryPoint']}:")
        lines += [f"  {ref}: {uri}" for ref, uri in d["exports"].items()]
    return Result(drills, "\n".join(lines))
