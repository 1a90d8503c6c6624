"""Mirror consistency groups and mirrored pairs over REST: what a Web Services script sees, on both arrays."""
from __future__ import annotations


from core.eligibility import reserved_bytes
from core.rest import models
from test_rest_support import make_mirror, rest, wait_for  # noqa: F401  (fixture)

RS = 64 * 1024


def sides(client, name):
    return {g.array: g for g in client.groups() if g.name == name}


def test_create_a_group_with_a_web_services_body(rest, client):
    g = rest.ok("POST", "async-mirrors", {
        "name": "G", "secondaryArrayId": "SiteB", "syncIntervalMinutes": 15, "manualSync": False,
        "recoveryWarnThresholdMinutes": 40, "repoUtilizationWarnThreshold": 70, "syncWarnThresholdMinutes": 20,
        "interfaceType": "iscsi", "priority": "high", "resyncPolicy": "manual"}, status=201)
    assert (g["label"], g["localRole"], g["remoteRole"], g["connectionType"], g["syncIntervalMinutes"]) == (
        "G", "primary", "secondary", "iscsi", 15)
    assert (g["groupState"], g["syncActivity"], g["roleChangeProgress"], g["orphanGroup"]) == ("optimal", "idle",
                                                                                                "none", False)
    assert (g["recoveryPointAgeAlertThresholdMinutes"], g["syncCompletionTimeAlertThresholdMinutes"],
            g["repositoryUtilizationWarnThreshold"]) == (40, 20, 70)
    assert g["remoteTargetName"] == "SiteB" and g["remoteTargetWwn"] == client.array("SiteB").wwn
    assert g["id"] == g["groupRef"] and len(g["id"]) == 40
    s = sides(client, "G")
    assert (s["SiteA"].role, s["SiteB"].role) == ("primary", "secondary")
    assert s["SiteB"].priority == "high" and s["SiteB"].resync_policy == "manual" and s["SiteB"].channel == "iscsi"
    assert models.group_from_ws(g) == s["SiteA"]
    assert rest.ok("GET", f"async-mirrors/{g['id']}") == rest.ok("GET", "async-mirrors/G")
    assert [x["label"] for x in rest.ok("GET", "async-mirrors")] == ["G"]


def test_the_secondary_array_may_be_named_by_its_wwn(rest, client):
    wwn = client.array("SiteB").wwn
    g = rest.ok("POST", "async-mirrors", {"name": "W", "secondaryArrayId": wwn.upper()}, status=201)
    assert g["remoteTargetName"] == "SiteB"
    r = rest.post("async-mirrors", {"name": "X", "secondaryArrayId": "0" * 32})
    assert r.status == 404 and r.error["retcode"] == "arvmRemoteArrayNotFound"


def test_update_settings_on_both_arrays_then_delete(rest, client):
    rest.ok("POST", "async-mirrors", {"name": "G", "secondaryArrayId": "SiteB"}, status=201)
    g = rest.ok("POST", "async-mirrors/G", {"syncIntervalMinutes": 0, "syncWarnThresholdMinutes": 5,
                                            "recoveryWarnThresholdMinutes": 12, "priority": "lowest"})
    assert (g["syncIntervalMinutes"], g["scheduledSyncIntervalMinutes"], g["syncMode"]) == (0, 10, "manual")
    for side in sides(client, "G").values():
        assert (side.sync_mode, side.sync_alert_minutes, side.recovery_point_alert_minutes, side.priority) == (
            "manual", 5, 12, "lowest")
    r = rest.post("async-mirrors/G", {"syncWarnThresholdMinutes": 30})
    assert r.status == 422 and r.error["retcode"] == "arvmInvalidRecoveryPointThreshold"
    assert rest.delete("async-mirrors/G").status == 204
    assert sides(client, "G") == {} and rest.get("async-mirrors/G").status == 404


