"""Bad mirrorctl input: one line with a stable code, no traceback, nothing changed.

Each input runs as ``mirrorctl --home H ...`` (its own process, or ``main`` in this
process with ``in_process``) against the running lab whose group ADV mirrors
SiteA/adv1 and adv2. A value the command cannot take survives when mirrorctl exits
1 with exactly one line ``mirrorctl: error: ... [code]`` on stderr, no traceback,
and the arrays' volumes, groups and link are what they were. Usage errors found by
argparse (a missing argument, an unknown command) are a separate kind: its usage
text and one error line, exit 2, no traceback, nothing changed.
"""
from __future__ import annotations

import json
import re
import time

from adversary.lab import GROUP, Lab
from adversary.outcome import Outcome

ONE_LINE = re.compile(r"^mirrorctl: error: .+ \[[A-Za-z][A-Za-z0-9_.-]*\]$")

USAGE = "usage"

# Found by the first full run (argparse usage text for "nan", mirrorctl's catch-all for an
# ftp:// URL instead of one line with a code) and fixed since: kept as regression cases.
FOUND_BY_THE_RUN = {
    ("group", "create", "GX5", "--primary-array", "SiteA", "--secondary-array", "SiteB", "--interval", "nan"),
    ("group", "create", "GX9", "--primary-array", "SiteA", "--secondary-array", "SiteB", "--reserved-alert", "nan"),
    ("--array-url", "ftp://127.0.0.1:1", "--password", "p", "status"),
}
KNOWN_FAILURES: set[tuple[str, ...]] = set()  # inputs still handled badly (none now)


