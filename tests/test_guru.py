"""Recovery Guru: problems computed from real state, fixes through the same API, CLI."""
from __future__ import annotations

import json
import time

import pytest

from core.cli.main import main
from core.errors import MirrorError
from core.guru import GuruAction, Problem
from test_replication_support import manual_mirror


def wait_until(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def mirror(client):
    return manual_mirror(client, first_write=b"g" * 4096)


def test_healthy_mirror_has_no_problems(mirror):
    assert mirror.guru() == []


def test_communication_lost_problem_agrees_with_status_and_is_fixed(mirror):
    c = mirror
    c.lab_link(True)
    wait_until(lambda: c.group("G", "SiteA").status == "paused")
    (p,) = [p for p in c.guru() if p.id == "communication-lost:G"]
    assert isinstance(p, Problem) and p.severity == "critical" and p.steps[0].startswith("1.")
    assert p.actions == (GuruAction("restore-link", "Restore the lab link", False, "lab link restore"),)
    assert c.guru() == c.guru()  # stable ids and content for the same condition
    c.guru_fix("communication-lost:G", "restore-link")
    wait_until(lambda: c.group("G", "SiteA").status == "optimal")
    assert c.guru() == []
    with pytest.raises(MirrorError) as e:
        c.guru_fix("communication-lost:G", "restore-link")
    assert e.value.code == "guruProblemNotFound"


def test_unknown_action_is_refused(mirror):
    c = mirror
    c.controller_reset("SiteA", "A")
    with pytest.raises(MirrorError) as e:
        c.guru_fix("controller-offline:SiteA/A", "keep-SiteB")
    assert e.value.code == "guruActionNotFound"
    c.guru_fix("controller-offline:SiteA/A", "restore-controller")
    assert c.guru() == []


def test_cli_role_guru_and_lab_faults(lab_home, capsys):
    h = ["--home", str(lab_home)]
    assert main(h + ["lab", "up"]) == 0  # the arrays as daemons; mirrorctl talks to them over REST
    try:
        for argv in (["volume", "create", "SiteA/v", "--capacity", "16MiB"],
                     ["volume", "create", "SiteB/v_dr", "--capacity", "16MiB"],
                     ["group", "create", "G", "--primary-array", "SiteA", "--secondary-array", "SiteB", "--manual"],
                     ["pair", "add", "--group", "G", "--primary", "SiteA/v", "--secondary", "SiteB/v_dr"],
                     ["sync", "G", "--wait"]):
            assert main(h + argv) == 0, argv
        _cli_role_guru_and_lab_faults(h, capsys)
    finally:
        main(h + ["lab", "down"])


def _cli_role_guru_and_lab_faults(h, capsys):
    capsys.readouterr()
    assert main(h + ["--json", "guru"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(h + ["lab", "controller", "reset", "SiteA/B"]) == 0
    capsys.readouterr()
    assert main(h + ["--json", "guru"]) == 0
    ids = [p["id"] for p in json.loads(capsys.readouterr().out)]
    assert "controller-offline:SiteA/B" in ids
    assert main(h + ["guru", "fix", "controller-offline:SiteA/B", "--action", "restore-controller"]) == 0
    assert main(h + ["role", "promote", "G", "--array", "SiteB"]) == 0
    assert "SiteB is now primary" in capsys.readouterr().out
    assert main(h + ["role", "demote", "G", "--array", "SiteB"]) == 0
    assert main(h + ["role", "cancel", "G"]) == 1
    assert "arvmNoRoleChangePending" in capsys.readouterr().err
    assert main(h + ["lab", "volume", "fail", "SiteB/v_dr"]) == 0
    assert main(h + ["lab", "volume", "repair", "SiteB/v_dr"]) == 0
    assert main(h + ["lab", "array", "stop", "SiteB"]) == 0
    capsys.readouterr()
    assert main(h + ["role", "promote", "G", "--array", "SiteB"]) == 1
    assert "arrayUnreachable" in capsys.readouterr().err  # its daemon is really down
    assert main(h + ["lab", "array", "start", "SiteB"]) == 0
    assert main(h + ["--json", "group", "show", "G", "--array", "SiteB"]) == 0
