"""mirrorctl guru ...: the Recovery Guru's problems and their fixes."""
from __future__ import annotations

from dataclasses import asdict

from core.cli.common import Result, with_engine


def register(sub) -> None:
    p = sub.add_parser("guru", help="Recovery Guru: current problems and how to fix them")
    gsub = p.add_subparsers(dest="guru_command", metavar="GURU_COMMAND")
    f = gsub.add_parser("fix", help="run a problem's recovery action")
    f.add_argument("problem", metavar="PROBLEM_ID")
    f.add_argument("--action", required=True)
    f.set_defaults(run=lambda args: with_engine(args, lambda c: _fix(c, args)))
    p.set_defaults(run=lambda args: with_engine(args, lambda c: _list(c, args)))


def _list(client, args) -> Result:
    problems = client.guru()
    if not problems:
        return Result([], "No problems: every mirror is healthy")
    lines = []
    for p in problems:
        lines.append(f"[{p.severity.upper()}] {p.id}: {p.title}")
        lines.append(f"    cause: {p.cause}")
        lines.extend(f"    {s}" for s in p.steps)
        for a in p.actions:
            lines.append(f"    action {a.id}: {a.label}{' (destructive)' if a.destructive else ''}"
                         f"{' - ' + a.detail if a.detail else ''}"
                         f"{' [not now: ' + a.blocked + ']' if a.blocked else ''}")
    return Result([asdict(p) for p in problems], "\n".join(lines))


def _fix(client, args) -> Result:
    r = client.guru_fix(args.problem, args.action)
    return Result(r, f"Ran {args.action} for {args.problem}")
