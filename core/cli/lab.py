"""mirrorctl lab ...: the embedded lab (two arrays in one home) and its faults."""
from __future__ import annotations

from core.cli.common import Result
from core.lab import init_lab


def register(sub) -> None:
    lab = sub.add_parser("lab", help="the embedded lab: SiteA and SiteB in the lab home")
    lsub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND", required=True)
    p = lsub.add_parser("init", help="create SiteA (primary site) and SiteB (DR site) with ready volumes")
    p.add_argument("--if-missing", action="store_true", help="do nothing when the lab exists")
    p.set_defaults(run=_init)


def _init(args) -> Result:
    created = init_lab(args.home, if_missing=args.if_missing)
    msg = (f"Lab created in {args.home}: SiteA (primary site) and SiteB (DR site)" if created
           else f"Lab already present in {args.home}")
    return Result({"home": str(args.home), "created": created}, msg)
