"""Foundation: which remote volumes may be the secondary of a primary (SPEC §2 "Mirrored pair").

``client.candidates`` lists every remote volume with its reasons; ``pair add`` refuses
an ineligible one with the same words and changes nothing on either array.
"""
from __future__ import annotations

import pytest

from core.array import PoolSpec
from core.domain import DriveType, Model
from core.lab.passwords import lab_passwords, record_passwords
from core.runtime import BlockingEngine
from daemon_lab import daemon_lab_factory
from core.units import GiB, MiB, TiB
from test_foundation_support import make_array, pool_free, refused


def cand(cands, name):
    match = [c for c in cands if c.volume.name == name]
    assert len(match) == 1, f"{name} not listed: {[c.volume.name for c in cands]}"
    return match[0]


def assert_refused_only(c, code, *words):
    assert not c.eligible
    assert c.codes == (code,), (c.codes, c.reasons)
    assert len(c.reasons) == 1
    for w in words:
        assert w in c.reasons[0], (w, c.reasons[0])


def assert_pair_add_refused(client, group, primary, secondary, code, *words):
    err = refused(client, code, client.add_pair, group, primary, secondary)
    assert secondary in err.message and primary in err.message
    for w in words:
        assert w in err.message
    return err


@pytest.fixture
def group(client):
    client.create_group("g1", "SiteA", "SiteB")
    return "g1"


def test_lab_dr_volume_is_eligible_with_no_reasons(client):
    cands = client.candidates("SiteA/db", "SiteB")
    assert {c.volume.name for c in cands} == {"db_dr", "logs_dr", "files_dr"}
    c = cand(cands, "db_dr")
    assert c.eligible and c.reasons == () and c.codes == ()


def test_capacity_too_small(client, group):
    c = cand(client.candidates("SiteA/db", "SiteB"), "logs_dr")
    assert_refused_only(c, "arvmSecondaryCapacityTooSmall", "logs_dr", str(2 * GiB), str(4 * GiB), "at least as large")
    assert_pair_add_refused(client, group, "SiteA/db", "SiteB/logs_dr", "arvmSecondaryCapacityTooSmall")


def test_larger_secondary_is_eligible(client):
    client.create_volume("SiteB/bigger", "5GiB")
    assert cand(client.candidates("SiteA/db", "SiteB"), "bigger").eligible


def test_already_mirrored_secondary(client, group):
    client.add_pair(group, "SiteA/db", "SiteB/db_dr")
    client.create_volume("SiteA/db2", "4GiB")
    c = cand(client.candidates("SiteA/db2", "SiteB"), "db_dr")
    assert_refused_only(c, "arvmVolumeAlreadyInMirrorRelationship", "g1", "only one mirror relationship")
    assert_pair_add_refused(client, group, "SiteA/db2", "SiteB/db_dr", "arvmVolumeAlreadyInMirrorRelationship")


def test_already_mirrored_primary(client, group):
    client.add_pair(group, "SiteA/db", "SiteB/db_dr")
    client.create_volume("SiteB/db_dr2", "4GiB")
    err = refused(client, "arvmVolumeAlreadyInMirrorRelationship", client.add_pair, group, "SiteA/db",
                  "SiteB/db_dr2")
    assert "SiteA/db" in err.message and "g1" in err.message


def test_drive_type_mix(client, group):
    client.create_volume("SiteB/sas4", "4GiB", drive_type="sas")
    c = cand(client.candidates("SiteA/db", "SiteB"), "sas4")
    assert_refused_only(c, "arvmDriveTypeMismatch", "SAS", "NVME", "cannot be mixed")
    assert_pair_add_refused(client, group, "SiteA/db", "SiteB/sas4", "arvmDriveTypeMismatch")


