"""mirrorctl array ...: the storage arrays, ``array serve`` (one array as a daemon); add/list/remove in core.cli.managed."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from core import iscsi_settings
from core.cli import managed, output
from core.cli.common import Result, command, with_engine
from core.errors import InvalidInput


def register(sub) -> None:
    arr = sub.add_parser("array", help="storage arrays")
    asub = arr.add_subparsers(dest="array_command", metavar="ARRAY_COMMAND", required=True)
    managed.register(asub, lambda args: with_engine(args, lambda client: _list(client, args)))
    p = command(asub, "show", "show one array: controllers, ports, pools", _show)
    p.add_argument("array")
    p = command(asub, "iscsi", "show or set an array's iSCSI global settings (both arrays of an iSCSI mirror "
                "must share them)", _iscsi)
    p.add_argument("array")
    p.add_argument("--vlan", type=_optional_int("VLAN ID"), default=_UNSET, help="VLAN ID 1-4094, or none")
    p.add_argument("--listen-port", type=_port, help="iSCSI listening port: 3260 or 49152-65535")
    p.add_argument("--jumbo-frames", choices=["on", "off"], help="jumbo frames (9000-byte payload) on or off")
    p.add_argument("--ethernet-priority", type=_optional_int("Ethernet priority"), default=_UNSET,
                   help="802.1p priority 0-7, or none")
    r = asub.add_parser("remote", help="the remote arrays an array mirrors with (where to reach them, their password)")
    rsub = r.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    command(rsub, "list", "list an array's remote arrays and whether each answers", _remote_list).add_argument("array")
    p = command(rsub, "add", "add (or change) a remote array of ARRAY", _remote_add)
    p.add_argument("array")
    p.add_argument("--name", required=True, help="the remote array's name")
    p.add_argument("--address", action="append", required=True, metavar="HOST:PORT",
                   help="its mirroring channel address; repeat for several ports (the first that connects is used)")
    p.add_argument("--remote-password", required=True, help="the remote array's admin password")
    p = command(rsub, "remove", "remove a remote array no group uses", _remote_remove)
    p.add_argument("array")
    p.add_argument("name")
    p = command(asub, "serve", "run one array as a daemon (REST API, mirroring channel, NBD) until SIGTERM",
                _serve, engine=False)
    p.add_argument("--data-dir", type=Path, required=True, help="the array's data directory")
    p.add_argument("--listen", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--rest-port", type=_port, default=8443, help="HTTPS REST API port (0: pick a free one)")
    p.add_argument("--channel-port", type=_port, default=0, help="mirroring channel port (0: pick a free one)")
    p.add_argument("--nbd-port", type=_port, default=0, help="NBD port for hosts (0: pick a free one)")
    p.add_argument("--cert", type=Path, help="the administrator's certificate (PEM) instead of a self-signed one")
    p.add_argument("--key", type=Path, help="its private key (PEM)")
    p.add_argument("--no-channel-tls", action="store_true",
                   help="plain TCP on the mirroring channel (both arrays must agree)")


def _optional_int(what: str):
    def parse(text: str) -> int | None:
        if text.lower() == "none":
            return None
        try:
            return int(text)
        except ValueError:
            raise InvalidInput(f"{what} '{text}' is not a whole number; give one, or none") from None
    return parse


_UNSET = object()


def _iscsi(client, args) -> Result:
    changes = {}
    if args.vlan is not _UNSET:
        changes["vlan"] = args.vlan
    if args.listen_port is not None:
        changes["listen_port"] = args.listen_port
    if args.jumbo_frames is not None:
        changes["jumbo_frames"] = args.jumbo_frames == "on"
    if args.ethernet_priority is not _UNSET:
        changes["ethernet_priority"] = args.ethernet_priority
    s = client.set_iscsi_settings(args.array, **changes) if changes else client.iscsi_settings(args.array)
    shown = iscsi_settings.describe(s)
    head = f"iSCSI global settings of {args.array}" + (" (changed)" if changes else "")
    return Result(s.to_json(), "\n".join([head] + [f"  {name}: {value}" for name, value in shown.items()]))


def _remote_list(client, args) -> Result:
    remotes = client.remote_arrays(args.array)
    rows = [[r["name"], ",".join(r["addresses"]), "yes" if r["reachable"] else "no", r.get("linkReason", "")]
            for r in remotes]
    return Result(remotes, output.table(rows, ["REMOTE", "CHANNEL ADDRESSES", "REACHABLE", "LINK"]))


def _remote_add(client, args) -> Result:
    entry = client.add_remote_array(args.name, args.address, args.remote_password, array=args.array)
    return Result(entry, f"{args.array} reaches {args.name} at {', '.join(entry['addresses'])}")


def _remote_remove(client, args) -> Result:
    client.remove_remote_array(args.name, array=args.array)
    return Result({"array": args.array, "removed": args.name}, f"{args.array} no longer knows {args.name}")


def _port(text: str) -> int:
    """A port option's value; a bad one is one line (a MirrorError passes through argparse)."""
    if not text.isdigit() or int(text) > 65535:
        raise InvalidInput(f"port '{text}' must be a number from 0 to 65535 (0 picks a free one)", code="invalidPort")
    return int(text)


def _serve(args) -> Result | None:
    from core.daemon.allocator import keep_freed_memory
    from core.daemon.array_daemon import ArrayDaemon

    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    daemon = ArrayDaemon(args.data_dir, listen=args.listen, rest_port=args.rest_port,
                         channel_port=args.channel_port, nbd_port=args.nbd_port, cert=args.cert, key=args.key,
                         channel_tls=not args.no_channel_tls)
    asyncio.run(daemon.run())
    return None


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
                                                 for p in a.host_ports))]
                       + ([("iSCSI settings", ", ".join(f"{name} {value}" for name, value
                                                       in iscsi_settings.describe(a.iscsi).items()))]
                          if a.iscsi is not None else [])),
             "", output.table([[p.name, p.drive_type.upper(), output.size(p.capacity), output.size(p.free)]
                               for p in a.pools], ["POOL", "DRIVES", "CAPACITY", "FREE"])]
    return Result(a, "\n".join(lines))
