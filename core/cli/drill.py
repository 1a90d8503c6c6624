"""mirrorctl drill start|stop --group G: DR drill clones of a recovery point over NBD."""
from __future__ import annotations

import signal
import threading
import time

from core.cli.common import Result
from core.errors import DataDirLocked, NotFound
from core.lab import LabState, array_dirs
from core.runtime import BlockingEngine


def register(sub) -> None:
    d = sub.add_parser("drill", help="DR drill: a writable copy of a group's recovery point, mirroring goes on")
    dsub = d.add_subparsers(dest="drill_command", metavar="DRILL_COMMAND", required=True)
    p = dsub.add_parser("start", help="expose the copy as NBD exports (VOLUME-drill on the secondary array); "
                                      "runs the lab in the foreground unless a lab process already runs")
    p.add_argument("--group", required=True)
    p.add_argument("--nbd-port", type=int, default=0)
    p.set_defaults(run=_start)
    p = dsub.add_parser("stop", help="discard the drill copy and its writes")
    p.add_argument("--group", required=True)
    p.set_defaults(run=_stop)


def _lab(args) -> LabState:
    if not array_dirs(args.home):
        raise NotFound(f"no lab in {args.home}; create one with 'mirrorctl lab init'", code="labNotFound")
    return LabState(args.home)


def _start(args) -> Result:
    _lab(args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        client = BlockingEngine(args.home, purpose="mirrorctl drill start", nbd_port=args.nbd_port).start()
    except DataDirLocked:
        # A running lab (console, lab run) follows lab.json: ask it to start the drill.
        state = LabState(args.home)
        if args.group not in state.faults.drills:
            state.faults.drills.append(args.group)
            state.save()
        return Result({"group": args.group, "requested": True},
                      f"DR drill of {args.group} requested from the running lab; its exports are listed by "
                      "the console (VOLUME-drill on the secondary array)")
    try:
        info = client.drill_start(args.group)
        print(f"DR drill of {args.group} at recovery point {info['recoveryPoint']} (Ctrl-C or "
              f"'mirrorctl drill stop --group {args.group}' ends it; its writes are discarded):")
        for ref, uri in info["exports"].items():
            print(f"  {ref}: {uri}")
        print("ready", flush=True)
        while not stop.is_set() and args.group in LabState(args.home).faults.drills:
            time.sleep(0.25)
        if args.group in LabState(args.home).faults.drills:
            client.drill_stop(args.group)
    finally:
        client.close()
    return Result(info, f"DR drill of {args.group} ended")


def _stop(args) -> Result:
    state = _lab(args)
    if args.group not in state.faults.drills:
        raise NotFound(f"no DR drill of {args.group} is running", code="drillNotRunning")
    state.faults.drills.remove(args.group)
    state.save()
    return Result({"group": args.group, "stopped": True}, f"DR drill of {args.group} stopped; its writes discarded")
