"""The storage system, its pools and volumes over REST, and host I/O through ``volumes/{vol}/data``."""
from __future__ import annotations

import os

from core.rest import models
from test_rest_support import API, make_mirror, rest, wait_for  # noqa: F401  (fixture)

MiB = 1 << 20


def test_the_system_answers_to_1_its_name_and_its_wwn(rest, client):
    wwn = client.array("SiteA").wwn
    for system_id in ("1", "SiteA", wwn, wwn.upper()):
        a = rest.ok("GET", f"/devmgr/v2/storage-systems/{system_id}")
        assert (a["id"], a["name"], a["wwn"], a["status"], a["fwVersion"]) == ("1", "SiteA", wwn, "optimal",
                                                                                 "08.74.00.01")
        assert models.array_from_ws(a) == client.array("SiteA")
    assert rest.ok("GET", "/devmgr/v2/storage-systems")[0]["wwn"] == wwn
    r = rest.get("/devmgr/v2/storage-systems/SiteB/volumes")
    assert r.status == 404 and r.error["retcode"] == "storageSystemNotFound" and "SiteA" in r.error["errorMessage"]


def test_storage_pools_by_list_id_and_name(rest, client):
    pools = rest.ok("GET", "storage-pools")
    assert {p["name"]: p["driveMediaType"] for p in pools} == {"nvme_pool": "ssd", "sas_pool": "hdd"}
    nvme = next(p for p in pools if p["name"] == "nvme_pool")
    assert int(nvme["freeSpace"]) == nvme["free"] and nvme["id"] == nvme["volumeGroupRef"]
    assert rest.ok("GET", f"storage-pools/{nvme['id']}")["name"] == "nvme_pool"
    assert rest.ok("GET", "storage-pools/sas_pool")["driveType"] == "sas"
    assert rest.get("storage-pools/ssd_pool").error["retcode"] == "storagePoolNotFound"


def test_volume_life_cycle_with_web_services_bodies(rest, client):
    pool = next(p for p in rest.ok("GET", "storage-pools") if p["name"] == "sas_pool")
    v = rest.ok("POST", "volumes", {"poolId": pool["id"], "name": "web", "size": 8, "sizeUnit": "mb", "segSize": 64,
                                    "dataAssuranceEnabled": True, "raidLevel": "raid5", "owner": "B"}, status=201)
    assert (v["name"], v["capacity"], v["segmentSize"], v["raidLevel"], v["pool"]) == ("web", str(8 * MiB), 65536,
                                                                                     "raid5", "sas_pool")
    assert v["dataAssurance"] is True and v["currentManager"].endswith("02") and v["volumeGroupRef"] == pool["id"]
    assert models.volume_from_ws(v) == client.volume("SiteA/web")
    by_id = rest.ok("GET", f"volumes/{v['id']}")
    assert by_id == rest.ok("GET", "volumes/web")
    assert "web" in [x["name"] for x in rest.ok("GET", "volumes")]
    grown = rest.ok("POST", "volumes/web/expand", {"expansionSize": 12, "sizeUnit": "mb"})
    assert grown["capacity"] == str(12 * MiB) and client.volume("SiteA/web").capacity == 12 * MiB
    r = rest.post("volumes/web/expand", {"expansionSize": 4, "sizeUnit": "mb"})
    assert r.status == 422 and r.error["retcode"] == "invalidCapacity"  # volumes only grow
    assert rest.post("volumes", {"name": "web", "size": 1, "sizeUnit": "mb"}).error["retcode"] == "volumeLabelExists"
    assert rest.delete(f"volumes/{v['id']}").status == 204
    assert rest.get("volumes/web").status == 404
    assert "web" not in [x.name for x in client.volumes("SiteA")]


def test_our_own_volume_fields_on_create(rest, client):
    v = rest.ok("POST", "volumes", {"name": "sec", "size": 1048576, "sizeUnit": "bytes", "driveType": "nvme",
                                    "security": "fips", "driveSecurity": True, "resourcePartitioning": True,
                                    "raidLevel": "10"}, status=201)
    snap = client.volume("SiteA/sec")
    assert (snap.security, snap.drive_security, snap.resource_partitioning, snap.raid_level) == ("fips", True, True,
                                                                                                  "10")
    assert (v["raidLevel"], v["raidLevelNumber"], v["securityType"]) == ("raid1", "10", "enabled")


def test_host_data_written_and_read_back(rest, client):
    client.create_volume("SiteA/d", "4MiB")
    data = os.urandom(2 * MiB + 123)  # more than one chunk, more than the 1 MiB JSON body limit
    r = rest.request("PUT", "volumes/d/data?offset=4096", raw=data,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200 and r.json() == {"volume": "d", "offset": 4096, "bytesWritten": len(data)}
    assert client.host_read("SiteA/d", 4096, len(data)) == data
    back = rest.get(f"volumes/d/data?offset=4096&length={len(data)}")
    assert back.status == 200 and back.headers["Content-Type"] == "application/octet-stream" and back.body == data
    assert len(rest.get("volumes/d/data").body) == 4 * MiB  # default: to the end of the volume


def test_data_beyond_the_end_is_refused_before_anything_is_written(rest, client):
    client.create_volume("SiteA/d", "1MiB")
    r = rest.request("PUT", f"volumes/d/data?offset={MiB - 10}", raw=b"x" * 20)
    assert r.status == 422 and r.error["retcode"] == "invalidRange" and "1048576 bytes" in r.error["errorMessage"]
    assert client.host_read("SiteA/d", MiB - 10, 10) == bytes(10)
    r = rest.get(f"volumes/d/data?offset={MiB}&length=1")
    assert r.status == 422 and r.error["retcode"] == "invalidRange"


def test_a_secondary_volume_refuses_host_writes(rest, client):
    make_mirror(client, rest)
    rest.ok("POST", "async-mirrors/G/role", {"role": "secondary"})
    wait_for(lambda: rest.ok("GET", "async-mirrors/G")["localRole"] == "secondary", what="SiteA demoted")
    r = rest.request("PUT", "volumes/v/data", raw=b"hello")
    assert r.status == 409 and r.error["retcode"] == "arvmVolumeNotWritable"
    assert rest.get("volumes/v/data?length=5").body == client.host_read("SiteB/v_dr", 0, 5)


def test_volume_data_path_under_the_prefix_only(rest):
    assert rest.get(f"{API}/volumes/nope/data").error["retcode"] == "volumeNotFound"
