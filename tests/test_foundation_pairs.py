"""Foundation: mirrored pairs (SPEC §2 "Mirrored pair", "Reserved capacity"): add, refusals, remove."""
from __future__ import annotations

import os

import pytest

from core.eligibility import reserved_bytes
from core.units import GiB
from test_foundation_support import pool_free, refused, remove_pair, world

RC_DB = reserved_bytes(4 * GiB, 20)  # 20 % of 4 GiB rounded up to 4 KiB


@pytest.fixture
def group(client):
    client.create_group("g1", "SiteA", "SiteB")
    return "g1"


def used(client, array, pool):
    a = next(a for a in client.arrays_list() if a.name == array)
    p = next(p for p in a.pools if p.name == pool)
    return p.capacity - p.free


def test_add_creates_both_sides_with_default_reserved_capacity(client, group):
    assert RC_DB == 858996736
    free_a, free_b = pool_free(client, "SiteA", "nvme_pool"), pool_free(client, "SiteB", "nvme_pool")
    p = client.add_pair(group, "SiteA/db", "SiteB/db_dr")
    assert (p.array, p.local_volume, p.remote_array, p.remote_volume, p.role) == ("SiteA", "db", "SiteB", "db_dr",
                                                                                  "primary")
    assert p.primary_ref == "SiteA/db" and p.secondary_ref == "SiteB/db_dr"
    by_side = {x.array: x for x in client.pairs()}
    assert set(by_side) == {"SiteA", "SiteB"}
    b = by_side["SiteB"]
    assert (b.local_volume, b.remote_volume, b.role, b.group) == ("db_dr", "db", "secondary", "g1")
    for side in by_side.values():
        rc = side.reserved_capacity
        assert rc.capacity == RC_DB and rc.drive_type == "nvme" and rc.pool == "nvme_pool"
    # pool free drops by the reserved capacity on each array (the volume was already counted at creation)
    assert pool_free(client, "SiteA", "nvme_pool") == free_a - RC_DB
    assert pool_free(client, "SiteB", "nvme_pool") == free_b - RC_DB
    # used = every volume of the pool + its reserved capacity
    assert used(client, "SiteA", "nvme_pool") == 4 * GiB + 2 * GiB + RC_DB
    assert used(client, "SiteB", "nvme_pool") == 4 * GiB + 2 * GiB + RC_DB
    vols = {(v.array, v.name): v for v in client.volumes()}
    assert vols["SiteA", "db"].mirror_group == "g1" and vols["SiteA", "db"].role == "primary"
    assert vols["SiteB", "db_dr"].mirror_group == "g1" and vols["SiteB", "db_dr"].role == "secondary"
    assert vols["SiteA", "db"].host_writable and not vols["SiteB", "db_dr"].host_writable
    groups = {g.array: g for g in client.groups()}
    assert [x.local_volume for x in groups["SiteA"].pairs] == ["db"]
    assert [x.local_volume for x in groups["SiteB"].pairs] == ["db_dr"]
    codes = {(e.array, e.code) for e in client.events()}
    assert {("SiteA", "arvmPairCreated"), ("SiteB", "arvmPairCreated")} <= codes


def test_reserved_capacity_on_the_same_drive_type(client, group):
    free_sas = pool_free(client, "SiteB", "sas_pool")
    free_nvme = pool_free(client, "SiteB", "nvme_pool")
    client.add_pair(group, "SiteA/files", "SiteB/files_dr")
    rc = reserved_bytes(8 * GiB, 20)
    for side in client.pairs():
        assert side.reserved_capacity.drive_type == "sas" and side.reserved_capacity.pool == "sas_pool"
        assert side.reserved_capacity.capacity == rc
    assert pool_free(client, "SiteB", "sas_pool") == free_sas - rc
    assert pool_free(client, "SiteB", "nvme_pool") == free_nvme


