"""mirrorctl lab ...: the embedded lab — create it, run its array daemons and link relay, stop it.

``lab up`` / ``lab down`` / ``lab status`` drive one daemon per array plus the link
relay (:mod:`core.lab.supervisor`). ``lab relay`` is the relay process that ``lab up``
starts; it is documented, not listed. Faults: :mod:`core.cli.labfaults`.
"""
from __future__ import annotations

import sys

from core.cli import output
from core.cli.common import Result
from core.errors import DataDirLocked, InvalidInput
from core.lab import array_dirs, init_lab


def register(sub) -> None:
    lab = sub.add_parser("lab", help="the embedded lab: SiteA and SiteB in the lab home")
    lsub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)
    p = lsub.add_parser("init", help="create SiteA (primary site) and SiteB (DR site) with ready volumes")
    p.add_argument("--if-missing", action="store_true", help="do nothing when the lab exists")
    p.add_argument("--arrays", type=int, default=2, metavar="N",
                   help="how many arrays: SiteA, SiteB, ... (2 to 8, default 2); 'lab up' links every pair")
    p.add_argument("--password", help="admin password of every lab array (sets it on an existing lab; "
                                      "default: the built-in lab passwords)")
    p.set_defaults(run=_init)
    p = lsub.add_parser("up", help="start a daemon per lab array and the link relay between them")
    p.set_defaults(run=_up)
    p = lsub.add_parser("down", help="stop the lab's daemons and link relay")
    p.set_defaults(run=_down)
    p = lsub.add_parser("status", help="the lab's daemons (addresses, certificates, passwords) and its link")
    p.set_defaults(run=_status)
    p = lsub.add_parser("relay", description="The lab link relay process that 'lab up' starts: relays each "
                                             "array's mirroring channel, controlled through H/relay.json.")
    p.add_argument("--route", action="append", default=[], metavar="NAME=HOST:PORT",
                   help="forward a listening port to this array's channel address")
    p.set_defaults(run=_relay)


def _init(args) -> Result:
    sites = _sites(args.arrays)
    if args.password is None:
        created = init_lab(args.home, if_missing=args.if_missing, arrays=args.arrays)
        msg = (f"Lab created in {args.home}: {sites}" if created else f"Lab already present in {args.home}")
        return Result({"home": str(args.home), "created": created}, msg)
    from core.lab.passwords import check_password_text, record_passwords, set_lab_password

    check_password_text(args.password)
    created = init_lab(args.home, if_missing=True, password=args.password, arrays=args.arrays)
    if created:
        names = [d.name for d in array_dirs(args.home)]
        record_passwords(args.home, {n: args.password for n in names})
        msg = f"Lab created in {args.home}: {sites}, with the given password"
    else:
        try:
            names = set_lab_password(args.home, args.password)
        except DataDirLocked as e:
            raise DataDirLocked(f"{e.message.split(';')[0]}; stop the lab with 'mirrorctl lab down', "
                                "set the password, then 'mirrorctl lab up'") from None
        msg = f"Lab in {args.home}: admin password of {', '.join(names)} changed (takes effect at 'lab up')"
    return Result({"home": str(args.home), "created": created, "passwordSet": names}, msg)


def _sites(count: int) -> str:
    from core.lab.home import lab_array_names

    names = lab_array_names(count)
    if count == 2:
        return "SiteA (primary site) and SiteB (DR site)"
    return f"{', '.join(names[:-1])} and {names[-1]} (primary volumes on {', '.join(names[0::2])}; " \
           f"their DR volumes on {', '.join(names[1::2])})"


def _up(args) -> Result:
    from core.lab.supervisor import lab_up

    status = lab_up(args.home)
    started = status["started"]
    head = f"Lab up in {status['home']}" + (f" (started: {', '.join(started)})" if started
                                           else " (everything was already running)")
    if status.get("linksDown"):
        head += "\nWarning: not connected yet: " + ", ".join(status["linksDown"]) + " (see the daemons' logs)"
    return Result(status, head + "\n" + _describe(status))


def _down(args) -> Result:
    from core.lab.supervisor import STOP_TIMEOUT, lab_down

    result = lab_down(args.home)
    for name in result["killed"]:
        print(f"mirrorctl: warning: {name} did not stop within {STOP_TIMEOUT:g} s; killed it (SIGKILL)",
              file=sys.stderr)
    gone = result["stopped"] + result["killed"]
    text = f"Lab stopped: {', '.join(gone)}" if gone else f"Lab already down in {result['home']}"
    return Result(result, text)


def _status(args) -> Result:
    from core.lab.supervisor import lab_status

    status = lab_status(args.home)
    state = "up" if status["up"] else ("partly up" if any(a["running"] for a in status["arrays"])
                                       or status["link"]["running"] else "down (start it with 'mirrorctl lab up')")
    return Result(status, f"Lab in {status['home']}: {state}\n" + _describe(status))


def _describe(status: dict) -> str:
    from core.lab.shaping import describe

    rows = [[a["name"], "yes" if a["running"] else "no", a["pid"], a["restUrl"], a["channelAddress"],
             a["nbdAddress"], a["password"]] for a in status["arrays"]]
    lines = [output.table(rows, ["ARRAY", "RUNNING", "PID", "REST", "CHANNEL", "NBD", "PASSWORD"])]
    lines += [f"{a['name']} certificate SHA-256 {a['certificateSha256']}" for a in status["arrays"] if a["running"]]
    link = status["link"]
    state = "CUT" if link["cut"] else "up"
    if link["running"]:
        lines.append(f"Link: {state}, {describe(link['bandwidth'], link['latency'])} (relay pid {link['relayPid']})")
        lines += [f"  to {n}: {r['listen']} -> {r['target']}, {r['connections']} connection(s)"
                  for n, r in link["routes"].items()]
    else:
        lines.append("Link: no relay running (start it with 'mirrorctl lab up')")
    return "\n".join(lines)


def _relay(args) -> None:
    from core.daemon.allocator import keep_freed_memory
    from core.lab.relay_service import parse_routes, run

    if not args.route:
        raise InvalidInput("give at least one --route NAME=HOST:PORT (the relay is started by 'mirrorctl lab up')",
                           code="invalidRoute")
    keep_freed_memory()
    run(args.home.resolve(), parse_routes(args.route))
    return None
