#!/usr/bin/env python3
"""The adversarial run: faults and hostile input against a real lab, counted.

Sub-runs (each reports tried / survived / lost; see scripts/adversary/outcome.py):

  kill9     kill -9 of an array daemon mid-write, mid-transfer, mid-commit, then 'lab up'
  linkcuts  lab link cut / restore while a host writes over NBD and syncs run
  frames    malformed mirroring-channel frames, before and after login, at both arrays
  cli       bad mirrorctl input: one line, a stable code, no traceback, nothing changed

Everything runs against a lab started with 'mirrorctl lab up --home DIR' (a temporary
home unless --home is given), which is stopped at the end. Example:

  .venv/bin/python scripts/adversarial.py --kill-points 44 --link-cuts 85 --frames 75 --cli 78 --json

Exit status 0 when nothing was lost and every try survived, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adversary import cli_inputs, frames, kill9, linkcuts  # noqa: E402
from adversary.lab import Lab  # noqa: E402
from adversary.outcome import Outcome  # noqa: E402

RUNS = ("kill9", "linkcuts", "frames", "cli")


def run_all(home: Path, runs=RUNS, kill_points: int = 4, link_cuts: int = 6, frame_count: int = 20,
            cli_count: int = 20, seed: int = 1, cli_in_process: bool = False, capacity: int = 16 << 20,
            bandwidth: str = "24MiB", log=print) -> list[Outcome]:
    """Bring a lab up in ``home``, run the sub-runs, bring it down; the outcomes in order."""
    rng = random.Random(seed)
    lab = Lab(home, capacity=capacity, log=log)
    lab.init()
    outcomes: list[Outcome] = []
    try:
        lab.up()
        wlog = lab.setup_group()
        wlog.seed = seed
        lab.set_link("set", "--bandwidth", bandwidth)  # a sync lasts long enough to be hit in the middle
        if "kill9" in runs:
            log("kill9:")
            outcomes.append(kill9.run(lab, wlog, kill_points, rng, log=log))
            log(outcomes[-1].line())
        if "linkcuts" in runs:
            log("linkcuts:")
            outcomes.append(linkcuts.run(lab, wlog, link_cuts, rng, log=log))
            log(outcomes[-1].line())
        if "frames" in runs:
            log("frames:")
            outcomes.append(frames.run(lab, wlog, frame_count, rng, log=log))
            log(outcomes[-1].line())
        if "cli" in runs:
            log("cli:")
            outcomes.append(cli_inputs.run(lab, cli_count, in_process=cli_in_process, log=log))
            log(outcomes[-1].line())
    finally:
        lab.down()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", type=Path, help="lab home to create and use (default: a temporary directory)")
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated sub-runs (default: {','.join(RUNS)})")
    p.add_argument("--kill-points", type=int, default=44)
    p.add_argument("--link-cuts", type=int, default=85)
    p.add_argument("--frames", type=int, default=75)
    p.add_argument("--cli", type=int, default=78)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cli-in-process", action="store_true", help="run mirrorctl through main() in this process")
    p.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    args = p.parse_args(argv)
    runs = [r for r in args.runs.split(",") if r]
    unknown = set(runs) - set(RUNS)
    if unknown:
        p.error(f"unknown sub-runs: {', '.join(sorted(unknown))}")
    log = (lambda *a: print(*a, file=sys.stderr, flush=True))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="adversarial-") as tmp:
        home = args.home or Path(tmp) / "lab"
        outcomes = run_all(home, runs, args.kill_points, args.link_cuts, args.frames, args.cli, args.seed,
                           args.cli_in_process, log=log)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seed": args.seed,
              "seconds": round(time.monotonic() - started, 1), "runs": [o.as_dict() for o in outcomes]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for o in outcomes:
            print(o.line())
            for f in o.failures:
                print(f"    {f}")
    return 0 if all(o.lost == 0 and o.survived == o.tried for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
