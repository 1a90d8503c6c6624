"""Project extensions over REST: Recovery Guru, candidates, verify, history, drills, lab faults, workload, remotes."""
from __future__ import annotations

import pytest

from core.rest import models
from test_rest_support import make_mirror, rest, rest_of, wait_for  # noqa: F401  (fixture)


def problem_ids(rest) -> set[str]:
    return {p["id"] for p in rest.ok("GET", "guru")}


def test_a_failed_volume_is_fixed_through_the_recovery_guru(rest, client):
    make_mirror(client, rest)
    assert rest.post("lab/volumes/v/fail").status == 204
    assert client.volume("SiteA/v").failed and client.group("G").status == "system_suspended"
    g = rest.ok("GET", "async-mirrors/G")
    assert (g["groupState"], g["syncActivity"]) == ("degraded", "internallySuspended")
    assert rest.ok("GET", "async-mirrors/G/pairs/v")["memberState"] == "failed"
    problems = rest.ok("GET", "guru")
    failed = next(p for p in problems if p["id"] == "failed-pair:SiteA/v")
    assert models.problem_from_ws(failed) in client.guru()
    assert "repair-volume" in [a["id"] for a in failed["actions"]]
    done = rest.ok("POST", "guru/failed-pair:SiteA/v/actions/repair-volume")
    assert done["done"] is True and not client.volume("SiteA/v").failed
    assert "failed-pair:SiteA/v" not in problem_ids(rest)
    r = rest.post("guru/failed-pair:SiteA/v/actions/repair-volume")
    assert r.status == 404 and r.error["retcode"] == "guruProblemNotFound"


def test_lab_volume_fail_and_repair(rest, client):
    client.create_volume("SiteA/f", "1MiB")
    assert rest.post("lab/volumes/f/fail").status == 204
    assert rest.ok("GET", "volumes/f")["status"] == "failed" and rest.get("volumes/f/data?length=1").status == 409
    assert rest.post("lab/volumes/f/repair").status == 204
    assert rest.ok("GET", "volumes/f")["status"] == "optimal" and rest.get("volumes/f/data?length=1").body == b"\0"
    assert rest.post("lab/volumes/f/explode").status == 404


def test_candidates_say_which_remote_volumes_fit_and_why_not(rest, client):
    found = rest.ok("GET", "candidates?primaryVolume=db&remoteArray=SiteB&channel=fc&reservedPercent=20")
    by_name = {c["label"]: c for c in found}
    assert by_name["db_dr"]["eligible"] is True
    assert by_name["files_dr"]["eligible"] is False and by_name["files_dr"]["reasons"]
    assert [models.candidate_from_ws(c) for c in found] == client.candidates("SiteA/db", "SiteB", "fc", 20)
    r = rest.get("candidates?remoteArray=SiteB")
    assert r.status == 422 and "primaryVolume" in r.error["errorMessage"]


def test_verify_and_sync_history(rest, client):
    make_mirror(client, rest)
    report = rest.ok("POST", "async-mirrors/G/verify")
    assert report["identical"] is True and report["pairs"][0]["secondary"] == "SiteB/v_dr"
    history = rest.ok("GET", "async-mirrors/G/sync-history?limit=10")
    assert [models.stats_from_ws(s) for s in history] == client.sync_history("G")


def test_dr_drill_start_and_stop(rest, client):
    make_mirror(client, rest)
    siteb = rest_of(client, "SiteB")  # a drill exposes the secondary's recovery point: asked of its array
    drill = siteb.ok("POST", "async-mirrors/G/drill", status=201)
    assert drill["array"] == "SiteB" and "SiteB/v_dr-drill" in drill["exports"]
    assert siteb.delete("async-mirrors/G/drill").status == 204
    r = siteb.delete("async-mirrors/G/drill")
    assert r.status == 409 and r.error["retcode"] == "drillNotRunning"


def test_controller_reset_moves_ownership_and_restore_brings_it_back(rest, client):
    client.create_volume("SiteA/a1", "1MiB", owner="A")
    assert rest.post("lab/controllers/A/reset").status == 204
    assert rest.ok("GET", "volumes/a1")["currentManager"] == models.controller_ref("B")
    assert rest.post("lab/controllers/A/restore").status == 204
    assert rest.ok("GET", "volumes/a1")["currentManager"] == models.controller_ref("A")
    assert rest.post("lab/controllers/C/reset").status == 404


def test_host_workload_runs_and_stops(rest, client):
    client.create_volume("SiteA/w", "4MiB")
    assert rest.ok("GET", "lab/workload") == {"running": False}
    started = rest.ok("POST", "lab/workload", {"volumes": ["w"], "rateMib": 20, "pattern": "sequential"}, status=201)
    assert started["running"] is True and started["volumes"] == ["SiteA/w"]
    wait_for(lambda: rest.ok("GET", "lab/workload")["bytesWritten"] > 0, what="workload writes")
    stopped = rest.ok("DELETE", "lab/workload")
    assert stopped["running"] is False and stopped["bytesWritten"] > 0
    assert rest.ok("GET", "lab/workload")["running"] is False


def test_long_running_operations_are_this_arrays(rest, client):
    ops = rest.ok("GET", "long-running-operations")
    assert isinstance(ops, list) and all(op["array"] == "SiteA" for op in ops)


def test_remote_array_list(rest, client):
    entry = rest.ok("POST", "remote-arrays", {"name": "SiteC", "addresses": ["127.0.0.1:9"], "password": "pw"},
                    status=201)
    assert entry["name"] == "SiteC"
    listed = {r["name"]: r for r in rest.ok("GET", "remote-arrays")}
    assert listed["SiteC"]["addresses"] == ["127.0.0.1:9"] and "password" not in listed["SiteC"]
    r = rest.post("remote-arrays", {"name": "SiteC", "addresses": ["nowhere"], "password": "pw"})
    assert r.status == 422 and r.error["retcode"] == "invalidChannelAddress"
    assert rest.delete("remote-arrays/SiteC").status == 204
    assert "SiteC" not in {r["name"] for r in rest.ok("GET", "remote-arrays")}
    assert rest.delete("remote-arrays/SiteC").status == 404