def test_security_fips_fde_mismatch(client, group):
    client.create_volume("SiteA/sec", "1GiB", security="fips")
    client.create_volume("SiteB/sec_fde", "1GiB", security="fde")
    client.create_volume("SiteB/sec_fips", "1GiB", security="fips")
    client.create_volume("SiteB/sec_none", "1GiB")
    cands = client.candidates("SiteA/sec", "SiteB")
    assert_refused_only(cand(cands, "sec_fde"), "arvmSecurityMismatch", "FDE", "FIPS")
    assert_refused_only(cand(cands, "sec_none"), "arvmSecurityMismatch", "NONE", "FIPS")
    ok = cand(cands, "sec_fips")
    assert ok.eligible and ok.reasons == ()
    assert ok.warnings, "secure-capable without Drive Security is a 'verify yourself' warning"
    assert_pair_add_refused(client, group, "SiteA/sec", "SiteB/sec_fde", "arvmSecurityMismatch")


def test_drive_security_mismatch(client, group):
    client.create_volume("SiteA/ds", "1GiB", security="fde", drive_security=True)
    client.create_volume("SiteB/ds_off", "1GiB", security="fde")
    client.create_volume("SiteB/ds_on", "1GiB", security="fde", drive_security=True)
    cands = client.candidates("SiteA/ds", "SiteB")
    assert_refused_only(cand(cands, "ds_off"), "arvmDriveSecurityMismatch", "Drive Security is off on ds_off",
                        "on on the primary")
    assert cand(cands, "ds_on").eligible
    assert_pair_add_refused(client, group, "SiteA/ds", "SiteB/ds_off", "arvmDriveSecurityMismatch")


def test_data_assurance_mismatch(client, group):
    client.create_volume("SiteB/da", "4GiB", data_assurance=True)
    c = cand(client.candidates("SiteA/db", "SiteB"), "da")
    assert_refused_only(c, "arvmDataAssuranceMismatch", "Data Assurance is on on da", "off on the primary")
    assert_pair_add_refused(client, group, "SiteA/db", "SiteB/da", "arvmDataAssuranceMismatch")


def test_resource_partitioning_on_secondary(client, group):
    client.create_volume("SiteB/rp", "4GiB", resource_partitioning=True)
    c = cand(client.candidates("SiteA/db", "SiteB"), "rp")
    assert_refused_only(c, "arvmResourcePartitioningEnabled", "secondary volume rp", "turn it off")
    assert_pair_add_refused(client, group, "SiteA/db", "SiteB/rp", "arvmResourcePartitioningEnabled")


def test_resource_partitioning_on_primary_refuses_every_candidate(client, group):
    client.create_volume("SiteA/rp", "1GiB", resource_partitioning=True)
    cands = client.candidates("SiteA/rp", "SiteB")
    for c in cands:
        assert not c.eligible
        assert "arvmResourcePartitioningEnabled" in c.codes
        assert any("primary volume rp" in r for r in c.reasons)
    assert_pair_add_refused(client, group, "SiteA/rp", "SiteB/db_dr", "arvmResourcePartitioningEnabled")


def test_no_pool_room_for_reserved_capacity_by_percent(client):
    c = cand(client.candidates("SiteA/db", "SiteB", reserved_percent=200000), "db_dr")
    assert_refused_only(c, "arvmInsufficientReservedCapacity", "NVME", "SiteB", "lower the reserved percentage")


def test_no_pool_room_for_reserved_capacity_when_pool_is_full(client, group):
    # leave less than 20 % of db_dr (0.8 GiB) free in SiteB's only NVMe pool
    free = pool_free(client, "SiteB", "nvme_pool")
    client.create_volume("SiteB/filler", free - 512 * MiB, pool="nvme_pool")
    c = cand(client.candidates("SiteA/db", "SiteB"), "db_dr")
    assert_refused_only(c, "arvmInsufficientReservedCapacity", "db_dr", "free capacity")
    assert_pair_add_refused(client, group, "SiteA/db", "SiteB/db_dr", "arvmInsufficientReservedCapacity")


def test_no_pool_room_for_reserved_capacity_on_the_primary_side(client, group):
    free = pool_free(client, "SiteA", "nvme_pool")
    client.create_volume("SiteA/filler", free - 512 * MiB, pool="nvme_pool")
    err = refused(client, "arvmInsufficientReservedCapacity", client.add_pair, group, "SiteA/db", "SiteB/db_dr")
    assert "SiteA" in err.message and "db" in err.message


