"""A DR drill asked of the primary's array says where it runs (the secondary's), in Web Services' error shape."""
from __future__ import annotations

from test_rest_support import rest  # noqa: F401  (fixture)


def test_drill_asked_of_the_primary_names_the_secondary_array(client, rest):  # noqa: F811
    client.create_volume("SiteA/v", "4MiB")
    client.create_volume("SiteB/v_dr", "4MiB")
    client.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    client.add_pair("G", "SiteA/v", "SiteB/v_dr")
    client.sync_now("G", wait=True, after_running=True)
    r = rest.post("async-mirrors/G/drill", {})
    assert r.status >= 400
    assert r.error["retcode"] == "drillOnSecondary" and "secondary array SiteB" in r.error["errorMessage"]
    assert client.drill_start("G")["array"] == "SiteB"  # the fleet asks the right array
    client.drill_stop("G")


def test_a_running_drill_comes_back_when_its_array_restarts(client, daemon_lab):
    """The drill is the array's own record (its data directory): a restarted SiteB serves it again."""
    client.create_volume("SiteA/v", "4MiB")
    client.create_volume("SiteB/v_dr", "4MiB")
    client.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    client.add_pair("G", "SiteA/v", "SiteB/v_dr")
    client.sync_now("G", wait=True, after_running=True)
    started = client.drill_start("G")
    assert client.drills_running() == [started] and client.lab_faults()["drills"] == ["G"]
    client.array_stop("SiteB")
    client.array_start("SiteB")
    (again,) = client.drills_running()  # SiteB lists it again, over REST
    assert again["group"] == "G" and again["array"] == "SiteB" and list(again["exports"]) == ["SiteB/v_dr-drill"]
    assert again["recoveryPoint"] == started["recoveryPoint"]
    assert daemon_lab.daemon("SiteB").engine.drills.clone("SiteB", "v_dr-drill") is not None
    client.drill_stop("G")  # and it stops for good: the next start has no drill
    assert client.drills_running() == [] and client.lab_faults()["drills"] == []
    client.array_stop("SiteB")
    client.array_start("SiteB")
    assert client.drills_running() == []