def test_reserved_percent_can_be_larger_and_differ_per_side(client, group):
    client.add_pair(group, "SiteA/db", "SiteB/db_dr", reserved_percent=50, secondary_reserved_percent=30)
    by_side = {x.array: x for x in client.pairs()}
    assert by_side["SiteA"].reserved_capacity.capacity == reserved_bytes(4 * GiB, 50)
    assert by_side["SiteB"].reserved_capacity.capacity == reserved_bytes(4 * GiB, 30)


@pytest.mark.parametrize("pct", [0, -5, 101])
def test_bad_reserved_percent_is_refused(client, group, pct):
    err = refused(client, "arvmInvalidRepositoryCapacity", client.add_pair, group, "SiteA/db", "SiteB/db_dr",
                  reserved_percent=pct)
    assert "at most 100 %" in err.message


def test_pair_add_from_the_secondary_array_is_refused(client, group):
    client.create_volume("SiteB/extra", "1GiB")
    client.create_volume("SiteA/extra_dr", "1GiB")
    err = refused(client, "arvmGroupNotPrimary", client.add_pair, group, "SiteB/extra", "SiteA/extra_dr")
    assert "secondary on SiteB" in err.message and "primary array SiteA" in err.message


def test_pair_add_to_another_array_than_the_groups_remote_is_refused(client, group):
    client.create_volume("SiteA/other", "4GiB")
    err = refused(client, "arvmInvalidRemoteArray", client.add_pair, group, "SiteA/db", "SiteA/other")
    assert "SiteB" in err.message


def test_pair_add_to_unknown_group_is_refused(client):
    err = refused(client, "arvmGroupNotFound", client.add_pair, "nope", "SiteA/db", "SiteB/db_dr")
    assert "create it first" in err.message


def test_several_pairs_in_one_group(client, group):
    client.add_pair(group, "SiteA/db", "SiteB/db_dr")
    client.add_pair(group, "SiteA/logs", "SiteB/logs_dr")
    assert sorted(p.local_volume for p in client.pairs(group="g1", array="SiteA")) == ["db", "logs"]
    assert sorted(p.local_volume for p in client.pairs(group="g1", array="SiteB")) == ["db_dr", "logs_dr"]


def test_remove_frees_reserved_capacity_and_the_volumes(client, group):
    before = world(client)
    client.add_pair(group, "SiteA/db", "SiteB/db_dr")
    rc_dir = os.path.join(next(a.data_dir for a in client.arrays_list() if a.name == "SiteA"), "reserved", "db")
    assert os.path.isdir(rc_dir)
    remove_pair(client, "SiteA/db")
    after = world(client)
    assert after["pool_free"] == before["pool_free"]
    assert after["volumes"] == before["volumes"]
    assert not os.path.exists(rc_dir)
    codes = {(e.array, e.code) for e in client.events()}
    assert {("SiteA", "arvmPairRemoved"), ("SiteB", "arvmPairRemoved")} <= codes
    refused(client, "arvmPairNotFound", client.pair, "SiteA/db")
    refused(client, "arvmPairNotFound", client.pair, "SiteB/db_dr")
    # the volumes can be paired again
    client.add_pair(group, "SiteA/db", "SiteB/db_dr")


def test_remove_clears_both_sides_from_groups_and_pairs(client, group):
    client.add_pair(group, "SiteA/db", "SiteB/db_dr")
    assert len(client.pairs()) == 2
    remove_pair(client, "SiteA/db")
    assert client.pairs() == []
    assert all(g.pairs == () for g in client.groups())


def test_remove_from_the_secondary_side_clears_both(client, group):
    client.add_pair(group, "SiteA/db", "SiteB/db_dr")
    free = {k: v for k, v in world(client)["pool_free"].items()}
    remove_pair(client, "SiteB/db_dr")
    for key, value in world(client)["pool_free"].items():
        assert value == free[key] + (RC_DB if key[1] == "nvme_pool" else 0)
    assert all(v.mirror_group is None for v in client.volumes())


def test_remove_unmirrored_volume_is_refused(client):
    err = refused(client, "arvmPairNotFound", client.remove_pair, "SiteA/db")
    assert "not in a mirrored pair" in err.message