def test_name_longer_than_30_cannot_exist_as_candidate(client):
    err = refused(client, "invalidVolumeLabel", client.create_volume, "SiteB/" + "d" * 31, "4GiB")
    assert "1 to 30 characters" in err.message
    assert all(len(c.volume.name) <= 30 for c in client.candidates("SiteA/db", "SiteB"))


def test_several_reasons_are_all_listed(client):
    client.create_volume("SiteB/bad", "1GiB", drive_type="sas", data_assurance=True)
    c = cand(client.candidates("SiteA/db", "SiteB"), "bad")
    assert not c.eligible
    assert set(c.codes) == {"arvmSecondaryCapacityTooSmall", "arvmDriveTypeMismatch", "arvmDataAssuranceMismatch"}
    assert len(c.reasons) == 3


def test_unknown_secondary_volume_is_refused(client, group):
    err = refused(client, "volumeNotFound", client.add_pair, group, "SiteA/db", "SiteB/nope")
    assert "candidates" in err.message


# -- array-level rules: arrays of other models / firmware -------------------------------------------

def _engine_with(lab_home, *arrays):
    """The lab with more arrays, each with its admin password recorded: all served by their daemons."""
    passwords = lab_passwords(lab_home)
    for name, vols, spec in arrays:
        passwords[name] = spec.setdefault("password", f"{name}-admin")
        make_array(lab_home, name, vols, **spec)
    record_passwords(lab_home, passwords)
    return BlockingEngine(lab_home, purpose="pytest", timeout=120, engine_factory=daemon_lab_factory())


NV4 = ("vol", 4 * GiB, {"drive_type": "nvme"})


@pytest.mark.parametrize("which", ["remote", "local"])
def test_firmware_too_old(lab_home, which):
    with _engine_with(lab_home, ("Old", (NV4,), {"firmware": "07.83.00.00"})) as client:
        if which == "remote":
            primary, remote = "SiteA/db", "Old"
        else:
            primary, remote = "Old/vol", "SiteB"
        cands = client.candidates(primary, remote)
        assert cands
        for c in cands:
            assert not c.eligible and "arvmFirmwareTooOld" in c.codes
            assert any("07.83.00.00" in r and "07.84" in r and "upgrade" in r for r in c.reasons)
        local_array = primary.split("/")[0]
        err = refused(client, "arvmFirmwareTooOld", client.create_group, "g1", local_array, remote)
        assert "Old" in err.message and "07.84" in err.message


@pytest.mark.parametrize("firmware", ["07.84.00.00", "08.20.00.00"])
def test_firmware_7_84_or_later_is_enough(lab_home, firmware):
    """SANtricity 08.20 came after 07.84 (08.xx > 07.xx): both mirror."""
    with _engine_with(lab_home, ("Min", (NV4,), {"firmware": firmware})) as client:
        assert cand(client.candidates("SiteA/db", "Min"), "vol").eligible
        client.create_group("g1", "SiteA", "Min")
        client.add_pair("g1", "SiteA/db", "Min/vol")


def test_single_controller(lab_home):
    with _engine_with(lab_home, ("Single", (NV4,), {"controllers": ("A",)})) as client:
        c = cand(client.candidates("SiteA/db", "Single"), "vol")
        assert_refused_only(c, "arvmSingleControllerArray", "Single", "single controller", "second controller")
        err = refused(client, "arvmSingleControllerArray", client.create_group, "g1", "SiteA", "Single")
        assert "Single" in err.message