def inputs(tmp: str) -> list[tuple[str, list[str]]]:
    """(kind, argv): kind is "value" (one line, a code) or "usage" (argparse). 89 of them."""
    v = [
        ["volume", "create", "SiteA/x1", "--capacity", "abc"],
        ["volume", "create", "SiteA/x2", "--capacity=-1GiB"],
        ["volume", "create", "SiteA/x3", "--capacity", "0"],
        ["volume", "create", "SiteA/x4", "--capacity", "1e999"],
        ["volume", "create", "SiteA/x5", "--capacity", "nan"],
        ["volume", "create", "SiteA/x6", "--capacity", "1PiB"],
        ["volume", "create", "SiteX/x7", "--capacity", "1MiB"],
        ["volume", "create", "SiteA/../x8", "--capacity", "1MiB"],
        ["volume", "create", "SiteA/" + "v" * 300, "--capacity", "1MiB"],
        ["volume", "create", "SiteA/adv1", "--capacity", "1MiB"],
        ["volume", "create", "SiteA/x9", "--capacity", "1MiB", "--pool", "nopool"],
        ["volume", "create", "SiteA/x10", "--capacity", "1MiB", "--segment-size", "3KiB"],
        ["volume", "create", "noslash", "--capacity", "1MiB"],
        ["volume", "show", "SiteA/nope"],
        ["volume", "show", "A/B/C"],
        ["volume", "show", "/"],
        ["volume", "resize", "SiteA/adv1", "--capacity", "1MiB"],
        ["volume", "resize", "SiteA/adv1", "--capacity", "nan"],
        ["volume", "delete", "SiteA/adv1"],
        ["volume", "delete", "SiteB/nope"],
        ["volume", "write", "SiteA/adv1", "--offset", "1TiB", "--file", f"{tmp}/small.bin"],
        ["volume", "write", "SiteA/adv1", "--offset=-4096", "--file", f"{tmp}/small.bin"],
        ["volume", "write", "SiteA/adv1", "--offset", "abc", "--file", f"{tmp}/small.bin"],
        ["volume", "write", "SiteA/adv1", "--offset", "0", "--file", f"{tmp}/missing.bin"],
        ["volume", "write", "SiteA/adv1", "--offset", "0", "--file", tmp],
        ["volume", "write", "SiteB/adv1_dr", "--offset", "0", "--file", f"{tmp}/small.bin"],
        ["volume", "read", "SiteA/adv1", "--offset", "0", "--length=-1"],
        ["volume", "read", "SiteA/adv1", "--offset", "16MiB", "--length", "1"],
        ["volume", "read", "SiteA/adv1", "--offset", "0", "--length", "1e30"],
        ["volume", "read", "SiteA/adv1", "--offset", "0", "--length", "1", "--file", f"{tmp}/no/such/out"],
        ["candidates", "SiteA/adv1", "--remote", "SiteB", "--reserved-percent", "nan"],
        ["candidates", "SiteA/adv1", "--remote", "SiteB", "--reserved-percent", "101"],
        ["candidates", "SiteA/adv1", "--remote", "SiteX"],
        ["candidates", "SiteA/nope", "--remote", "SiteB"],
        ["group", "create", "G" * 31, "--primary-array", "SiteA", "--secondary-array", "SiteB"],
        ["group", "create", "bad name!", "--primary-array", "SiteA", "--secondary-array", "SiteB"],
        ["group", "create", "GX1", "--primary-array", "SiteA", "--secondary-array", "SiteA"],
        ["group", "create", "GX2", "--primary-array", "SiteA", "--secondary-array", "SiteX"],
        ["group", "create", "GX3", "--primary-array", "SiteA", "--secondary-array", "SiteB", "--interval", "0"],
        ["group", "create", "GX4", "--primary-array", "SiteA", "--secondary-array", "SiteB", "--interval", "-5"],
        ["group", "create", "GX5", "--primary-array", "SiteA", "--secondary-array", "SiteB", "--interval", "nan"],
        ["group", "create", "GX6", "--primary-array", "SiteA", "--secondary-array", "SiteB",
         "--interval", "99999999999999999999"],
        ["group", "create", GROUP, "--primary-array", "SiteA", "--secondary-array", "SiteB"],
        ["group", "create", "GX7", "--primary-array", "SiteA", "--secondary-array", "SiteB",
         "--sync-alert", "30", "--recovery-point-alert", "40"],
        ["group", "create", "GX8", "--primary-array", "SiteA", "--secondary-array", "SiteB", "--reserved-alert", "0"],
        ["group", "create", "GX9", "--primary-array", "SiteA", "--secondary-array", "SiteB",
         "--reserved-alert", "nan"],
        ["group", "set", GROUP, "--interval", "0"],
        ["group", "set", GROUP, "--reserved-alert", "500"],
        ["group", "set", "NOPE", "--interval", "5"],
        ["group", "delete", GROUP],
        ["group", "show", "NOPE"],
        ["pair", "add", "--group", GROUP, "--primary", "SiteA/adv1", "--secondary", "SiteB/adv2_dr"],
        ["pair", "add", "--group", "NOPE", "--primary", "SiteA/logs", "--secondary", "SiteB/logs_dr"],
        ["pair", "add", "--group", GROUP, "--primary", "SiteA/db", "--secondary", "SiteB/files_dr"],
        ["pair", "add", "--group", GROUP, "--primary", "SiteA/logs", "--secondary", "SiteB/logs_dr",
         "--reserved-percent", "inf"],
        ["pair", "show", "SiteA/nope"],
        ["pair", "remove", "SiteA/logs"],
        ["sync", "NOPE"],
        ["suspend", "NOPE"],
        ["resume", GROUP],
        ["verify", "NOPE"],
        ["role", "promote", "NOPE", "--array", "SiteB"],
        ["role", "promote", GROUP, "--array", "SiteX"],
        ["role", "cancel", GROUP],
        ["guru", "fix", "no-such-problem", "--action", "x"],
        ["events", "--limit", "0"],
        ["events", "--limit", "999999999999999999999"],
        ["drill", "stop", "--group", GROUP],
        ["lab", "link", "set", "--bandwidth", "0"],
        ["lab", "link", "set", "--bandwidth=-5MiB"],
        ["lab", "link", "set", "--latency", "-1"],
        ["lab", "link", "set", "--latency", "soon"],
        ["lab", "controller", "reset", "SiteA/Z"],
        ["lab", "controller", "reset", "SiteX/A"],
        ["lab", "volume", "fail", "SiteA/nope"],
        ["array", "show", "SiteX"],
        ["array", "remote", "add", "SiteA", "--name", "SiteQ", "--address", "nohost", "--remote-password", "p"],
        ["array", "remote", "add", "SiteA", "--name", "SiteQ", "--address", "127.0.0.1:99999",
         "--remote-password", "p"],
        ["array", "remote", "remove", "SiteA", "SiteQ"],
        ["array", "check", f"{tmp}/no-such-array"],
        ["--array-url", "ftp://127.0.0.1:1", "--password", "p", "status"],
    ]
    u = [
        ["group", "create"],
        ["volume", "write"],
        ["frobnicate"],
        ["group", "create", "GU1", "--primary-array", "SiteA", "--secondary-array", "SiteB", "--manual",
         "--interval", "5"],
        ["volume", "create", "SiteA/u1", "--capacity", "1MiB", "--drive-type", "floppy"],
        ["sync"],
        ["role", "promote", GROUP],
        ["events", "--limit"],
    ]
    return [("value", a) for a in v] + [(USAGE, a) for a in u]


