"""mirrorctl lab ...: the embedded lab (two arrays in one home) and its faults."""
from __future__ import annotations

import signal
import threading

from core.cli.common import Result
from core.errors import NotFound
from core.lab import LabState, array_dirs, init_lab
from core.runtime import BlockingEngine


def register(sub) -> None:
    lab = sub.add_parser("lab", help="the embedded lab: SiteA and SiteB in the lab home")
    lsub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)
    p = lsub.add_parser("init", help="create SiteA (primary site) and SiteB (DR site) with ready volumes")
    p.add_argument("--if-missing", action="store_true", help="do nothing when the lab exists")
    p.set_defaults(run=_init)
    p = lsub.add_parser("run", help="run the lab's arrays, scheduler and NBD servers in the foreground")
    p.add_argument("--nbd-port", type=int, default=0, help="first NBD port (SiteA; SiteB gets the next); "
                                                           "default: free ports")
    p.set_defaults(run=_run)
    link = lsub.add_parser("link", help="cut or restore the link between the lab's arrays")
    link.add_argument("action", choices=["cut", "restore"])
    link.add_argument("--bandwidth", help="limit the link, e.g. 20MiB (per second); 'none' removes the limit")
    link.set_defaults(run=_link)


def _init(args) -> Result:
    created = init_lab(args.home, if_missing=args.if_missing)
    msg = (f"Lab created in {args.home}: SiteA (primary site) and SiteB (DR site)" if created
           else f"Lab already present in {args.home}")
    return Result({"home": str(args.home), "created": created}, msg)


def _link(args) -> Result:
    """Faults live in lab.json, so this works while another process runs the lab (it follows the file)."""
    from core.units import parse_size

    if not array_dirs(args.home):
        raise NotFound(f"no lab in {args.home}; create one with 'mirrorctl lab init'", code="labNotFound")
    state = LabState(args.home)
    state.faults.link_cut = args.action == "cut"
    if args.bandwidth:
        state.faults.link_bandwidth = None if args.bandwidth == "none" else parse_size(args.bandwidth, "bandwidth")
    state.save()
    text = "Link between SiteA and SiteB cut: groups pause" if state.faults.link_cut else \
        "Link between SiteA and SiteB restored: groups resume per their resync policy"
    return Result({"linkCut": state.faults.link_cut, "linkBandwidth": state.faults.link_bandwidth}, text)


def _run(args) -> Result:
    if not array_dirs(args.home):
        raise NotFound(f"no lab in {args.home}; create one with 'mirrorctl lab init'", code="labNotFound")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with BlockingEngine(args.home, purpose="mirrorctl lab run", nbd_port=args.nbd_port) as client:
        uris = client.nbd_uris()
        print(f"Lab running from {args.home} (Ctrl-C to stop). Scheduled syncs run while this process runs.")
        for a in client.arrays_list():
            print(f"  {a.name}: mirroring channel {a.channel_address}")
        for ref, uri in uris.items():
            print(f"  {ref}: {uri}")
        print("ready", flush=True)
        stop.wait()
    return Result({"stopped": True, "nbd": uris}, "Lab stopped")