def test_e4000_over_iscsi_is_refused_but_fc_is_fine(lab_home):
    with _engine_with(lab_home, ("E4k", (NV4,), {"model": Model.E4000})) as client:
        c = cand(client.candidates("SiteA/db", "E4k", channel="iscsi"), "vol")
        assert_refused_only(c, "arvmIscsiNotSupportedOnModel", "E4000", "iSCSI", "Fibre Channel")
        assert cand(client.candidates("SiteA/db", "E4k", channel="fc"), "vol").eligible
        err = refused(client, "arvmIscsiNotSupportedOnModel", client.create_group, "g1", "SiteA", "E4k",
                      channel="iscsi")
        assert "E4000" in err.message
        g = client.create_group("g1", "SiteA", "E4k", channel="fc")
        assert g.channel == "fc"


def test_iscsi_channel_without_iscsi_ports(lab_home):
    with _engine_with(lab_home, ("NoIscsi", (NV4,), {"iscsi_ports": 0})) as client:
        c = cand(client.candidates("SiteA/db", "NoIscsi", channel="iscsi"), "vol")
        assert_refused_only(c, "arvmChannelNotAvailable", "NoIscsi", "no ISCSI host ports", "fc")
        err = refused(client, "arvmChannelNotAvailable", client.create_group, "g1", "SiteA", "NoIscsi",
                      channel="iscsi")
        assert "NoIscsi" in err.message


def test_pair_add_into_iscsi_group_checks_the_channel(lab_home):
    """A group created over iSCSI between two iSCSI arrays: pair add uses the group's channel."""
    with _engine_with(lab_home) as client:
        client.create_group("gi", "SiteA", "SiteB", channel="iscsi")
        assert client.group("gi").channel == "iscsi"
        p = client.add_pair("gi", "SiteA/db", "SiteB/db_dr")
        assert p.group == "gi" and p.secondary_ref == "SiteB/db_dr"


def _ef600_arrays():
    nv = {"drive_type": "nvme"}
    pools = (PoolSpec("nvme_pool", DriveType.NVME, 4 * TiB),)
    return (("EfA", (("src", 4 * GiB, nv),), {"model": Model.EF600, "pools": pools}),
            ("EfB", (("same", 4 * GiB, nv),
                     ("seg", 4 * GiB, {**nv, "segment_size": 256 * 1024}),
                     ("raid", 4 * GiB, {**nv, "raid_level": "5"})), {"model": Model.EF600, "pools": pools}))


def test_ef600_strict_matching(lab_home):
    with _engine_with(lab_home, *_ef600_arrays()) as client:
        cands = client.candidates("EfA/src", "EfB")
        same = cand(cands, "same")
        assert same.eligible and same.reasons == ()
        assert_refused_only(cand(cands, "seg"), "arvmStrictMatchMismatch", "segment size", "131072", "262144")
        assert_refused_only(cand(cands, "raid"), "arvmStrictMatchMismatch", "RAID level", "6 vs 5")
        client.create_group("ef", "EfA", "EfB")
        assert_pair_add_refused(client, "ef", "EfA/src", "EfB/seg", "arvmStrictMatchMismatch")
        assert_pair_add_refused(client, "ef", "EfA/src", "EfB/raid", "arvmStrictMatchMismatch")
        client.add_pair("ef", "EfA/src", "EfB/same")


def test_non_strict_models_only_warn_on_raid_and_segment(client):
    client.create_volume("SiteB/r5", "4GiB", raid_level="5", segment_size="256KiB")
    c = cand(client.candidates("SiteA/db", "SiteB"), "r5")
    assert c.eligible and c.reasons == ()
    assert any("RAID" in w for w in c.warnings) and any("segment" in w for w in c.warnings)


def test_ef600_strict_matching_host_protocol(lab_home):
    nv = {"drive_type": "nvme"}
    pools = (PoolSpec("nvme_pool", DriveType.NVME, 4 * TiB),)
    with _engine_with(lab_home, ("EfA", (("src", 4 * GiB, nv),), {"model": Model.EF600, "pools": pools}),
                      ("EfFc", (("dst", 4 * GiB, nv),), {"model": Model.EF600, "pools": pools,
                                                           "iscsi_ports": 0})) as client:
        c = cand(client.candidates("EfA/src", "EfFc"), "dst")
        assert_refused_only(c, "arvmStrictMatchMismatch", "host protocol")
