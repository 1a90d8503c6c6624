"""mirrorctl array check: the offline check (and repair) of a stopped array's data directory.

It extends the ``array`` command group (registered after ``arrays``), the way
``core.cli.labfaults`` extends ``lab``. It needs no daemon: it refuses while one
runs the array (the data-directory lock), since a running array repairs its own
change logs and must not have its records changed under it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import Result, command
from core.errors import NotFound

EXIT_PROBLEMS_LEFT = 3

_HELP = "check a stopped array's data directory for damaged files; --repair fixes what can be fixed"
_EPILOG = (f"Exit status: 0 when no problem is left (none found, or all repaired); {EXIT_PROBLEMS_LEFT} when "
           "problems remain (each is listed with what to do); 1 when the check could not run (the array is "
           "running, no such array).")


def register(sub) -> None:
    arr = sub.choices["array"]
    asub = next(a for a in arr._actions if isinstance(a, argparse._SubParsersAction))
    p = command(asub, "check", _HELP, _check, engine=False)
    p.epilog = _EPILOG
    p.add_argument("target", metavar="DATA_DIR_OR_NAME", help="the array's data directory, or its name in the lab")
    p.add_argument("--repair", action="store_true",
                   help="repair what can be: damaged hints removed, damaged change logs rebuilt with their regions "
                        "changed, a damaged commit record set aside with its journals settled")


def _data_dir(args) -> Path:
    from core.lab import array_dirs

    target = Path(args.target)
    if (target / "config.db").exists():
        return target
    lab = {d.name: d for d in array_dirs(args.home)}
    if args.target in lab:
        return lab[args.target]
    raise NotFound(f"'{args.target}' is neither an array's data directory nor an array of the lab in {args.home} "
                   f"(lab arrays: {', '.join(sorted(lab)) or 'none'})", code="arrayNotFound")


def _check(args) -> Result:
    from core.array_check import check_array

    report = check_array(_data_dir(args), repair=args.repair)
    head = f"{report.array} ({report.data_dir}): checked {', '.join(report.checked) or 'what was readable'}"
    if not report.findings:
        return Result(report.to_json(), f"No problem found in {head}")
    lines = [f"{'REPAIRED' if f.repair else 'PROBLEM'} {f.line()}" for f in report.findings]
    fixed = len(report.findings) - report.problems_left
    lines.append(f"{head}: {len(report.findings)} problem(s) found, {fixed} repaired, {report.problems_left} left"
                 + ("" if args.repair or not report.problems_left else "; run again with --repair"))
    return Result(report.to_json(), "\n".join(lines), exit_code=EXIT_PROBLEMS_LEFT if report.problems_left else 0)
