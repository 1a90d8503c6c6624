"""mirrorctl array ...: the storage arrays of the lab home."""
from __future__ import annotations

from core.cli import output
from core.cli.common import Result, command


def register(sub) -> None:
    arr = sub.add_parser("array", help="storage arrays")
    asub = arr.add_subparsers(dest="array_command", metavar="ARRAY_COMMAND", required=True)
    command(asub, "list", "list the arrays", _list)
    p = command(asub, "show", "show one array: controllers, ports, pools", _show)
    p.add_argument("array")


def _list(client, args) -> Result:
    arrays = client.arrays_list()
    rows = [[a.name, a.model, a.firmware, a.wwn, ",".join(c.label for c in a.controllers),
             ",".join(sorted(a.channel_types)), "online" if a.online else "offline"] for a in arrays]
    return Result(arrays, output.table(rows, ["NAME", "MODEL", "FIRMWARE", "WWN", "CTRL", "CHANNELS", "STATE"]))


def _show(client, args) -> Result:
    a = client.array(args.array)
    lines = [output.kv([("Name", a.name), ("Model", a.model), ("Firmware", a.firmware), ("WWN", a.wwn),
                        ("Data directory", a.data_dir), ("State", "online" if a.online else "offline"),
                        ("Controllers", ", ".join(f"{c.label} ({c.status})" for c in a.controllers)),
                        ("Host ports", ", ".join(p.label + (" [mirroring]" if p.mirroring else "")
                                                 for p in a.host_ports))]),
             "", output.table([[p.name, p.drive_type.upper(), output.size(p.capacity), output.size(p.free)]
                               for p in a.pools], ["POOL", "DRIVES", "CAPACITY", "FREE"])]
    return Result(a, "\n".join(lines))
