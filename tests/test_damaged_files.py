"""Damaged files on disk: one line naming the file and the fix, only the affected group stops.

A truncated group commit record once made every command fail with a
JSONDecodeError, and a damaged config.db gave a SQLAlchemy traceback. Records are
now versioned and checksummed; ``mirrorctl array check`` finds (and with
``--repair`` fixes) what can be fixed while the array is stopped.

The lab runs as array daemons (tests/daemon_lab.py); a damaged file is written while
they are stopped, and what the restarted daemons report is what a user sees.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.array import StorageArray
from core.array_check import check_array
from core.cli.main import main
from core.datapath import Staging
from core.datapath import changelog_file as cl
from core.errors import MirrorError
from core.replication import receiver
from core.store.database import read_array_name
from test_replication_support import RS, copy_lab, make_pair, open_lab, volume_bytes

GROUPS = Path("reserved") / ".groups"


@pytest.fixture(scope="module")
def mirrored_template(tmp_path_factory, lab_template):
    """(home, G's recovery point id on SiteB): SiteA/v -> SiteB/v synced twice, the daemons stopped.

    Prepared once for the module; every test damages its own copy (``mirrored_at``).
    """
    home = copy_lab(lab_template, tmp_path_factory.mktemp("mirrored") / "lab")
    c = open_lab(home)
    try:
        make_pair(c, "4MiB")
        c.host_write("SiteA/v", 3 * RS, os.urandom(RS))
        c.sync_now("G", wait=True)
        rp_id = c.call(lambda: c.engine.daemon("SiteB").engine.arrays["SiteB"].group("G").last_recovery_point_id)
    finally:
        c.close()
    return home, rp_id


@pytest.fixture
def mirrored_at(mirrored_template, tmp_path):
    """A copy of the mirrored lab for this test, and G's recovery point id on SiteB."""
    template, rp_id = mirrored_template
    return copy_lab(template, tmp_path / "mirrored"), rp_id


@pytest.fixture
def mirrored(mirrored_at):
    """The home of ``mirrored_at``."""
    return mirrored_at[0]


def site(home, name: str) -> Path:
    return home / "arrays" / name


def run_cli(capsys, home, *args):
    code = main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return code, out, err


# -- the configuration database --------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"this is not a database at all" * 200, bytes(8192)])
def test_a_damaged_or_empty_config_db_is_one_line_naming_the_file(lab_home, content):
    db = site(lab_home, "SiteB") / "config.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    db.write_bytes(content)
    with pytest.raises(MirrorError) as info:
        StorageArray.open(db.parent)
    e = info.value
    assert e.code == "arrayDatabaseDamaged"
    assert str(db) in e.message and "backup" in e.message and "\n" not in e.message
    assert db.read_bytes() == content  # nothing was written into it
    with pytest.raises(MirrorError) as named:  # what a daemon reads first, to name itself
        read_array_name(db)
    assert named.value.code == "arrayDatabaseDamaged" and str(db) in named.value.message
    StorageArray.open(site(lab_home, "SiteA")).close()  # the lock was released, the other array opens


def test_array_check_reports_a_damaged_database(capsys, lab_home):
    db = site(lab_home, "SiteB") / "config.db"
    Path(f"{db}-wal").unlink(missing_ok=True)
    db.write_bytes(b"garbage" * 1000)
    code, out, err = run_cli(capsys, lab_home, "array", "check", "SiteB")
    assert code == 3 and "Traceback" not in err
    assert "config.db" in out and "damaged" in out


# -- the group commit record ------------------------------------------------------------------
def test_a_truncated_commit_record_fails_only_its_group(mirrored):
    record = site(mirrored, "SiteB") / GROUPS / "G.commit"
    record.write_bytes(b'{"transfer": "G-2-ab')  # what a crash of the disk, not of the engine, leaves
    c = open_lab(mirrored)
    try:
        pair = next(p for p in c.pairs() if p.array == "SiteB")
        assert pair.status == "failed"
        assert str(record) in pair.reason and "array check" in pair.reason
        assert c.group("G", array="SiteB").status == "system_suspended"
        events = [e for e in c.events("SiteB") if e.code == "arvmCommitRecordDamaged"]
        assert len(events) == 1 and str(record) in events[0].message
        # the other array and the rest of SiteB work
        c.host_write("SiteA/v", 0, b"x" * 10)
        assert c.volume("SiteB/db_dr").name == "db_dr"
        # the secondary takes no transfer that would discard what the damaged commit was applying
        with pytest.raises(MirrorError) as info:
            c.sync_now("G", wait=True)
        assert info.value.code == "arvmCommitRecordDamaged" and str(record) in info.value.message
        assert record.exists()
    finally:
        c.close()


def test_a_version_1_commit_record_is_still_read():
    data = receiver.decode_record(b'{"transfer": "t", "volumes": ["v"], "recovery_point": {"id": 3}}',
                                  receiver.COMMIT_MAGIC, "G.commit", receiver.COMMIT_KEYS)
    assert data["transfer"] == "t"
    raw = receiver.encode_record(receiver.COMMIT_MAGIC, data)
    assert receiver.decode_record(raw, receiver.COMMIT_MAGIC, "G.commit") == data
    for damaged in (raw[:-3], raw[:10], raw[:-1] + b"}" if raw[-1:] != b"}" else raw[:-1] + b"]",
                    b'{"transfer": "t"}'):
        with pytest.raises(receiver.DamagedRecord, match="G.commit is damaged"):
            receiver.decode_record(damaged, receiver.COMMIT_MAGIC, "G.commit", receiver.COMMIT_KEYS)


def test_a_damaged_sync_hint_is_removed_with_an_event_and_the_sync_runs(mirrored):
    hint = site(mirrored, "SiteA") / GROUPS / "G.inflight"
    hint.write_bytes(b"\x00\x01garbage")
    c = open_lab(mirrored)
    try:
        c.host_write("SiteA/v", 9 * RS, os.urandom(RS))
        stats = c.sync_now("G", wait=True)
        assert stats.outcome == "committed"
        events = [e for e in c.events("SiteA") if e.code == "arvmSyncHintDamaged"]
        assert len(events) == 1 and str(hint) in events[0].message
        assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")
    finally:
        c.close()


# -- mirrorctl array check ----------------------------------------------------------------------
def test_array_check_refuses_while_the_array_runs(capsys, lab_home):
    c = open_lab(lab_home)
    try:
        code, out, err = run_cli(capsys, lab_home, "array", "check", "SiteB")
    finally:
        c.close()
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "stop the array first: mirrorctl lab array stop SiteB" in err


def test_array_check_finds_nothing_in_a_healthy_array(capsys, mirrored):
    code, out, err = run_cli(capsys, mirrored, "array", "check", str(site(mirrored, "SiteA")))
    assert code == 0 and "No problem found" in out


def test_repair_sets_a_damaged_commit_record_aside_and_the_group_syncs_again(capsys, mirrored):
    record = site(mirrored, "SiteB") / GROUPS / "G.commit"
    record.write_bytes(b"\x00" * 7)
    c = open_lab(mirrored)  # SiteB's daemon starts, the group fails on it
    try:
        assert next(p for p in c.pairs() if p.array == "SiteB").status == "failed"
    finally:
        c.close()
    code, out, err = run_cli(capsys, mirrored, "array", "check", "SiteB")
    assert code == 3 and str(record) in out
    code, out, err = run_cli(capsys, mirrored, "array", "check", "SiteB", "--repair")
    assert code == 0, out + err
    assert not record.exists() and list(record.parent.glob("G.commit.damaged*"))
    c = open_lab(mirrored)
    try:
        assert all(p.status != "failed" for p in c.pairs())
        c.host_write("SiteA/v", 11 * RS, os.urandom(RS))
        assert c.sync_now("G", wait=True).outcome == "committed"
        assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")
    finally:
        c.close()


def _stage(home, transfer: str, rp_id: int, offset: int, data: bytes) -> None:
    """What a transfer staged on SiteB/v leaves in its journal (prepared, not applied)."""
    d = site(home, "SiteB")
    journal = next((d / "reserved").rglob("staging.dat"))
    st = Staging.open(journal, d / "volumes" / "v.img", region_size=RS)
    st.begin(transfer, {"id": rp_id, "time": "2030-01-01T00:00:00+00:00"})
    st.put(offset, data)
    st.prepare()
    st._fd, fd = -1, st._fd  # drop it as a crash would: the journal stays as written
    os.close(fd)
    st.close()


def test_repair_re_applies_the_journal_of_the_recorded_recovery_point(mirrored_at):
    """The database already names the journal's recovery point: the commit was decided, roll it forward."""
    mirrored, rp_id = mirrored_at
    data = os.urandom(RS)
    _stage(mirrored, "G-x", rp_id, 20 * RS, data)
    (site(mirrored, "SiteB") / GROUPS / "G.commit").write_bytes(b"{")
    report = check_array(site(mirrored, "SiteB"), repair=True)
    assert report.problems_left == 0
    assert any("re-applied" in f.repair for f in report.findings)
    with open(site(mirrored, "SiteB") / "volumes" / "v.img", "rb") as f:
        f.seek(20 * RS)
        assert f.read(RS) == data


def test_repair_keeps_a_newer_transfer_for_the_primary_to_resume(mirrored_at):
    mirrored, rp_id = mirrored_at
    before = (site(mirrored, "SiteB") / "volumes" / "v.img").read_bytes()
    _stage(mirrored, "G-y", rp_id + 1, 20 * RS, os.urandom(RS))
    (site(mirrored, "SiteB") / GROUPS / "G.commit").write_bytes(b"{")
    report = check_array(site(mirrored, "SiteB"), repair=True)
    assert report.problems_left == 0 and any("resume" in f.repair for f in report.findings)
    assert (site(mirrored, "SiteB") / "volumes" / "v.img").read_bytes() == before  # not applied


def test_check_and_repair_a_damaged_change_log_and_hint(capsys, mirrored):
    d = site(mirrored, "SiteA")
    log = next((d / "reserved").rglob("changes.log"))
    with open(log, "r+b") as f:
        f.seek(cl.HEADER_SIZE)
        f.write(bytes(cl.BLOCK_SIZE))
    (d / GROUPS / "G.inflight").write_bytes(b"nonsense")
    code, out, err = run_cli(capsys, mirrored, "array", "check", str(d))
    assert code == 3 and str(log) in out and "G.inflight" in out
    assert cl.inspect(log, 4 << 20, RS).damaged_blocks == (0,)  # checking changed nothing
    code, out, err = run_cli(capsys, mirrored, "array", "check", str(d), "--repair")
    assert code == 0, out
    assert cl.inspect(log, 4 << 20, RS).damaged_blocks == ()
    assert not (d / GROUPS / "G.inflight").exists()
    code, out, err = run_cli(capsys, mirrored, "array", "check", str(d))
    assert code == 0


def test_check_lists_a_missing_volume_file_and_a_missing_change_log(capsys, mirrored):
    d = site(mirrored, "SiteA")
    (d / "volumes" / "files.img").unlink()
    log = next((d / "reserved").rglob("changes.log"))
    log.unlink()
    code, out, err = run_cli(capsys, mirrored, "array", "check", str(d))
    assert code == 3 and "files.img" in out and str(log) in out
    code, out, err = run_cli(capsys, mirrored, "array", "check", str(d), "--repair")
    assert code == 3  # a lost volume file cannot be repaired here
    assert cl.inspect(log, 4 << 20, RS).bits[:64].all()  # the change log was rebuilt all changed
    assert "restore" in out


def test_a_json_check_report(capsys, mirrored):
    code = main(["--home", str(mirrored), "--json", "array", "check", "SiteA"])
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert code == 0 and data["problems"] == [] and data["array"] == "SiteA"


def test_repair_moves_a_foreign_change_log_aside_and_rebuilds_it(capsys, mirrored):
    d = site(mirrored, "SiteA")
    log = next((d / "reserved").rglob("changes.log"))
    log.write_bytes(b"NOTALOG!" + bytes(1000))
    code, out, err = run_cli(capsys, mirrored, "array", "check", str(d), "--repair")
    assert code == 0, out
    assert cl.inspect(log, 4 << 20, RS).bits[:64].all() and list(log.parent.glob("changes.log.damaged-*"))
    c = open_lab(mirrored)  # the array's daemon starts, and resends every region once
    try:
        assert c.sync_now("G", wait=True).unique_changed_bytes == 4 << 20
        assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")
    finally:
        c.close()
