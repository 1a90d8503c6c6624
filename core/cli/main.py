"""mirrorctl entry point: parse, open the engine, run one command, print, exit.

Errors exit non-zero with one line naming the problem and the fix (no traceback).
"""
from __future__ import annotations

import argparse
import os
import select
import sys
from pathlib import Path

from core.cli import arrays, check, drill, groups, lab, output, pairs, preserved, status, sync, volumes
from core.cli import guru, labfaults, roles  # roles, failover, Recovery Guru, lab faults
from core.errors import MirrorError

COMMAND_GROUPS = [lab, arrays, check, volumes, groups, pairs, sync, drill, preserved, status,
                  labfaults, roles, guru]  # labfaults extends 'lab': keep it after lab


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mirrorctl", description="Asynchronous volume mirroring between storage arrays",
                                allow_abbrev=False)  # "--array" of a command must not match "--array-url"
    p.add_argument("--home", type=Path, help="lab home directory (default: the user data dir)")
    p.add_argument("--json", action="store_true", help="print stable JSON (see README)")
    p.add_argument("--array-url", help="manage the array daemon at this URL (https://host:8443) instead of the lab")
    p.add_argument("--password", help="that array's admin password")
    p.add_argument("--accept-certificate", metavar="SHA256",
                   help="trust the array's certificate with this SHA-256 fingerprint (as 'lab status' shows it)")
    p.add_argument("--ca-file", help="trust the certificate (or its CA) in this PEM file")
    p.add_argument("--array-name", help=argparse.SUPPRESS)
    p.add_argument("--array", dest="managed_arrays", action="append", metavar="NAME",
                   help="manage this saved array ('mirrorctl array add'); repeat for several")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_GROUPS:
        module.register(sub)
    return p


EXIT_BROKEN_PIPE = 141  # what a shell reports for a command ended by SIGPIPE (128 + 13)


def _stdout_gone() -> int:
    """The reader of our stdout left (``mirrorctl --json status | head -1``): stop quietly.

    Python's documented recipe (signal module, "Note on SIGPIPE"): point stdout at
    devnull so the flush at interpreter exit does not raise again, and exit as a
    command ended by SIGPIPE would, without a traceback.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (tests): nothing left to flush
        pass
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def _reader_left() -> bool:
    """True when stdout is a pipe nobody reads any more (poll reports POLLERR on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        return _stdout_gone()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # --json is accepted after the command too ("group show G1 --json"), as the README writes it.
    as_json = "--json" in argv
    try:
        args = parser.parse_args([a for a in argv if a != "--json"])  # a bad option value: one line (MirrorError)
        args.json = as_json
        if args.home is None:
            from core.lab import default_home

            args.home = default_home()
        result = args.run(args)
    except MirrorError as e:
        print(f"mirrorctl: error: {e.message} [{e.code}]", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mirrorctl: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: one line for the user, the traceback only when asked for
        if isinstance(e, BrokenPipeError) and _reader_left():
            raise  # 'volume read' to stdout: its reader left (not a daemon's socket)
        if os.environ.get("MIRRORCTL_DEBUG"):
            raise
        print(f"mirrorctl: error: unexpected {type(e).__name__}: {e}; run again with MIRRORCTL_DEBUG=1 for the "
              "details and report it [internalError]", file=sys.stderr)
        return 1
    if result is None:
        return 0
    if args.json:
        output.emit_json(result.data if hasattr(result, "data") else result)
    else:
        text = result.text if hasattr(result, "text") else str(result)
        if text:
            print(text)
    sys.stdout.flush()  # a reader that left is noticed here, not at interpreter exit
    return getattr(result, "exit_code", 0)


if __name__ == "__main__":
    sys.exit(main())