def test_pairs_sync_bytes_and_progress(rest, client):
    client.create_volume("SiteA/v", "4MiB")
    client.create_volume("SiteB/v_dr", "4MiB")
    g = rest.ok("POST", "async-mirrors", {"name": "G", "secondaryArrayId": "SiteB", "manualSync": True}, status=201)
    rest.request("PUT", "volumes/v/data?offset=65536", raw=b"first" * 1000)
    primary = rest.ok("GET", "volumes/v")
    secondary_ref = models.volume_ref("SiteB", "v_dr")
    p = rest.ok("POST", f"async-mirrors/{g['id']}/pairs", {"primaryVolumeRef": primary["id"],
                                                           "secondaryVolumeRef": secondary_ref,
                                                           "percentCapacity": 30, "secondaryPercentCapacity": 40},
                status=201)
    assert (p["localVolumeName"], p["remoteVolumeName"], p["remoteVolume"], p["localVolume"]) == (
        "v", "v_dr", secondary_ref, primary["id"])
    assert p["mirrorGroup"] == g["id"] and p["totalSizeInBytes"] == str(4 << 20)
    stats = rest.ok("POST", "async-mirrors/G/sync?wait=true", {})
    assert stats["outcome"] == "committed" and models.stats_from_ws(stats).recovery_point_time
    assert client.host_read("SiteB/v_dr", 65536, 5000) == b"first" * 1000
    rest.request("PUT", "volumes/v/data?offset=0", raw=b"second")
    assert rest.post("async-mirrors/G/sync", {}).status == 204
    wait_for(lambda: client.host_read("SiteB/v_dr", 0, 6) == b"second", what="the second sync")
    pair = wait_for(lambda: (x := rest.ok("GET", "async-mirrors/G/pairs/v"))["memberState"] == "optimal" and x)
    assert pair == rest.ok("GET", f"async-mirrors/G/pairs/{p['id']}")
    assert pair["lastRecoveryPointTime"] and pair["repositoryFull"] is False
    assert [x["id"] for x in rest.ok("GET", "async-mirrors/G/pairs")] == [p["id"]]
    progress = rest.ok("GET", "async-mirrors/G/progress")
    assert progress["groupPercentComplete"] == 100 and progress["memberProgress"][0]["memberRef"] == p["id"]
    assert [x["groupRef"] for x in rest.ok("GET", "async-mirrors/progress")] == [g["id"]]
    assert client.pair("SiteB/v_dr").reserved_capacity.capacity == reserved_bytes(4 << 20, 40)
    assert client.pair("SiteA/v").reserved_capacity.capacity == reserved_bytes(4 << 20, 30)


def test_repository_utilization_and_growing_it(rest, client):
    make_mirror(client, rest)
    (u,) = rest.ok("GET", "async-mirrors/pairs/repository-utilization")
    rc = client.pair("SiteA/v").reserved_capacity
    assert u["mirrorRef"] == models.pair_ref("SiteA", "v")
    assert (int(u["pitDataBytes"]), int(u["deltaLogBytes"]), int(u["bytesAvailable"])) == (
        rc.pit_bytes, rc.log_bytes, rc.available)
    assert rest.ok("GET", f"async-mirrors/pairs/{u['mirrorRef']}/repository-utilization")["capacity"] == rc.capacity
    grown = rest.ok("POST", "async-mirrors/pairs/v/reserved-capacity", {"percent": 50})
    assert grown["capacity"] == client.pair("SiteA/v").reserved_capacity.capacity == 2 << 20


def test_remove_a_pair_on_both_arrays(rest, client):
    make_mirror(client, rest)
    assert rest.delete(f"async-mirrors/G/pairs/{models.pair_ref('SiteA', 'v')}").status == 204
    assert client.pairs() == [] and rest.get("async-mirrors/G/pairs/v").status == 404


def test_role_change_both_ways(rest, client):
    make_mirror(client, rest)
    r = rest.post("async-mirrors/G/role", {"role": "secondary", "noSync": True})
    assert r.status == 422 and r.error["retcode"] == "notSupported"
    g = rest.ok("POST", "async-mirrors/G/role", {"role": "secondary"})
    assert g["localRole"] == "secondary" or g["roleChangeProgress"] in ("pending", "inProgress")
    wait_for(lambda: rest.ok("GET", "async-mirrors/G")["localRole"] == "secondary", what="SiteA secondary")
    assert client.group("G", "SiteB").role == "primary"
    r = rest.post("async-mirrors/G/role", {"role": "secondary"})
    assert r.status == 409 and r.error["retcode"] == "arvmGroupAlreadySecondary"
    rest.ok("POST", "async-mirrors/G/role", {"role": "primary", "force": False})
    wait_for(lambda: rest.ok("GET", "async-mirrors/G")["localRole"] == "primary", what="SiteA primary again")
    r = rest.delete("async-mirrors/G/role")
    assert r.status == 409 and r.error["retcode"] == "arvmNoRoleChangePending"


