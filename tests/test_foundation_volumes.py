"""Foundation: volumes (SPEC §2 "Volume"): create, units, refusals, resize, delete."""
from __future__ import annotations

import os

import pytest

from core.units import GiB, MiB, TiB
from test_foundation_support import pool_free, refused, remove_pair, world


def test_create_volume_is_a_sparse_file_of_its_capacity(client):
    free_before = pool_free(client, "SiteA", "nvme_pool")
    v = client.create_volume("SiteA/scratch", "10GiB")
    assert v.capacity == 10 * GiB
    assert v.drive_type == "nvme" and v.pool == "nvme_pool"
    st = os.stat(v.path)
    assert st.st_size == 10 * GiB
    assert st.st_blocks == 0, "a new volume must take no disk blocks (sparse)"
    assert pool_free(client, "SiteA", "nvme_pool") == free_before - 10 * GiB
    assert client.volume("SiteA/scratch") == v
    ev = client.events("SiteA")[-1]
    assert ev.code == "volumeCreated" and ev.object == "scratch"


@pytest.mark.parametrize("text, expected", [("10GiB", 10 * GiB), ("512MiB", 512 * MiB), ("1.5GiB", 3 * GiB // 2),
                                            ("2g", 2 * GiB), ("1TiB", TiB)])
def test_capacity_units(client, text, expected):
    v = client.create_volume("SiteA/u", text, drive_type="sas")
    assert v.capacity == expected
    assert os.stat(v.path).st_size == expected


@pytest.mark.parametrize("text", ["10XB", "ten GiB", "-1GiB", "GiB"])
def test_bad_capacity_unit_is_refused_with_the_accepted_units(client, text):
    err = refused(client, "invalidInput", client.create_volume, "SiteA/u", text)
    assert text in err.message
    assert "512MiB" in err.message and "10GiB" in err.message
    assert not any(v.name == "u" for v in client.volumes())


def test_zero_capacity_is_refused(client):
    err = refused(client, "invalidCapacity", client.create_volume, "SiteA/u", "0")
    assert "10GiB" in err.message


def test_duplicate_volume_name_is_refused(client):
    err = refused(client, "volumeLabelExists", client.create_volume, "SiteA/db", "1GiB")
    assert "db" in err.message and "SiteA" in err.message and "another name" in err.message


def test_same_volume_name_on_the_other_array_is_fine(client):
    v = client.create_volume("SiteB/db", "1GiB")
    assert v.array == "SiteB"


def test_volume_name_longer_than_30_characters_is_refused(client):
    err = refused(client, "invalidVolumeLabel", client.create_volume, "SiteA/" + "v" * 31, "1GiB")
    assert "30 characters" in err.message and "shorter" in err.message
    assert client.create_volume("SiteA/" + "v" * 30, "1GiB").name == "v" * 30


def test_bad_volume_name_characters_are_refused(client):
    err = refused(client, "invalidVolumeLabel", client.create_volume, "SiteA/bad name", "1GiB")
    assert "letters, digits" in err.message


def test_bad_volume_address_is_refused(client):
    err = refused(client, "invalidVolumeRef", client.create_volume, "SiteA-scratch", "1GiB")
    assert "ARRAY/VOLUME" in err.message


def test_bad_raid_level_is_refused(client):
    err = refused(client, "invalidRaidLevel", client.create_volume, "SiteA/u", "1GiB", raid_level="7")
    assert "'7'" in err.message and "0, 1, 5, 6, 10" in err.message


def test_bad_segment_size_is_refused(client):
    err = refused(client, "invalidSegmentSize", client.create_volume, "SiteA/u", "1GiB", segment_size="100KiB")
    assert "128KiB" in err.message


def test_drive_security_without_secure_capability_is_refused(client):
    err = refused(client, "invalidSecurity", client.create_volume, "SiteA/u", "1GiB", drive_security=True)
    assert "Drive Security" in err.message and "--security fde" in err.message and "fips" in err.message
    v = client.create_volume("SiteA/u", "1GiB", security="fips", drive_security=True)
    assert v.security == "fips" and v.drive_security


def test_unknown_security_and_drive_type_words_are_refused(client):
    err = refused(client, "invalidInput", client.create_volume, "SiteA/u", "1GiB", security="aes")
    assert "none, fde, fips" in err.message
    err = refused(client, "invalidInput", client.create_volume, "SiteA/u", "1GiB", drive_type="ssd")
    assert "nvme, sas" in err.message


def test_pool_without_room_is_refused(client):
    free = pool_free(client, "SiteA", "nvme_pool")
    err = refused(client, "insufficientCapacity", client.create_volume, "SiteA/big", free + 512)
    assert "NVME" in err.message and "smaller capacity" in err.message
    err = refused(client, "insufficientCapacity", client.create_volume, "SiteA/big", "5TiB", pool="nvme_pool")
    assert "nvme_pool" in err.message and str(free) in err.message
    # exactly the free capacity fits
    assert client.create_volume("SiteA/big", free, pool="nvme_pool").capacity == free
    assert pool_free(client, "SiteA", "nvme_pool") == 0


def test_pool_of_other_drive_type_is_refused(client):
    err = refused(client, "driveTypeMismatch", client.create_volume, "SiteA/u", "1GiB", pool="sas_pool",
                  drive_type="nvme")
    assert "sas_pool" in err.message and "SAS" in err.message


def test_unknown_array_is_refused(client):
    err = refused(client, "arrayNotFound", client.create_volume, "SiteC/u", "1GiB")
    assert "SiteA, SiteB" in err.message


def test_resize_up_grows_the_file(client):
    free = pool_free(client, "SiteA", "nvme_pool")
    v = client.resize_volume("SiteA/db", "6GiB")
    assert v.capacity == 6 * GiB
    assert os.stat(v.path).st_size == 6 * GiB
    assert client.volume("SiteA/db").capacity == 6 * GiB
    assert pool_free(client, "SiteA", "nvme_pool") == free - 2 * GiB
    assert client.events("SiteA")[-1].code == "volumeResized"


def test_resize_down_is_refused_and_the_file_is_kept(client):
    path = client.volume("SiteA/db").path
    err = refused(client, "invalidCapacity", client.resize_volume, "SiteA/db", "1GiB")
    assert "only grow" in err.message and "larger capacity" in err.message
    assert os.stat(path).st_size == 4 * GiB


def test_resize_beyond_pool_is_refused(client):
    path = client.volume("SiteA/db").path
    err = refused(client, "insufficientCapacity", client.resize_volume, "SiteA/db", "5TiB")
    assert "nvme_pool" in err.message
    assert os.stat(path).st_size == 4 * GiB


def test_delete_removes_the_file_and_frees_the_pool(client):
    free = pool_free(client, "SiteA", "nvme_pool")
    path = client.volume("SiteA/logs").path
    client.delete_volume("SiteA/logs")
    assert not os.path.exists(path)
    assert "logs" not in [v.name for v in client.volumes("SiteA")]
    assert pool_free(client, "SiteA", "nvme_pool") == free + 2 * GiB
    err = refused(client, "volumeNotFound", client.volume, "SiteA/logs")
    assert "volume list" in err.message


@pytest.mark.parametrize("ref", ["SiteA/db", "SiteB/db_dr"])
def test_delete_refused_while_mirrored(client, ref):
    client.create_group("g1", "SiteA", "SiteB")
    client.add_pair("g1", "SiteA/db", "SiteB/db_dr")
    path = client.volume(ref).path
    err = refused(client, "arvmVolumeAlreadyInMirrorRelationship", client.delete_volume, ref)
    assert "g1" in err.message and "remove the mirrored pair first" in err.message
    assert os.path.exists(path)
    # after removing the pair, delete works
    remove_pair(client, "SiteA/db")
    client.delete_volume(ref)
    assert not os.path.exists(path)


def test_world_helper_sees_both_arrays(client):
    w = world(client)
    assert {k[0] for k in w["pool_free"]} == {"SiteA", "SiteB"}
    assert {v[1] for v in w["volumes"]} == {"db", "logs", "files", "db_dr", "logs_dr", "files_dr"}
