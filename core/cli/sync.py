"""mirrorctl sync / suspend / resume / verify: running mirrors."""
from __future__ import annotations

import sys
import time

from core.cli import output
from core.cli.common import Result, command
from core.errors import MirrorError


def register(sub) -> None:
    p = command(sub, "sync", "start synchronizing a group now (--wait: show progress until it commits)", _sync)
    p.add_argument("group")
    p.add_argument("--wait", action="store_true",
                   help="show the progress and return once the recovery point is committed (a recovery point "
                        "that holds every write made before the command)")
    command(sub, "suspend", "suspend a group's synchronization (changes keep being tracked)",
            _suspend).add_argument("group")
    p.add_argument("--delete-recovery-point-if-necessary", action="store_true",
                   help="a delta that does not fit a secondary's reserved capacity is applied in place there "
                        "(no recovery point until this sync commits) instead of failing the pair")
    p = command(sub, "resume", "resume a suspended or paused group (sends only what changed)", _resume)
    p.add_argument("group")
    p.add_argument("--delete-recovery-point-if-necessary", action="store_true",
                   help="as for sync: the resync may apply a delta in place on a secondary without room")
    v = command(sub, "verify", "compare the secondary's recovery point with the primary's image", _verify)
    v.add_argument("group")
    v.add_argument("--online", action="store_true",
                   help="compare in the background, batch by batch; regions that differ are marked for the "
                        "next sync and shown in the Recovery Guru (DRBD's online verify)")
    v.epilog = VERIFY_EPILOG


def _bar(progress) -> str:
    width = 30
    filled = int(width * progress.percent / 100)
    eta = f"ETA {progress.eta_seconds:.0f}s" if progress.eta_seconds is not None else ""
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {progress.percent:5.1f}% "
            f"{output.size(progress.bytes_done)}/{output.size(progress.bytes_total)} "
            f"{output.size(progress.rate)}/s {eta}   ")


def _sync(client, args) -> Result:
    if not args.wait:  # the array runs the sync; this command only starts it
        client.sync_now(args.group, delete_recovery_point_if_necessary=args.delete_recovery_point_if_necessary)
        return Result({"group": args.group, "started": True},
                      f"Synchronization of {args.group} started; 'mirrorctl sync {args.group} --wait' waits for its "
                      f"recovery point, 'mirrorctl group show {args.group}' shows its progress")
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


EXIT_MISMATCH = 3
EXIT_NOT_VERIFIED = 4
VERIFY_EPILOG = (
    "Regions changed on the primary since the recovery point cannot be compared and are skipped; the report says "
    "how many regions and bytes were compared and skipped, per pair and in total. Exit status: 0 every pair "
    f"compared and identical; {EXIT_MISMATCH} a secondary differs from the recovery point; {EXIT_NOT_VERIFIED} not "
    "verified: a pair could not be compared at all (every region changed since the recovery point, no recovery "
    "point yet, no pairs); 1 an error (e.g. the remote array cannot be reached).")
_NOT_VERIFIABLE = ("arvmNoRecoveryPoint", "arvmGroupEmpty")


def _verify(client, args) -> Result:
    """Never "identical" for what was not compared (the exit status tells scripts apart)."""
    if getattr(args, "online", False):
        return _online_verify(client, args)
    try:
        report = client.verify(args.group)
    except MirrorError as e:
        if e.code not in _NOT_VERIFIABLE:
            raise
        return Result({"group": args.group, "outcome": "notVerified", "identical": False, "reason": e.message,
                       "retcode": e.code}, f"{args.group}: NOT VERIFIED: {e.message}", exit_code=EXIT_NOT_VERIFIED)
    age = report.get("recoveryPointAgeSeconds")
    lines = [f"Recovery point {report.get('recoveryPointId', '')} of {report['group']} "
             f"({report['recoveryPoint']}{f', {_age(age)} old' if age is not None else ''}); group "
             f"{report.get('groupStatus', 'unknown').replace('_', ' ')}"]
    lines += [_pair_line(p) for p in report["pairs"]]
    total, skip = report["compared"], report["skipped"]
    verdict = {"identical": "identical", "mismatch": "MISMATCH",
               "notVerified": "NOT VERIFIED (a pair could not be compared)"}[report["outcome"]]
    lines.append(f"Total: compared {total['regions']} region(s) ({output.size(total['bytes'])}), skipped "
                 f"{skip['regions']} ({output.size(skip['bytes'])}): {verdict}")
    code = {"identical": 0, "mismatch": EXIT_MISMATCH}.get(report["outcome"], EXIT_NOT_VERIFIED)
    return Result(report, "\n".join(lines), exit_code=code)


def _online_verify(client, args) -> Result:
    r = client.online_verify(args.group)
    text = (f"{args.group}: compared {r['regionsCompared']} region(s), skipped {r['regionsSkipped']} changed since "
            f"the recovery point; ")
    if r["regionsMarked"]:
        text += (f"{r['regionsMarked']} region(s) DIFFERED: the next sync resends them "
                 f"('mirrorctl sync {args.group}' now)")
    else:
        text += "no difference"
    if r["notVerified"]:
        text += f"; not verified: {', '.join(r['notVerified'])}"
    code = EXIT_MISMATCH if r["regionsMarked"] else (EXIT_NOT_VERIFIED if r["notVerified"] else 0)
    return Result(r, text, exit_code=code)


def _pair_line(p: dict) -> str:
    changed = " changed since the recovery point" if not p["reason"] or p["reason"].startswith("every region") else ""
    counts = (f"compared {p['regionsCompared']} of {p['regions']} region(s) ({output.size(p['bytesCompared'])}), "
              f"skipped {p['regionsSkipped']} region(s){changed} ({output.size(p['bytesSkipped'])})")
    if p["outcome"] == "mismatch":
        verdict = f"MISMATCH in {p['mismatchedBlocks']} block(s), first at byte {p['firstMismatchOffset']}"
    elif p["outcome"] == "notVerified":
        verdict = f"NOT VERIFIED: {p['reason']}"
    else:
        verdict = "identical"
    return f"{p['primary']} -> {p['secondary']}: {verdict}; {counts}"


def _age(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