def test_suspend_resume_and_the_recovery_point_option(rest, client):
    make_mirror(client, rest)
    assert rest.post("async-mirrors/G/suspend").status == 204
    g = rest.ok("GET", "async-mirrors/G")
    assert (g["syncActivity"], g["status"]) == ("userSuspended", "user_suspended")
    assert rest.post("async-mirrors/G/resume?deleteRecoveryPointIfNecessary=false").status == 204
    assert rest.ok("GET", "async-mirrors/G")["syncActivity"] != "userSuspended"
    wait_for(lambda: client.group("G").status == "optimal", what="resumed group idle")
    assert rest.post("async-mirrors/G/suspend").status == 204
    before = len(client.sync_history("G"))
    assert rest.post("async-mirrors/G/resume?deleteRecoveryPointIfNecessary=true").status == 204
    wait_for(lambda: len(client.sync_history("G")) > before and client.group("G").status == "optimal",
             what="the resync after resume")
    assert rest.post("async-mirrors/G/sync", {"deleteRecoveryPointIfNecessary": True}).status == 204
    wait_for(lambda: client.group("G").status == "optimal", what="synced group idle")


def test_communication_test_and_remote_arrays(rest, client):
    rest.ok("POST", "async-mirrors", {"name": "G", "secondaryArrayId": "SiteB"}, status=201)
    for kind in ("basicConnectivityTest", "linkLatencyTest", "linkBandwidthTest"):
        t = rest.ok("POST", "async-mirrors/G/test", {"requestedTestType": kind})
        assert (t["testResult"], t["connected"], t["remoteTargetName"]) == ("passed", True, "SiteB")
    assert t["latencyMilliseconds"] > 0 and t["bandwidthMiBPerSecond"] > 0
    r = rest.post("async-mirrors/G/test", {"requestedTestType": "ping"})
    assert r.status == 422 and "requestedTestType" in r.error["errorMessage"]
    (b,) = rest.ok("GET", "async-mirrors/arvm-arrays")
    assert (b["name"], b["wwn"], b["reachable"], b["eligible"]) == ("SiteB", client.array("SiteB").wwn, True, True)
    assert set(b["commonChannelTypes"]) == {"fc", "iscsi"}


def test_a_pair_made_while_the_link_is_cut_is_incomplete(rest, client):
    client.create_volume("SiteA/v", "4MiB")
    client.create_volume("SiteB/v_dr", "4MiB")
    rest.ok("POST", "async-mirrors", {"name": "G", "secondaryArrayId": "SiteB", "manualSync": True}, status=201)
    client.lab_link(True)
    r = rest.post("async-mirrors/G/test", {"requestedTestType": "basicConnectivityTest"})
    assert r.json()["testResult"] == "failed"
    p = rest.ok("POST", "async-mirrors/G/pairs", {"primaryVolumeRef": "v", "secondaryVolumeRef": "v_dr"}, status=201)
    assert p["memberState"] == "incomplete"
    assert [x["localVolumeName"] for x in rest.ok("GET", "async-mirrors/incomplete-pairs")] == ["v"]
    (b,) = rest.ok("GET", "async-mirrors/arvm-arrays")
    assert b["reachable"] is False and b["codes"] == ["arvmRemoteArrayUnreachable"]
    g = rest.ok("GET", "async-mirrors/G")
    assert (g["syncActivity"], g["groupState"]) == ("paused", "optimal")
    r = rest.post("async-mirrors", {"name": "H", "secondaryArrayId": "SiteB"})
    assert r.status == 424 and r.error["retcode"] == "arvmRemoteArrayUnreachable"