def _state(lab: Lab) -> str:
    """What bad input must not change: volumes, groups and their settings, the link."""
    vols = [{k: x.get(k) for k in ("array", "name", "capacity", "mirrorGroup", "role", "failed", "currentOwner")}
            for x in lab.ctl_json("volume", "list")]
    groups = [{k: g.get(k) for k in ("array", "name", "role", "syncMode", "syncIntervalMinutes", "priority",
                                     "resyncPolicy", "syncAlertMinutes", "recoveryPointAlertMinutes",
                                     "reservedAlertPercent")} | {"pairs": len(g.get("pairs") or [])}
              for g in lab.ctl_json("group", "list")]
    link = lab.ctl_json("lab", "link", "show")
    link = {k: link.get(k) for k in ("cut", "bandwidth", "latency")}
    return json.dumps([vols, groups, link], sort_keys=True, default=str)


def run(lab: Lab, count: int, in_process: bool = False, log=print, skip_known: bool = False,
        only: list[list[str]] | None = None) -> Outcome:
    out = Outcome("cli")
    t0 = time.monotonic()
    tmp = lab.home.parent / "cli-inputs"
    tmp.mkdir(exist_ok=True)
    (tmp / "small.bin").write_bytes(b"\x5a" * 8192)
    table = inputs(str(tmp))
    if skip_known:
        table = [t for t in table if tuple(t[1]) not in KNOWN_FAILURES]
    if only is not None:
        table = [t for t in table if t[1] in only]
    chosen = [table[round(i * len(table) / count) % len(table)] if count < len(table) else table[i % len(table)]
              for i in range(count)]
    before = _state(lab)
    kinds = {"value": 0, USAGE: 0}
    for kind, argv in chosen:
        out.tried += 1
        kinds[kind] += 1
        if in_process:
            code, _, err = lab.ctl(*argv)
        else:
            r = lab.mirrorctl(*argv)
            code, err = r.returncode, r.stderr.decode(errors="replace")
        lines = err.strip().splitlines()
        problems = []
        if "Traceback" in err:
            problems.append("a traceback")
        if kind == "value":
            if code != 1:
                problems.append(f"exit {code}")
            if len(lines) != 1 or not ONE_LINE.match(lines[0]):
                problems.append(f"{len(lines)} lines, not 'mirrorctl: error: ... [code]': {lines[-1:]}")
            elif lines[0].endswith("[internalError]"):
                problems.append("mirrorctl's catch-all for an error nobody handled")
        elif code != 2 or not lines or "error:" not in lines[-1]:
            problems.append(f"exit {code}, last line {lines[-1:]}")
        after = _state(lab)
        if after != before:
            problems.append("the arrays changed")
            before = after
        text = " ".join(argv)
        if problems:
            out.fail(f"mirrorctl {text}: {'; '.join(problems)}")
        else:
            out.survived += 1
        log(f"  mirrorctl {text[:70]}: {lines[-1][:110] if lines else '(nothing on stderr)'}"
            f"{'  FAILED: ' + '; '.join(problems) if problems else ''}")
    out.notes["kinds"] = kinds
    out.notes["distinctInputs"] = len({tuple(a) for _, a in chosen})
    out.seconds = time.monotonic() - t0
    return out
