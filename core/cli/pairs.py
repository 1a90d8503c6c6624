"""mirrorctl pair ...: mirrored pairs."""
from __future__ import annotations

import math

from core.cli import output
from core.cli.common import Result, command, with_engine
from core.errors import InvalidInput


def reserved_percent(text: str, option: str) -> float:
    """A reserved capacity percentage as typed: a finite number, more than 0 and at most 100.

    ``float()`` alone takes ``nan`` and ``inf``, which no array can reserve (and which
    the daemons would otherwise meet as internal errors).
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 100):
        raise InvalidInput(f"{option} {text} is not a reserved capacity percentage; give a number more than 0 and "
                           "at most 100, e.g. 20", code="arvmInvalidRepositoryCapacity")
    return value


def register(sub) -> None:
    pr = sub.add_parser("pair", help="mirrored pairs")
    psub = pr.add_subparsers(dest="pair_command", metavar="PAIR_COMMAND", required=True)
    p = command(psub, "add", "add a mirrored pair to a group (starts the initial synchronization)", _add,
                engine=False)
    p.add_argument("--group", required=True)
    p.add_argument("--primary", required=True, metavar="ARRAY/VOLUME")
    p.add_argument("--secondary", required=True, metavar="ARRAY/VOLUME")
    p.add_argument("--reserved-percent", default="20", help="of each volume (more than 0, at most 100)")
    p.add_argument("--secondary-reserved-percent", help="of the secondary volume (default: --reserved-percent)")
    command(psub, "list", "list mirrored pairs", _list).add_argument("--group")
    command(psub, "show", "show a mirrored pair", _show).add_argument("ref", metavar="ARRAY/VOLUME")
    command(psub, "remove", "remove a mirrored pair on both arrays", _remove).add_argument("ref",
                                                                                           metavar="ARRAY/VOLUME")


def _add(args) -> Result:
    primary = reserved_percent(args.reserved_percent, "--reserved-percent")
    secondary = None
    if args.secondary_reserved_percent is not None:
        secondary = reserved_percent(args.secondary_reserved_percent, "--secondary-reserved-percent")
    return with_engine(args, lambda client: _add_pair(client, args, primary, secondary))


def _add_pair(client, args, primary: float, secondary: float | None) -> Result:
    p = client.add_pair(args.group, args.primary, args.secondary, primary, secondary)
    return Result(p, f"Added mirrored pair {p.primary_ref} -> {p.secondary_ref} to {p.group} ({p.status})")


def _list(client, args) -> Result:
    pairs = [p for p in client.pairs(args.group) if p.role == "primary" or p.status == "orphan"]
    rows = [[p.group, p.primary_ref, p.secondary_ref, p.status, output.size(p.unsynchronized_bytes),
             f"{p.reserved_capacity.utilization_pct:.1f} %"] for p in pairs]
    return Result(pairs, output.table(rows, ["GROUP", "PRIMARY", "SECONDARY", "STATUS", "UNSYNCED", "RESERVED USED"]))


def _show(client, args) -> Result:
    p = client.pair(args.ref)
    rc = p.reserved_capacity
    info = [("Pair", f"{p.primary_ref} -> {p.secondary_ref}"), ("Group", p.group), ("This side", f"{p.array} ({p.role})"),
            ("Status", p.status + (f" ({p.reason})" if p.reason else "")),
            ("Recovery point", output.when(p.last_recovery_point) if p.recovery_point_available else "unavailable"),
            ("Unsynchronized", output.size(p.unsynchronized_bytes)),
            ("Reserved capacity", f"{output.size(rc.capacity)} in {rc.pool}: PIT {output.size(rc.pit_bytes)}, "
                                  f"change log {output.size(rc.log_bytes)}, staging {output.size(rc.staging_bytes)}, "
                                  f"available {output.size(rc.available)} ({rc.utilization_pct:.1f} % used)")]
    if p.progress:
        info.append(("Progress", f"{p.progress.percent:.1f} %"))
    return Result(p, output.kv(info))


def _remove(client, args) -> Result:
    client.remove_pair(args.ref)
    return Result({"removed": args.ref}, f"Removed mirrored pair {args.ref}")
