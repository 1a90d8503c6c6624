"""mirrorctl lab link|controller|volume|array ...: faults injected into the lab.

Adds sub-commands to the ``lab`` command of :mod:`core.cli.lab` (registered after it).
``lab link`` drives the link relay, so a cut is a real cut TCP path (the lab must be
up); the other faults go to the array that owns the volume or controller, over its REST API.
"""
from __future__ import annotations

import argparse

from core.cli.common import Result, command
from core.errors import InvalidInput, NotFound
from core.lab import LabNotUp, array_dirs
from core.refs import split_ref


def register(sub) -> None:
    lab = sub.choices["lab"]
    lsub = next(a for a in lab._actions if isinstance(a, argparse._SubParsersAction))
    link = lsub.add_parser("link", help="cut, restore or shape the link between the lab's arrays",
                           description="cut | restore | set --bandwidth 20MiB|none --latency 30ms|0 | show")
    link.add_argument("action", choices=["cut", "restore", "set", "show"])
    link.add_argument("--bandwidth", help="limit each direction, e.g. 20MiB (per second); 'none' removes the limit")
    link.add_argument("--latency", help="delay each direction, e.g. 30ms; 0 removes it (needs 'lab up')")
    link.set_defaults(run=_link)
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
        command(asub, name, f"{name} an array (its daemon stops: the site is down)", _array,
                engine=False).add_argument("name")


def _link(args) -> Result:
    from core.lab.relay_control import RelayControl
    from core.lab.shaping import parse_bandwidth, parse_latency

    if not array_dirs(args.home):
        raise NotFound(f"no lab in {args.home}; create one with 'mirrorctl lab init'", code="labNotFound")
    settings = {}
    if args.bandwidth is not None:
        settings["bandwidth"] = parse_bandwidth(args.bandwidth)
    if args.latency is not None:
        settings["latency"] = parse_latency(args.latency)
    if args.action == "set" and not settings:
        raise InvalidInput("give --bandwidth and/or --latency, e.g. 'lab link set --bandwidth 20MiB --latency 30ms'",
                           code="invalidInput")
    control = RelayControl.find(args.home)
    if control is None:
        raise LabNotUp()
    if args.action in ("cut", "restore"):
        settings["cut"] = args.action == "cut"
    state = control.set_link(**settings) if settings else control.link()
    return Result(_link_data(state, control.pid), _link_text(args.action, state))


def _link_data(state: dict, relay_pid: int | None) -> dict:
    data = {"linkCut": state["cut"], "linkBandwidth": state["bandwidth"], "linkLatency": state["latency"],
            "relayPid": relay_pid, "routes": state.get("routes", {})}
    if "connectionsClosed" in state:
        data["connectionsClosed"] = state["connectionsClosed"]
    return data


def _link_text(action: str, state: dict) -> str:
    from core.lab.shaping import describe

    shape = describe(state["bandwidth"], state["latency"])
    if action == "cut":
        return (f"Link between the lab's arrays cut ({state.get('connectionsClosed', 0)} connection(s) reset): "
                "groups pause")
    if action == "restore":
        return f"Link between the lab's arrays restored ({shape}): groups resume per their resync policy"
    return f"Link between the lab's arrays {'CUT' if state['cut'] else 'up'}: {shape}"


def _controller(client, args) -> Result:
    array, ctrl = split_ref(args.ref)
    (client.controller_reset if args.ctrl_command == "reset" else client.controller_restore)(array, ctrl)
    return Result(client.lab_faults(), f"Controller {args.ref} {'reset' if args.ctrl_command == 'reset' else 'restored'}")


def _volume(client, args) -> Result:
    (client.volume_fail if args.vol_command == "fail" else client.volume_repair)(args.ref)
    return Result(client.lab_faults(), f"Volume {args.ref} {'failed' if args.vol_command == 'fail' else 'repaired'}")


def _array(args) -> Result:
    """A stopped array is a stopped daemon: nothing answers its REST API, channel or NBD until it starts."""
    from core.lab.supervisor import lab_up, stop_array

    if args.arr_command == "stop":
        result = stop_array(args.home, args.name)
        return Result(result, f"Array {args.name} stopped: its REST API, mirroring channel and NBD are down "
                              f"(start it with 'mirrorctl lab array start {args.name}')")
    names = [d.name for d in array_dirs(args.home)]
    if args.name not in names:
        raise NotFound(f"the lab has no array named '{args.name}' (arrays: {', '.join(names) or 'none'})",
                       code="arrayNotFound")
    result = lab_up(args.home)
    return Result(result, f"Array {args.name} started" if args.name in result.get("started", [])
                  else f"Array {args.name} is running")
