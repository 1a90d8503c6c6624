"""mirrorctl sync / suspend / resume / verify: running mirrors."""
from __future__ import annotations

import sys
import time

from core.cli import output
from core.cli.common import Result, command
from core.errors import MirrorError


def register(sub) -> None:
    p = command(sub, "sync", "synchronize a group now, showing progress until its recovery point commits", _sync)
    p.add_argument("group")
    p.add_argument("--wait", action="store_true",
                   help="block until the recovery point is committed (this process hosts the engine, so "
                        "sync always runs to the end; --wait is kept for scripts)")
    command(sub, "suspend", "suspend a group's synchronization (changes keep being tracked)",
            _suspend).add_argument("group")
    p.add_argument("--delete-recovery-point-if-necessary", action="store_true",
                   help="a delta that does not fit a secondary's reserved capacity is applied in place there "
                        "(no recovery point until this sync commits) instead of failing the pair")
    p = command(sub, "resume", "resume a suspended or paused group (sends only what changed)", _resume)
    p.add_argument("group")
    p.add_argument("--delete-recovery-point-if-necessary", action="store_true",
                   help="as for sync: the resync may apply a delta in place on a secondary without room")
    command(sub, "verify", "compare the secondary's recovery point with the primary's image",
            _verify).add_argument("group")


def _bar(progress) -> str:
    width = 30
    filled = int(width * progress.percent / 100)
    eta = f"ETA {progress.eta_seconds:.0f}s" if progress.eta_seconds is not None else ""
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {progress.percent:5.1f}% "
            f"{output.size(progress.bytes_done)}/{output.size(progress.bytes_total)} "
            f"{output.size(progress.rate)}/s {eta}   ")


def _sync(client, args) -> Result:
    runner = client._runner
    fut = runner.submit(client.engine.sync_now, args.group, True, True, args.delete_recovery_point_if_necessary)
    tty = sys.stderr.isatty()
    while not fut.done():
        time.sleep(0.2)
        if tty:
            g = client.group(args.group)
            if g.progress is not None:
                print(_bar(g.progress), end="", file=sys.stderr, flush=True)
    if tty:
        print(file=sys.stderr)
    stats = fut.result()
    if stats is None:
        raise MirrorError(f"synchronization of {args.group} did not record statistics", code="arvmSyncFailed")
    return Result(stats, f"Recovery point of {args.group} committed at {output.when(stats.recovery_point_time)}: "
                         f"{output.size(stats.unique_changed_bytes)} changed, {output.size(stats.bytes_sent)} sent "
                         f"in {stats.duration_seconds:.2f} s")


def _suspend(client, args) -> Result:
    client.suspend(args.group)
    return Result({"suspended": args.group}, f"Suspended {args.group}; changes are tracked until you resume")


def _resume(client, args) -> Result:
    client.resume(args.group, delete_recovery_point_if_necessary=args.delete_recovery_point_if_necessary)
    g = client.group(args.group)
    return Result(g, f"Resumed {args.group}; only the changed regions will be sent")


def _verify(client, args) -> Result:
    report = client.verify(args.group)
    lines = [f"{p['primary']} -> {p['secondary']}: "
             + ("identical" if p["identical"] else f"MISMATCH in {p['mismatchedBlocks']} block(s), first at byte "
                                                     f"{p['firstMismatchOffset']}")
             + (f" ({p['regionsSkippedChangedSinceRecoveryPoint']} region(s) changed since the recovery point "
                "were skipped)" if p["regionsSkippedChangedSinceRecoveryPoint"] else "")
             for p in report["pairs"]]
    return Result(report, "\n".join(lines), exit_code=0 if report["identical"] else 3)
