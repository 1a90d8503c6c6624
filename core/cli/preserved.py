"""mirrorctl preserved list|export|restore|delete: what a role-conflict loser wrote while apart.

Resolving a role conflict keeps the losing side's divergent writes (its regions changed
since the common recovery point) before the resync. They stay until deleted here.
"""
from __future__ import annotations

from datetime import datetime

from core.cli.common import Result, command
from core.cli.output import size, table, when


def register(sub) -> None:
    p = sub.add_parser("preserved", help="writes a role-conflict loser made while apart: list, export, restore, delete")
    psub = p.add_subparsers(dest="preserved_command", metavar="PRESERVED_COMMAND", required=True)
    command(psub, "list", "every preserved set of writes", _list).add_argument("--array", dest="on_array")
    c = command(psub, "export", "copy a set's data and index into a directory", _export)
    c.add_argument("id")
    c.add_argument("directory")
    c = command(psub, "restore", "a new volume: the volume as it is now with the preserved writes in place", _restore)
    c.add_argument("id")
    c.add_argument("--volume", required=True, help="name of the new volume (on the array that kept the writes)")
    command(psub, "delete", "delete a preserved set (it cannot be recovered)", _delete).add_argument("id")


def _list(client, args) -> Result:
    entries = client.preserved_data(args.on_array)
    if not entries:
        return Result(entries, "No preserved data.")
    rows = [[e["id"], f"{e['array']}/{e['volume']}", e["group"], when(datetime.fromisoformat(e["time"])),
             size(e["bytes"]), e["regions"], e["damaged"] or "kept"] for e in entries]
    return Result(entries, table(rows, ["ID", "Volume", "Group", "Preserved", "Size", "Regions", "State"]))


def _export(client, args) -> Result:
    out = client.preserved_export(args.id, args.directory)
    return Result(out, "Exported: " + ", ".join(out["files"]))


def _restore(client, args) -> Result:
    out = client.preserved_restore(args.id, args.volume)
    return Result(out, f"Preserved data {args.id} restored into the new volume {out['volume']}")


def _delete(client, args) -> Result:
    client.preserved_delete(args.id)
    return Result({"id": args.id, "deleted": True}, f"Preserved data {args.id} deleted")
