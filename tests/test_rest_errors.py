"""Bad input, unknown ids, oversized bodies, untidy paths, crashes and races: clean JSON errors, nothing half-done."""
from __future__ import annotations

import threading
import urllib.parse

import pytest

from test_rest_support import API, rest  # noqa: F401  (fixture)


def test_malformed_json_and_wrong_shapes_are_422(rest):
    for raw, code in ((b'{"name": "x",', "invalidJson"), (b"[1, 2]", "invalidJson"), (b"", "invalidJson"),
                      (b"\xff\xfe", "invalidJson")):
        r = rest.request("POST", "async-mirrors", raw=raw, headers={"Content-Type": "application/json"})
        assert r.status == 422 and r.error["retcode"] == code, raw


@pytest.mark.parametrize("body, field", [
    ({"name": "G", "secondaryArrayId": "SiteB", "colour": "blue"}, "colour"),
    ({"name": "G", "secondaryArrayId": "SiteB", "syncIntervalMinutes": "soon"}, "syncIntervalMinutes"),
    ({"name": "G", "secondaryArrayId": "SiteB", "manualSync": "yes"}, "manualSync"),
    ({"name": "G", "secondaryArrayId": "SiteB", "interfaceType": "infiniband"}, "interfaceType"),
    ({"name": 7, "secondaryArrayId": "SiteB"}, "name"),
    ({"secondaryArrayId": "SiteB"}, "name"),
])
def test_a_bad_field_is_named_and_nothing_is_created(rest, client, body, field):
    r = rest.post("async-mirrors", body)
    assert r.status == 422 and f"'{field}'" in r.error["errorMessage"]
    assert client.groups() == []


def test_a_body_over_one_mib_is_413(rest, client):
    big = {"name": "v", "size": 1, "sizeUnit": "mb", "pad": "x" * (2 << 20)}
    r = rest.post("volumes", big)
    assert r.status == 413 and r.error["retcode"] == "requestTooLarge"
    r = rest.request("POST", "async-mirrors/G/suspend", raw=b"x" * ((1 << 20) + 1))
    assert r.status == 413  # even where the body would not be read
    assert "v" not in [v.name for v in client.volumes("SiteA")]


@pytest.mark.parametrize("path, retcode", [
    ("async-mirrors/NOPE", "arvmGroupNotFound"),
    ("async-mirrors/3700000000000000000000000000000000000000", "arvmGroupNotFound"),
    ("async-mirrors/NOPE/pairs/db", "arvmGroupNotFound"),
    ("async-mirrors/pairs/db/repository-utilization", "arvmPairNotFound"),
    ("volumes/0200000000000000000000000000000000000000", "volumeNotFound"),
    ("storage-pools/none", "storagePoolNotFound"),
    ("/devmgr/v2/storage-systems/600A098000000000000000000000000F/volumes", "storageSystemNotFound"),
    ("no-such-thing", "notFound"),
    ("/devmgr/v3/anything", "notFound"),
])
def test_unknown_ids_are_404_json(rest, path, retcode):
    r = rest.get(path)
    assert r.status == 404 and r.error["retcode"] == retcode
    assert r.headers["Content-Type"].startswith("application/json")


def test_unknown_pair_in_a_known_group(rest, client):
    rest.ok("POST", "async-mirrors", {"name": "G", "secondaryArrayId": "SiteB"}, status=201)
    for method in ("GET", "DELETE"):
        r = rest.request(method, "async-mirrors/G/pairs/db")
        assert r.status == 404 and r.error["retcode"] == "arvmPairNotFound"


def test_a_wrong_method_is_405_json(rest):
    r = rest.request("PUT", "async-mirrors")
    assert r.status == 405 and r.error["retcode"] == "methodNotAllowed" and "GET" in r.error["errorMessage"]


def test_unicode_labels_are_refused_by_the_naming_rule_and_not_found_by_path(rest, client):
    r = rest.post("async-mirrors", {"name": "Réplica-東京", "secondaryArrayId": "SiteB"})
    assert r.status == 422 and r.error["retcode"] == "arvmInvalidGroupLabel" and "Réplica-東京" in r.error["errorMessage"]
    r = rest.post("volumes", {"name": "データ", "size": 1, "sizeUnit": "mb"})
    assert r.status == 422 and r.error["retcode"] == "invalidVolumeLabel"
    r = rest.get("async-mirrors/" + urllib.parse.quote("Réplica-東京"))
    assert r.status == 404 and "Réplica-東京" in r.error["errorMessage"]
    assert client.groups() == [] and "データ" not in [v.name for v in client.volumes()]


def test_doubled_and_trailing_slashes_reach_the_same_resource(rest, client):
    assert rest.ok("GET", "/devmgr/v2//storage-systems//1//volumes/") == rest.ok("GET", "volumes")
    assert rest.ok("GET", "//devmgr/utils/about", auth=None)["arrayName"] == "SiteA"
    assert rest.get("//devmgr//v2/storage-systems/1/", auth=None).status == 401  # the login still applies
    rest.ok("POST", f"{API}//volumes", {"name": "slashed", "size": 1, "sizeUnit": "mb"}, status=201)
    assert client.volume("SiteA/slashed").capacity == 1 << 20


def test_an_unexpected_failure_is_a_one_line_500(rest, client, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    engine = client.engine.daemon("SiteA").engine  # SiteA's own engine, inside its daemon
    engine.volumes = broken  # an instance attribute shadows the method for this test only
    try:
        r = rest.get("volumes")
    finally:
        del engine.volumes
    assert r.status == 500 and r.error["retcode"] == "internalError"
    assert "RuntimeError" in r.error["errorMessage"] and "secret internal detail" not in r.body.decode()
    assert "secret internal detail" in caplog.text  # the traceback is in the server log
    assert rest.get("volumes").status == 200


def _race(calls):
    """Run the calls at the same moment from threads; their replies in call order."""
    barrier = threading.Barrier(len(calls))
    replies = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        replies[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return replies


def test_two_creates_of_one_group_at_once_leave_one_group_on_each_array(rest, client):
    rest.get("")  # log in once, so both requests reach the engine together
    body = {"name": "G", "secondaryArrayId": "SiteB", "manualSync": True}
    replies = _race([lambda: rest.post("async-mirrors", body)] * 2)
    assert sorted(r.status for r in replies) == [201, 409]
    loser = next(r for r in replies if r.status == 409)
    assert loser.error["retcode"] == "arvmGroupUserLabelExists"
    assert sorted((g.array, g.role) for g in client.groups()) == [("SiteA", "primary"), ("SiteB", "secondary")]


def test_two_pairs_for_one_primary_at_once_leave_one_pair_on_each_array(rest, client):
    client.create_volume("SiteA/v", "4MiB")
    for name in ("v1", "v2"):
        client.create_volume(f"SiteB/{name}", "4MiB")
    rest.ok("POST", "async-mirrors", {"name": "G", "secondaryArrayId": "SiteB", "manualSync": True}, status=201)
    replies = _race([lambda n=n: rest.post("async-mirrors/G/pairs", {"primaryVolumeRef": "v", "secondaryVolumeRef": n})
                     for n in ("v1", "v2")])
    assert sorted(r.status for r in replies) == [201, 409]
    assert next(r for r in replies if r.status == 409).error["retcode"] == "arvmVolumeAlreadyInMirrorRelationship"
    winner = next(r.json() for r in replies if r.status == 201)["remoteVolumeName"]
    assert [(p.array, p.local_volume) for p in client.pairs()] == [("SiteA", "v"), ("SiteB", winner)]
    assert [v.name for v in client.volumes("SiteB") if v.mirror_group] == [winner]
