"""Foundation: mirrorctl as a user runs it (README): lab init, lab up, group create, pair add, show --json, errors.

Every command but ``lab`` talks to the lab's array daemons over REST, so each test
brings the lab up after creating it, and takes it down at the end.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.cli.main import main
from core.units import GiB
from test_replication_support import wait_for


def run(capsys, home, *args, json_out=True):
    argv = ["--home", str(home)] + (["--json"] if json_out else []) + list(args)
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys, home, *args):
    code, out, err = run(capsys, home, *args)
    assert code == 0, err
    assert "Traceback" not in err
    return json.loads(out)


def assert_one_line_error(code, out, err, retcode, *words):
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mirrorctl: error: ")
    assert f"[{retcode}]" in lines[0]
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0]


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "lab"
    yield home
    if (home / "arrays").exists():
        main(["--home", str(home), "lab", "down"])


def init_up(capsys, home):
    ok(capsys, home, "lab", "init")
    ok(capsys, home, "lab", "up")


def test_readme_walkthrough(capsys, home):
    data = ok(capsys, home, "lab", "init")
    assert data == {"home": str(home), "created": True}
    up = ok(capsys, home, "lab", "up")
    assert [a["name"] for a in up["arrays"] if a["running"]] == ["SiteA", "SiteB"]
    g = ok(capsys, home, "group", "create", "g1", "--primary-array", "SiteA", "--secondary-array", "SiteB",
           "--interval", "5", "--priority", "high")
    assert g["name"] == "g1" and g["role"] == "primary" and g["syncIntervalMinutes"] == 5
    p = ok(capsys, home, "pair", "add", "--group", "g1", "--primary", "SiteA/db", "--secondary", "SiteB/db_dr")
    assert p["localVolume"] == "db" and p["remoteVolume"] == "db_dr" and p["role"] == "primary"
    shown = ok(capsys, home, "group", "show", "g1")
    assert shown["name"] == "g1" and shown["array"] == "SiteA" and shown["remoteArray"] == "SiteB"
    assert shown["priority"] == "high" and shown["syncIntervalMinutes"] == 5
    assert [x["localVolume"] for x in shown["pairs"]] == ["db"]
    rc = shown["pairs"][0]["reservedCapacity"]
    assert rc["capacity"] == 858996736 and rc["driveType"] == "nvme"
    assert {"pitBytes", "logBytes"} <= set(rc)
    sec = ok(capsys, home, "group", "show", "g1", "--array", "SiteB")
    assert sec["role"] == "secondary" and [x["localVolume"] for x in sec["pairs"]] == ["db_dr"]
    listed = ok(capsys, home, "group", "list")
    assert sorted((x["array"], x["role"]) for x in listed) == [("SiteA", "primary"), ("SiteB", "secondary")]


def test_group_show_json_reports_reserved_capacity_utilisation(capsys, home):
    init_up(capsys, home)
    ok(capsys, home, "group", "create", "g1", "--primary-array", "SiteA", "--secondary-array", "SiteB")
    ok(capsys, home, "pair", "add", "--group", "g1", "--primary", "SiteA/db", "--secondary", "SiteB/db_dr")
    rc = ok(capsys, home, "group", "show", "g1")["pairs"][0]["reservedCapacity"]
    assert {"usedBytes", "availableBytes", "utilizationPercent"} <= set(rc)


def test_human_output(capsys, home):
    init_up(capsys, home)
    code, out, err = run(capsys, home, "group", "create", "g1", "--primary-array", "SiteA", "--secondary-array",
                         "SiteB", json_out=False)
    assert code == 0 and "Created mirror consistency group g1" in out and "every 10 min" in out


def test_lab_init_twice(capsys, home):
    ok(capsys, home, "lab", "init")
    assert ok(capsys, home, "lab", "init", "--if-missing") == {"home": str(home), "created": False}
    code, out, err = run(capsys, home, "lab", "init")
    assert_one_line_error(code, out, err, "labExists", "already exists", "--home")


def test_error_exits_1_with_one_line(capsys, home):
    init_up(capsys, home)
    ok(capsys, home, "group", "create", "g1", "--primary-array", "SiteA", "--secondary-array", "SiteB")
    code, out, err = run(capsys, home, "group", "create", "g1", "--primary-array", "SiteA", "--secondary-array",
                         "SiteB")
    assert_one_line_error(code, out, err, "arvmGroupUserLabelExists", "'g1'", "another name")
    assert out == ""
    code, out, err = run(capsys, home, "group", "create", "g2", "--primary-array", "SiteA", "--secondary-array",
                         "SiteB", "--interval", "0")
    assert_one_line_error(code, out, err, "arvmInvalidSyncInterval")
    code, out, err = run(capsys, home, "volume", "create", "SiteA/x", "--capacity", "10XB")
    assert_one_line_error(code, out, err, "invalidInput", "10XB", "10GiB")
    code, out, err = run(capsys, home, "pair", "add", "--group", "g1", "--primary", "SiteA/db",
                         "--secondary", "SiteB/logs_dr")
    assert_one_line_error(code, out, err, "arvmSecondaryCapacityTooSmall")
    # nothing was created by the refusals
    assert [g["name"] for g in ok(capsys, home, "group", "list")] == ["g1", "g1"]


def test_no_lab_is_a_clear_error(capsys, home):
    code, out, err = run(capsys, home, "volume", "list")
    assert_one_line_error(code, out, err, "labNotFound", "mirrorctl lab init")


def test_lab_not_up_is_a_clear_error(capsys, home):
    ok(capsys, home, "lab", "init")
    code, out, err = run(capsys, home, "group", "list")
    assert_one_line_error(code, out, err, "labNotUp", "mirrorctl lab up")


def test_volume_show_json_includes_backing_file(capsys, home):
    init_up(capsys, home)
    v = ok(capsys, home, "volume", "show", "SiteA/db")
    assert v["name"] == "db" and v["capacity"] == 4 * GiB
    assert v["path"] and os.path.isfile(v["path"])
    assert os.stat(v["path"]).st_size == 4 * GiB
    created = ok(capsys, home, "volume", "create", "SiteB/new", "--capacity", "512MiB", "--drive-type", "sas")
    assert os.stat(created["path"]).st_size == 512 * 1024 * 1024 and os.stat(created["path"]).st_blocks == 0


def test_candidates_json(capsys, home):
    init_up(capsys, home)
    cands = {c["volume"]["name"]: c for c in ok(capsys, home, "candidates", "SiteA/db", "--remote", "SiteB")}
    assert cands["db_dr"]["eligible"] is True and cands["db_dr"]["reasons"] == []
    assert cands["logs_dr"]["codes"] == ["arvmSecondaryCapacityTooSmall"]


def _mirrorctl(home, *args):
    exe = os.path.join(os.path.dirname(sys.executable), "mirrorctl")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "core.cli.main"]
    return subprocess.run(cmd + ["--home", str(home)] + list(args), capture_output=True, text=True, timeout=60)


def test_real_process_error_is_one_line(home):
    """What a user sees in a terminal: exit code 1, one line on stderr, no traceback."""
    assert _mirrorctl(home, "lab", "init").returncode == 0
    assert _mirrorctl(home, "lab", "up").returncode == 0
    r = _mirrorctl(home, "group", "create", "g1", "--primary-array", "SiteA", "--secondary-array", "SiteA")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "mirrorctl: error: the secondary array must be another array than the primary; pick the remote array "
        "[arvmInvalidRemoteArray]"]


def test_real_process_error_with_a_mirrored_pair_is_one_line(home):
    """With a pair (the data path starts syncing it), an error still prints one line and no traceback."""
    assert _mirrorctl(home, "lab", "init").returncode == 0
    assert _mirrorctl(home, "lab", "up").returncode == 0
    assert _mirrorctl(home, "group", "create", "g1", "--primary-array", "SiteA", "--secondary-array",
                      "SiteB").returncode == 0
    assert _mirrorctl(home, "pair", "add", "--group", "g1", "--primary", "SiteA/db", "--secondary",
                      "SiteB/db_dr").returncode == 0
    r = _mirrorctl(home, "volume", "delete", "SiteA/db")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "[arvmVolumeAlreadyInMirrorRelationship]" in lines[0], r.stderr


def test_readme_dr_walkthrough_against_the_daemons(capsys, home, tmp_path):
    """The README's walk-through, command by command, against the lab's array daemons."""
    init_up(capsys, home)
    ok(capsys, home, "group", "create", "G1", "--primary-array", "SiteA", "--secondary-array", "SiteB",
       "--interval", "10", "--priority", "high")
    ok(capsys, home, "pair", "add", "--group", "G1", "--primary", "SiteA/db", "--secondary", "SiteB/db_dr")
    data = tmp_path / "some.bin"
    data.write_bytes(os.urandom(300_000))
    ok(capsys, home, "volume", "write", "SiteA/db", "--offset", "1MiB", "--file", str(data))
    started = run(capsys, home, "sync", "G1")  # returns once started (or says a sync already runs)
    assert started[0] == 0 and json.loads(started[1]) == {"group": "G1", "started": True} \
        or "arvmManualSyncAlreadyInProgress" in started[2]
    stats = ok(capsys, home, "sync", "G1", "--wait")  # the write may have gone with the initial sync already
    assert stats["outcome"] == "committed"
    copy = tmp_path / "copy.bin"
    ok(capsys, home, "volume", "read", "SiteB/db_dr", "--offset", "1MiB", "--length", "300000", "--file", str(copy))
    assert copy.read_bytes() == data.read_bytes()
    assert ok(capsys, home, "verify", "G1")["identical"] is True
    online = ok(capsys, home, "verify", "G1", "--online")
    assert online["regionsMarked"] == 0 and online["regionsCompared"] > 0

    ok(capsys, home, "lab", "link", "cut")
    wait_for(lambda: {g["status"] for g in ok(capsys, home, "group", "list")} == {"paused"})
    ok(capsys, home, "role", "promote", "G1", "--array", "SiteB", "--force")
    dr_write = tmp_path / "dr.bin"
    dr_write.write_bytes(b"written at the DR site while apart" * 100)
    ok(capsys, home, "volume", "write", "SiteB/db_dr", "--offset", "8MiB", "--file", str(dr_write))
    ok(capsys, home, "lab", "link", "restore")
    wait_for(lambda: {g["status"] for g in ok(capsys, home, "group", "list")} == {"role_conflict"}, 10,
             "a role conflict on both sides")
    problem = next(p for p in ok(capsys, home, "guru") if p["id"] == "role-conflict:G1")
    assert {a["id"] for a in problem["actions"]} == {"keep-SiteA", "keep-SiteB"}
    ok(capsys, home, "guru", "fix", "role-conflict:G1", "--action", "keep-SiteA")
    wait_for(lambda: sorted((g["array"], g["role"], g["status"]) for g in ok(capsys, home, "group", "list"))
             == [("SiteA", "primary", "optimal"), ("SiteB", "secondary", "optimal")], timeout=20)
    # SiteB's writes made while apart were kept before its resync: restore them into a new volume
    (kept,) = ok(capsys, home, "preserved", "list")
    assert (kept["array"], kept["volume"], kept["group"]) == ("SiteB", "db_dr", "G1")
    ok(capsys, home, "preserved", "restore", kept["id"], "--volume", "db_rescued")
    rescued = tmp_path / "rescued.bin"
    ok(capsys, home, "volume", "read", "SiteB/db_rescued", "--offset", "8MiB",
       "--length", str(len(dr_write.read_bytes())), "--file", str(rescued))
    assert rescued.read_bytes() == dr_write.read_bytes()
    ok(capsys, home, "preserved", "delete", kept["id"])
    assert ok(capsys, home, "preserved", "list") == []

    drill = ok(capsys, home, "drill", "start", "--group", "G1")
    assert drill["array"] == "SiteB" and "SiteB/db_dr-drill" in drill["exports"]
    ok(capsys, home, "drill", "stop", "--group", "G1")
    status = ok(capsys, home, "lab", "status")
    assert status["up"] and all(a["running"] for a in status["arrays"])


def test_array_iscsi_shows_sets_and_refuses_in_one_line(capsys, home):
    init_up(capsys, home)
    assert ok(capsys, home, "array", "iscsi", "SiteA") == {
        "vlan": None, "listenPort": 3260, "jumboFrames": False, "ethernetPriority": None}
    assert_one_line_error(*run(capsys, home, "array", "iscsi", "SiteA", "--vlan", "5000"),
                          "invalidIscsiSetting", "VLAN 5000", "1 to 4094")
    assert_one_line_error(*run(capsys, home, "array", "iscsi", "SiteA", "--ethernet-priority", "high"),
                          "invalidInput", "Ethernet priority 'high'")
    set_ = ok(capsys, home, "array", "iscsi", "SiteA", "--vlan", "10", "--jumbo-frames", "on")
    assert set_["vlan"] == 10 and set_["jumboFrames"] is True
    code, out, _ = run(capsys, home, "array", "iscsi", "SiteA", "--vlan", "none", json_out=False)
    assert code == 0 and "VLAN: none" in out and "jumbo frames: on" in out
    code, out, _ = run(capsys, home, "array", "show", "SiteA", json_out=False)
    assert code == 0 and "iSCSI settings  VLAN none, listening port 3260, jumbo frames on" in out
