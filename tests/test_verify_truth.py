"""verify tells the truth: how much it compared, and a distinct exit status when it compared nothing.

It used to print "identical" and exit 0 after skipping every region (all changed
since the recovery point), even while the group was System suspended and minutes
behind. Regions changed since the recovery point cannot be compared (the primary no
longer holds that image); the report now counts them, per pair and in total.
"""
from __future__ import annotations

import argparse
import os

import pytest

from core.cli.main import build_parser
from core.cli.sync import EXIT_MISMATCH, EXIT_NOT_VERIFIED, _verify
from test_replication_support import RS, make_pair, wait_for

SIZE = 4 << 20
REGIONS = SIZE // RS


def verify_cli(client, group: str = "G"):
    return _verify(client, argparse.Namespace(group=group))


def test_everything_compared_is_identical_and_says_how_much(client):
    make_pair(client, "4MiB")
    report = client.verify("G")
    (pair,) = report["pairs"]
    assert report["outcome"] == "identical" and report["identical"] is True
    assert pair["regionsCompared"] == REGIONS and pair["bytesCompared"] == SIZE
    assert pair["regionsSkipped"] == 0 and pair["bytesSkipped"] == 0
    assert report["compared"] == {"regions": REGIONS, "bytes": SIZE}
    assert report["skipped"] == {"regions": 0, "bytes": 0}
    result = verify_cli(client)
    assert result.exit_code == 0
    assert f"compared {REGIONS} of {REGIONS} region(s)" in result.text and "identical" in result.text


def test_a_partly_changed_volume_compares_the_rest(client):
    make_pair(client, "4MiB")
    client.host_write("SiteA/v", 3 * RS, os.urandom(2 * RS))
    report = client.verify("G")
    (pair,) = report["pairs"]
    assert pair["regionsSkipped"] == 2 and pair["bytesSkipped"] == 2 * RS
    assert pair["regionsCompared"] == REGIONS - 2 and pair["bytesCompared"] == SIZE - 2 * RS
    assert report["outcome"] == "identical"
    result = verify_cli(client)
    assert result.exit_code == 0 and "skipped 2 region(s)" in result.text


def test_nothing_compared_is_not_identical_and_exits_not_verified(client):
    """The field failure: every region changed since the recovery point, and verify said 'identical'."""
    make_pair(client, "4MiB")
    client.host_write("SiteA/v", 0, os.urandom(SIZE))
    report = client.verify("G")
    (pair,) = report["pairs"]
    assert report["identical"] is False and report["outcome"] == "notVerified"
    assert pair["outcome"] == "notVerified" and pair["regionsCompared"] == 0 and pair["bytesSkipped"] == SIZE
    assert "changed since the recovery point" in pair["reason"]
    assert report["recoveryPointAgeSeconds"] >= 0 and report["groupStatus"] == "optimal"
    result = verify_cli(client)
    assert result.exit_code == EXIT_NOT_VERIFIED != 0
    assert "identical" not in result.text.lower().replace("not identical", "")
    assert "NOT VERIFIED" in result.text and "compared 0" in result.text


def test_a_mismatch_still_wins_and_reports_what_was_compared(client):
    make_pair(client, "4MiB")
    path = client.volume("SiteB/v").path
    with open(path, "r+b") as f:
        f.seek(40 * RS)
        f.write(b"\xee" * 100)
    client.host_write("SiteA/v", 0, os.urandom(RS))
    report = client.verify("G")
    assert report["outcome"] == "mismatch" and report["identical"] is False
    assert report["pairs"][0]["regionsCompared"] == REGIONS - 1
    assert verify_cli(client).exit_code == EXIT_MISMATCH


def test_a_group_without_a_recovery_point_exits_not_verified(client):
    client.create_group("E", "SiteA", "SiteB", sync_mode="manual")
    result = verify_cli(client, "E")
    assert result.exit_code == EXIT_NOT_VERIFIED
    assert result.data["outcome"] == "notVerified" and "E" in result.text


def test_the_exit_statuses_are_in_the_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["verify"].format_help()
    assert f"{EXIT_NOT_VERIFIED}" in text and f"{EXIT_MISMATCH}" in text and "exit" in text.lower()


@pytest.mark.parametrize("status", [EXIT_MISMATCH, EXIT_NOT_VERIFIED])
def test_the_exit_statuses_are_distinct(status):
    assert status not in (0, 1, 2) and EXIT_MISMATCH != EXIT_NOT_VERIFIED


# -- online verify (DRBD's verify): differences found in the background are resent -------------------
def test_online_verify_marks_what_differs_and_the_next_sync_repairs_it(client, monkeypatch):
    from core.replication import online_verify

    monkeypatch.setattr(online_verify, "BATCH_BLOCKS", 1)  # 64 MiB = 4 digest blocks: 4 batches
    make_pair(client, "64MiB")
    client.host_write("SiteA/v", 700 * RS, os.urandom(4 * RS))
    client.sync_now("G", wait=True)
    path = client.volume("SiteB/v").path
    with open(path, "r+b") as f:  # a stray write on the secondary: the data path cannot see it
        f.seek(701 * RS + 10)
        f.write(b"\x5a" * 50)
    client.host_write("SiteA/v", 10 * RS, os.urandom(RS))  # changed since the recovery point: skipped
    report = client.online_verify("G")
    (pair,) = report["pairs"]
    assert pair["batches"] == 4 and pair["mismatchedBlocks"] == 1
    assert pair["regionsSkipped"] == 1 and pair["regionsCompared"] == 1023
    assert 1 <= report["regionsMarked"] <= 256
    events = [e for e in client.events("SiteA") if e.code == "arvmOnlineVerifyMismatch"]
    assert len(events) == 1 and f"{report['regionsMarked']} region(s)" in events[0].message
    assert client.group("G").unsynchronized_bytes >= (report["regionsMarked"] + 1) * RS
    problem = next(p for p in client.guru() if p.id == "verify-mismatch:G")
    assert str(report["regionsMarked"]) in problem.title
    client.guru_fix("verify-mismatch:G", "sync-now")  # the one action that repairs it
    wait_for(lambda: not [p for p in client.guru() if p.id == "verify-mismatch:G"], 20, "the repairing sync")
    with open(path, "rb") as f, open(client.volume("SiteA/v").path, "rb") as g:
        assert f.read() == g.read()
    assert client.verify("G")["outcome"] == "identical"


def test_online_verify_of_an_intact_mirror_marks_nothing(client):
    make_pair(client, "4MiB")
    before = client.group("G").unsynchronized_bytes
    report = client.online_verify("G")
    assert report["regionsMarked"] == 0 and report["regionsCompared"] == REGIONS
    assert client.group("G").unsynchronized_bytes == before
    assert any(e.code == "arvmOnlineVerify" for e in client.events("SiteA"))
