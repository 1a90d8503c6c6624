"""mirrorctl entry point: parse, open the engine, run one command, print, exit.

Errors exit non-zero with one line naming the problem and the fix (no traceback).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import arrays, drill, groups, lab, output, pairs, status, sync, volumes
from core.cli import guru, labfaults, roles  # roles, failover, Recovery Guru, lab faults
from core.errors import MirrorError

COMMAND_GROUPS = [lab, arrays, volumes, groups, pairs, sync, drill, status,
                  labfaults, roles, guru]  # labfaults extends 'lab': keep it after lab


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mirrorctl", description="Asynchronous volume mirroring between storage arrays")
    p.add_argument("--home", type=Path, help="lab home directory (default: the user data dir)")
    p.add_argument("--json", action="store_true", help="print stable JSON (see README)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_GROUPS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.home is None:
        from core.lab import default_home

        args.home = default_home()
    try:
        result = args.run(args)
    except MirrorError as e:
        print(f"mirrorctl: error: {e.message} [{e.code}]", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mirrorctl: interrupted", file=sys.stderr)
        return 130
    if result is None:
        return 0
    if args.json:
        output.emit_json(result.data if hasattr(result, "data") else result)
    else:
        text = result.text if hasattr(result, "text") else str(result)
        if text:
            print(text)
    return getattr(result, "exit_code", 0)


if __name__ == "__main__":
    sys.exit(main())
