"""Preserved data: the loser's writes of a role conflict are listed, restored into a new volume, deleted."""
from __future__ import annotations


import pytest

from core.errors import MirrorError, NotFound
from test_rest_support import rest  # noqa: F401  (fixture)
from test_replication_support import manual_mirror, wait_for

RS = 65536



@pytest.fixture
def resolved(client):
    """Group G in a role conflict resolved by keeping SiteB: SiteA's writes made while apart are preserved."""
    manual_mirror(client, "4MiB", first_write=b"A0A0" * 1024)
    client.lab_link(True)
    client.promote("G", "SiteB", force=True)
    client.host_write("SiteB/v_dr", 5 * RS, b"B" * 4096)
    client.host_write("SiteA/v", 3 * RS, b"Z" * 4096)  # what SiteA wrote while apart
    client.lab_link(False)
    wait_for(lambda: client.group("G", "SiteA").status == "role_conflict")
    client.guru_fix("role-conflict:G", "keep-SiteB")
    return client


def test_preserved_writes_are_listed_with_their_group_volume_and_size(resolved):
    (entry,) = resolved.preserved_data()
    assert (entry["array"], entry["group"], entry["volume"]) == ("SiteA", "G", "v")
    assert entry["regions"] == 1 and entry["bytes"] == RS and not entry["damaged"]
    assert resolved.preserved_data("SiteB") == []


def test_preserved_writes_restore_into_a_new_volume_in_place(resolved):
    (entry,) = resolved.preserved_data()
    assert resolved.preserved_restore(entry["id"], "v_rescued") == {"id": entry["id"], "volume": "SiteA/v_rescued"}
    assert resolved.volume("SiteA/v_rescued").capacity == resolved.volume("SiteA/v").capacity
    assert resolved.host_read("SiteA/v_rescued", 3 * RS, 4096) == b"Z" * 4096  # SiteA's write, back in place
    assert resolved.host_read("SiteA/v_rescued", 5 * RS, 4096) == b"B" * 4096  # the rest as the volume is now
    assert resolved.host_read("SiteA/v_rescued", 0, 4) == b"A0A0"
    assert resolved.host_read("SiteA/v", 3 * RS, 1) == b"\0"  # the mirrored volume itself is untouched
    assert "arvmPreservedDataRestored" in {e.code for e in resolved.events("SiteA")}


def test_preserved_writes_are_deleted_only_when_asked(resolved, tmp_path):
    (entry,) = resolved.preserved_data()
    out = resolved.preserved_export(entry["id"], str(tmp_path))
    assert sorted(p.rsplit("/", 1)[1] for p in out["files"]) == sorted([f"{entry['id']}.bin", f"{entry['id']}.json"])
    resolved.preserved_delete(entry["id"])
    assert resolved.preserved_data() == []
    with pytest.raises(NotFound) as e:
        resolved.preserved_delete(entry["id"])
    assert e.value.code == "preservedDataNotFound"
    with pytest.raises(MirrorError) as e:
        resolved.preserved_export("nope", str(tmp_path))
    assert e.value.code == "preservedDataNotFound"


def test_preserved_data_over_rest(resolved, rest):  # noqa: F811
    (entry,) = rest.ok("GET", "preserved-data")
    assert entry["volume"] == "v" and entry["bytes"] == RS
    one = rest.ok("GET", f"preserved-data/{entry['id']}")
    assert one["index"]["regions"][0]["offset"] == 3 * RS
    data = rest.get(f"preserved-data/{entry['id']}/data")
    assert data.status == 200 and data.body[:4096] == b"Z" * 4096
    assert rest.ok("POST", f"preserved-data/{entry['id']}/restore", {"volume": "v_copy"}, status=201)["volume"] \
        == "SiteA/v_copy"
    bad = rest.post(f"preserved-data/{entry['id']}/restore", {"volume": "v_copy"})
    assert bad.status == 422 and bad.error["retcode"] == "volumeLabelExists"
    assert rest.delete(f"preserved-data/{entry['id']}").status == 204
    assert rest.get(f"preserved-data/{entry['id']}").error["retcode"] == "preservedDataNotFound"
