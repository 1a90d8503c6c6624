"""mirrorctl volume ... and candidates: volumes and who may mirror them."""
from __future__ import annotations

from core.cli import output
from core.cli.common import Result, command


def register(sub) -> None:
    vol = sub.add_parser("volume", help="volumes (sparse files in an array's data directory)")
    vsub = vol.add_subparsers(dest="volume_command", metavar="VOLUME_COMMAND", required=True)
    p = command(vsub, "create", "create a volume", _create)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--capacity", required=True, help="e.g. 10GiB")
    p.add_argument("--pool")
    p.add_argument("--drive-type", choices=["nvme", "sas"])
    p.add_argument("--security", default="none", choices=["none", "fde", "fips"])
    p.add_argument("--drive-security", action="store_true")
    p.add_argument("--data-assurance", action="store_true")
    p.add_argument("--resource-partitioning", action="store_true")
    p.add_argument("--raid", default="6", choices=["0", "1", "5", "6", "10"])
    p.add_argument("--segment-size", default="128KiB")
    p.add_argument("--owner", choices=["A", "B"], help="preferred controller")
    p = command(vsub, "list", "list volumes", _list)
    p.add_argument("--array")
    p = command(vsub, "show", "show a volume", _show)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p = command(vsub, "resize", "grow a volume", _resize)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--capacity", required=True)
    p = command(vsub, "delete", "delete a volume (refused while mirrored)", _delete)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    register_io(vsub)
    p = command(sub, "candidates", "every remote volume: eligible as secondary, or why not", _candidates)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--remote", required=True)
    p.add_argument("--channel", choices=["fc", "iscsi"])
    p.add_argument("--reserved-percent", type=float, default=20)


def _create(client, args) -> Result:
    v = client.create_volume(args.ref, args.capacity, pool=args.pool, drive_type=args.drive_type,
                             security=args.security, drive_security=args.drive_security,
                             data_assurance=args.data_assurance, resource_partitioning=args.resource_partitioning,
                             raid_level=args.raid, segment_size=args.segment_size, owner=args.owner)
    return Result(v, f"Created {v.array}/{v.name}: {output.size(v.capacity)} in {v.pool} ({v.path})")


def _list(client, args) -> Result:
    vols = client.volumes(args.array)
    rows = [[f"{v.array}/{v.name}", output.size(v.capacity), v.drive_type.upper(), v.pool, v.raid_level,
             v.security, f"{v.current_owner}", v.mirror_group or "-", v.role or "-",
             "failed" if v.failed else ("rw" if v.host_writable else "ro")] for v in vols]
    return Result(vols, output.table(rows, ["VOLUME", "CAPACITY", "DRIVES", "POOL", "RAID", "SECURITY", "OWNER",
                                            "GROUP", "ROLE", "ACCESS"]))


def _show(client, args) -> Result:
    v = client.volume(args.ref)
    return Result(v, output.kv([
        ("Volume", f"{v.array}/{v.name}"), ("Capacity", f"{output.size(v.capacity)} ({v.capacity} bytes)"),
        ("Pool", f"{v.pool} ({v.drive_type.upper()})"), ("RAID level", v.raid_level),
        ("Segment size", output.size(v.segment_size)), ("Security", v.security),
        ("Drive Security", "on" if v.drive_security else "off"),
        ("Data Assurance", "on" if v.data_assurance else "off"),
        ("Resource Partitioning", "on" if v.resource_partitioning else "off"),
        ("Owner", f"{v.current_owner} (preferred {v.preferred_owner})"),
        ("Mirror group", v.mirror_group or "-"), ("Role", v.role or "-"),
        ("Host access", "failed" if v.failed else ("read/write" if v.host_writable else "read-only")),
        ("NBD", v.nbd_uri or "not served"), ("Backing file", v.path)]))


def _resize(client, args) -> Result:
    v = client.resize_volume(args.ref, args.capacity)
    return Result(v, f"{v.array}/{v.name} is now {output.size(v.capacity)}")


def _delete(client, args) -> Result:
    client.delete_volume(args.ref)
    return Result({"deleted": args.ref}, f"Deleted {args.ref}")


def _candidates(client, args) -> Result:
    cands = client.candidates(args.ref, args.remote, args.channel, args.reserved_percent)
    lines = []
    for c in cands:
        mark = "eligible" if c.eligible else "not eligible"
        lines.append(f"{c.volume.array}/{c.volume.name} ({output.size(c.volume.capacity)}, "
                     f"{c.volume.drive_type.upper()}): {mark}")
        lines.extend(f"    - {r}" for r in c.reasons)
        lines.extend(f"    ! {w}" for w in c.warnings)
    return Result(cands, "\n".join(lines) or f"{args.remote} has no volumes")


def register_io(vsub) -> None:
    p = command(vsub, "write", "host write: data from --file or stdin at --offset", _write)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--offset", required=True, help="byte offset (units allowed, e.g. 1MiB)")
    p.add_argument("--file", help="read the data from this file (default: stdin)")
    p = command(vsub, "read", "host read: --length bytes at --offset to --file or stdout", _read)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--offset", required=True)
    p.add_argument("--length", required=True)
    p.add_argument("--file", help="write the data to this file (default: stdout)")


def _write(client, args) -> Result:
    import sys

    from core.units import parse_size

    if args.file:
        with open(args.file, "rb") as f:
            data = f.read()
    else:
        data = sys.stdin.buffer.read()
    offset = parse_size(args.offset, "offset")
    n = client.host_write(args.ref, offset, data)
    client.host_flush(args.ref)
    return Result({"volume": args.ref, "offset": offset, "bytesWritten": n},
                  f"Wrote {n} bytes to {args.ref} at offset {offset}")


def _read(client, args) -> Result:
    import sys

    from core.units import parse_size

    offset, length = parse_size(args.offset, "offset"), parse_size(args.length, "length")
    data = client.host_read(args.ref, offset, length)
    if args.file:
        with open(args.file, "wb") as f:
            f.write(data)
        return Result({"volume": args.ref, "offset": offset, "bytesRead": len(data), "file": args.file},
                      f"Read {len(data)} bytes from {args.ref} into {args.file}")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return None
