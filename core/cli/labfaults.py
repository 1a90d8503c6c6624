"""mirrorctl lab controller|volume|array ...: faults injected into the lab (kept in lab.json).

Adds sub-commands to the ``lab`` command of :mod:`core.cli.lab` (registered after it).
"""
from __future__ import annotations

import argparse

from core.cli.common import Result, command
from core.service_volumes import split_ref


def register(sub) -> None:
    lab = sub.choices["lab"]
    lsub = next(a for a in lab._actions if isinstance(a, argparse._SubParsersAction))
    c = lsub.add_parser("controller", help="reset or restore a controller (ARRAY/CTRL)")
    csub = c.add_subparsers(dest="ctrl_command", metavar="ACTION", required=True)
    for name in ("reset", "restore"):
        command(csub, name, f"{name} a controller", _controller).add_argument("ref", metavar="ARRAY/CTRL")
    v = lsub.add_parser("volume", help="fail or repair a volume (ARRAY/VOLUME)")
    vsub = v.add_subparsers(dest="vol_command", metavar="ACTION", required=True)
    for name in ("fail", "repair"):
        command(vsub, name, f"{name} a volume", _volume).add_argument("ref", metavar="ARRAY/VOLUME")
    a = lsub.add_parser("array", help="stop or start an array")
    asub = a.add_subparsers(dest="arr_command", metavar="ACTION", required=True)
    for name in ("stop", "start"):
        command(asub, name, f"{name} an array", _array).add_argument("name")


def _controller(client, args) -> Result:
    array, ctrl = split_ref(args.ref)
    (client.controller_reset if args.ctrl_command == "reset" else client.controller_restore)(array, ctrl)
    return Result(client.lab_faults(), f"Controller {args.ref} {'reset' if args.ctrl_command == 'reset' else 'restored'}")


def _volume(client, args) -> Result:
    (client.volume_fail if args.vol_command == "fail" else client.volume_repair)(args.ref)
    return Result(client.lab_faults(), f"Volume {args.ref} {'failed' if args.vol_command == 'fail' else 'repaired'}")


def _array(client, args) -> Result:
    (client.array_stop if args.arr_command == "stop" else client.array_start)(args.name)
    return Result(client.lab_faults(), f"Array {args.name} {'stopped' if args.arr_command == 'stop' else 'started'}")
