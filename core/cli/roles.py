"""mirrorctl role ...: promote, demote (normal or forced), cancel a pending role change."""
from __future__ import annotations

from core.cli.common import Result, command


def register(sub) -> None:
    rp = sub.add_parser("role", help="role changes of mirror consistency groups")
    rsub = rp.add_subparsers(dest="role_command", metavar="ROLE_COMMAND", required=True)
    for name, help_ in (("promote", "make ARRAY's side of the group primary"),
                        ("demote", "make ARRAY's side of the group secondary")):
        p = command(rsub, name, help_, _promote if name == "promote" else _demote)
        p.add_argument("group")
        p.add_argument("--array", required=True)
        p.add_argument("--force", action="store_true",
                       help="the arrays cannot talk: change this side only (see the forced-change rules)")
    command(rsub, "cancel", "cancel a pending role change", _cancel).add_argument("group")


def _promote(client, args) -> Result:
    r = client.promote(args.group, args.array, force=args.force)
    return Result(r, f"{args.group}: {args.array} is now primary" + (" (forced)" if args.force else ""))


def _demote(client, args) -> Result:
    r = client.demote(args.group, args.array, force=args.force)
    return Result(r, f"{args.group}: {args.array} is now secondary" + (" (forced)" if args.force else ""))


def _cancel(client, args) -> Result:
    client.role_cancel(args.group)
    return Result({"group": args.group, "cancelled": True}, f"Role change of {args.group} cancelled")
