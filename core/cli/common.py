"""What every mirrorctl command shares: running a call against the engine, results."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from core.errors import NotFound
from core.lab import array_dirs
from core.runtime import BlockingEngine


@dataclass
class Result:
    data: Any  # what --json prints
    text: str  # what a person reads
    exit_code: int = 0


def with_engine(args, fn: Callable[[BlockingEngine], Result]) -> Result:
    if not array_dirs(args.home):
        raise NotFound(f"no lab in {args.home}; create one with 'mirrorctl lab init' (or give --home)",
                       code="labNotFound")
    with BlockingEngine(args.home, purpose=f"mirrorctl {args.command}") as client:
        return fn(client)


def command(sub, name: str, help: str, handler: Callable[[BlockingEngine, Any], Result], engine: bool = True):
    p = sub.add_parser(name, help=help, description=help)
    if engine:
        p.set_defaults(run=lambda args: with_engine(args, lambda client: handler(client, args)))
    else:
        p.set_defaults(run=handler)
    return p
