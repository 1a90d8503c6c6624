"""An array's mirror records (what listings read instead of the ORM rows) always say what its rows say now.

After every kind of write - committed, flushed, pending in memory, rolled back, bulk -
the records equal records made afresh from the rows, and the statuses read from them
are the ones the rows give.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from core import sides
from core.array import ArraySpec, PoolSpec, StorageArray
from core.domain import DriveType, PairStatus, Severity
from core.groups import GroupSettings
from core.mirror_records import group_record
from core.status import PairRuntime, pair_status, system_suspended
from core.store.schema import PairRow

MiB = 1 << 20


@pytest.fixture
def array(tmp_path: Path):
    a = StorageArray.create(tmp_path / "A", ArraySpec(name="A", pools=(PoolSpec("pool", DriveType.NVME, 1 << 40),)))
    for v in ("v0", "v1", "v2"):
        a.create_volume(v, MiB)
    for g, v in (("G0", "v0"), ("G1", "v1")):
        sides.create_group_side(a, g, "B", "primary", GroupSettings().to_params())
        sides.create_pair_side(a, g, v, f"{v}_dr", 20)
    yield a
    a.close()


def current(a: StorageArray) -> list:
    """Records made now from the rows themselves: what the kept records must equal."""
    return sorted((group_record(g) for g in a.groups()), key=lambda g: g.name)


def status_of(a: StorageArray, volume: str) -> str:
    g = next(g for g in a.group_records() if any(p.volume.name == volume for p in g.pairs))
    p = next(p for p in g.pairs if p.volume.name == volume)
    return pair_status(p, system_suspended(g), PairRuntime()).value


def test_records_follow_committed_changes_of_groups_pairs_and_volumes(array):
    a = array
    assert a.group_records() == current(a) and [g.name for g in a.group_records()] == ["G0", "G1"]
    assert status_of(a, "v0") == PairStatus.SYNCHRONIZING.value  # no initial sync yet
    sides.update_group_side(a, "G0", GroupSettings().updated(sync_interval_minutes=7).to_params())
    assert a.group_record("G0").sync_interval_minutes == 7 and a.group_records() == current(a)
    a.pair_of(a.volume("v1")).initial_sync_done = True
    a.commit()
    assert status_of(a, "v1") == PairStatus.OPTIMAL.value
    a.volume("v1").failed = True
    a.commit()
    assert status_of(a, "v1") == PairStatus.FAILED.value and a.group_records() == current(a)
    sides.remove_pair_side(a, "v0")
    assert a.group_record("G0").pairs == () and a.group_records() == current(a)
    sides.create_pair_side(a, "G0", "v2", "v2_dr", 20)
    assert [p.volume.name for p in a.group_record("G0").pairs] == ["v2"]
    sides.remove_pair_side(a, "v2")
    sides.delete_group_side(a, "G0")
    assert [g.name for g in a.group_records()] == ["G1"] and a.group_records() == current(a)


def test_a_change_not_yet_committed_shows_and_a_rollback_takes_it_back(array):
    a = array
    a.group_records()
    pair = a.pair_of(a.volume("v0"))
    pair.failed_reason = "reserved capacity full"  # in memory only, as a sync's failure is before its commit
    assert status_of(a, "v0") == PairStatus.FAILED.value
    assert a.group_record("G0").pairs[0].failed_reason == "reserved capacity full"
    a.db.rollback()
    assert status_of(a, "v0") == PairStatus.SYNCHRONIZING.value and a.group_records() == current(a)
    a.db.flush()  # nothing pending: nothing changes
    a.pair_of(a.volume("v1")).orphan = True
    a.db.flush()  # flushed, not committed: the records follow the session, as the rows do
    assert status_of(a, "v1") == PairStatus.ORPHAN.value
    a.db.rollback()
    assert status_of(a, "v1") == PairStatus.SYNCHRONIZING.value and a.group_records() == current(a)


def test_a_bulk_update_through_the_session_shows(array):
    a = array
    a.group_records()
    a.db.execute(update(PairRow).values(incomplete=True))
    a.commit()
    assert {status_of(a, v) for v in ("v0", "v1")} == {PairStatus.INCOMPLETE.value}
    assert a.group_records() == current(a)


def test_a_group_no_write_touched_keeps_its_record(array):
    """Writes to one group or to the event log leave the other groups' records as they were (nothing re-read)."""
    a = array
    before = {g.name: g for g in a.group_records()}
    a.log(Severity.INFO, "A", "test", "an event: a write to the database, none to a group")
    assert all(g is before[g.name] for g in a.group_records())
    a.pair_of(a.volume("v0")).recovery_point_available = True
    a.commit()
    after = {g.name: g for g in a.group_records()}
    assert after["G1"] is before["G1"] and after["G0"].pairs[0].recovery_point_available
    assert a.group_records() == current(a)

