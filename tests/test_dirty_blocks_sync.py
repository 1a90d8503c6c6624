"""Syncs that send dirty blocks, not whole regions (issue 14), between the lab's array daemons.

What crosses the link for scattered 4 KiB writes is about the blocks written, and the
secondary ends byte-identical: after a plain sync, after a link cut in the middle of
one, after a restart of the primary mid-sync, and after random writes with random cuts.
"""
from __future__ import annotations

import os
import random

from test_replication_support import RS, committed, make_pair, volume_bytes, wait_for, wait_for_commits

B = 4096
MIB = 1 << 20


def relay_bytes(c) -> int:
    """Every byte the lab's link relay carried so far, both directions (the channel's wire)."""
    routes = c.call(lambda: c.engine.relay.status())["routes"]
    return sum(r["bytesToTarget"] + r["bytesFromTarget"] for r in routes.values())


def scattered_blocks(c, rng: random.Random, count: int, size: int) -> set[int]:
    """``count`` incompressible 4 KiB writes at 4 KiB-aligned random places; the blocks written."""
    blocks = set(rng.sample(range(size // B), count))
    for b in blocks:
        c.host_write("SiteA/v", b * B, os.urandom(B))
    return blocks


def sending(c) -> bool:
    return any(op["bytesDone"] > 0 and op["running"] for op in c.long_running_operations())


def test_scattered_4k_writes_send_about_the_blocks_written(client):
    c = client
    make_pair(c, "16MiB")
    c.host_write("SiteA/v", 0, os.urandom(16 * MIB))
    c.sync_now("G", wait=True)
    blocks = scattered_blocks(c, random.Random(1), 100, 16 * MIB)
    c.host_write("SiteA/v", 5 * RS + 3 * B + 10, os.urandom(2 * B))  # unaligned: three blocks of region 5
    blocks |= {(5 * RS) // B + i for i in (3, 4, 5)}
    written = len(blocks) * B
    pair = next(p for p in c.pairs() if p.array == "SiteA")  # over REST, as the Guru's forecast reads it
    assert pair.unsynchronized_bytes == len({b * B // RS for b in blocks}) * RS
    assert pair.unsynchronized_block_bytes == written  # what the next sync stages
    before = relay_bytes(c)
    stats = c.sync_now("G", wait=True)
    wire = relay_bytes(c) - before
    # The payload counts the regions brought up to date (as for zero regions); the wire, the blocks.
    assert stats.outcome == "committed" and stats.bytes_payload == len({b * B // RS for b in blocks}) * RS
    assert written <= stats.bytes_sent <= 1.02 * written  # incompressible: headers only on top
    assert wire <= 1.05 * written + 16 * 1024  # the calls of one sync (begin, commit) cost a few KiB
    assert stats.staged_bytes == written  # what the secondary's journal took: the blocks
    assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")
    assert c.verify("G")["identical"]


def test_a_link_cut_in_the_middle_resumes_with_blocks_and_ends_identical(client):
    c = client
    make_pair(c, "16MiB")
    c.host_write("SiteA/v", 0, os.urandom(8 * MIB))  # the staging journal of a sync of it fits the secondary's
    c.sync_now("G", wait=True)
    rng = random.Random(2)
    blocks = set()
    for r in range(128):  # a block or two in every region written: all sent as pieces
        for b in rng.sample(range(RS // B), rng.choice((1, 2))):
            c.host_write("SiteA/v", r * RS + b * B, os.urandom(B))
            blocks.add(r * RS // B + b)
    c.call(lambda: c.engine.pace_sender("SiteA", 256 * 1024))  # ~2 s: time to cut it mid-way
    c.sync_now("G")
    wait_for(lambda: sending(c), 20, "the sync to be sending")
    c.lab_link(True)
    wait_for(lambda: c.group("G", "SiteA").status == "paused", 20, "the group to pause")
    later = os.urandom(3 * B)
    c.host_write("SiteA/v", 7 * RS + 2 * B, later)  # after the capture: the next recovery point's
    c.call(lambda: c.engine.pace_sender("SiteA", None))
    c.lab_link(False)
    stats = wait_for(lambda: len(committed(c)) >= 3 and committed(c)[-1], 30, "the cut sync to commit")
    outcomes = [s.outcome for s in c.sync_history("G")]
    assert any(o.startswith("interrupted") for o in outcomes) and not any(o.startswith("abandoned") for o in outcomes)
    assert stats.bytes_sent < 1.5 * len(blocks) * B  # resumed, not sent over again
    c.sync_now("G", wait=True)
    assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")
    assert c.host_read("SiteB/v", 7 * RS + 2 * B, 3 * B) == later


def test_a_primary_restarted_mid_sync_resumes_with_whole_regions_and_ends_identical(client):
    """After a restart the dirty blocks are gone (memory only): the captured regions go whole, never a full sync."""
    c = client
    make_pair(c, "16MiB")
    c.host_write("SiteA/v", 0, os.urandom(8 * MIB))
    c.sync_now("G", wait=True)
    rng = random.Random(3)
    regions = sorted(rng.sample(range(256), 65))  # 65 blocks: not a whole number of regions
    for r in regions:
        c.host_write("SiteA/v", r * RS + rng.randrange(RS // B) * B, os.urandom(B))
    c.call(lambda: c.engine.pace_sender("SiteA", 64 * 1024))
    c.sync_now("G")
    wait_for(lambda: sending(c), 20, "the sync to be sending")
    c.call(lambda: c.engine.stop_array("SiteA"))
    c.call(lambda: c.engine.start_array("SiteA"))
    c.sync_now("G", wait=True, after_running=True)
    stats = committed(c)[-1]
    assert any(e.code == "arvmSyncResumed" for e in c.events("SiteA"))
    assert stats.bytes_payload <= len(regions) * RS  # at most the regions being written
    c.host_write("SiteA/v", 3 * RS + B, os.urandom(B))
    assert c.sync_now("G", wait=True).bytes_sent < RS // 2  # a fresh capture knows its blocks again
    assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")
    assert c.verify("G")["identical"]


def test_random_writes_and_random_cuts_end_byte_identical(client):
    """Property-style: writes of random sizes at random offsets (zeros and trims too), cuts at random moments."""
    c = client
    size = 4 * MIB
    make_pair(c, "4MiB")
    rng = random.Random(int.from_bytes(os.urandom(4), "little"))
    seed = rng.getrandbits(32)
    rng = random.Random(seed)
    for round_ in range(4):
        for _ in range(rng.randrange(5, 40)):
            n = rng.choice((1, 100, B, B + 1, 3 * B, RS, RS + 5000, 200 * 1024))
            off = rng.randrange(0, size - n)
            kind = rng.random()
            if kind < 0.1:
                c.host_trim("SiteA/v", off, n)
            elif kind < 0.2:
                c.host_write("SiteA/v", off, bytes(n))
            else:
                c.host_write("SiteA/v", off, rng.randbytes(n))
        cut = rng.random() < 0.6
        if cut:
            c.call(lambda: c.engine.pace_sender("SiteA", 512 * 1024))
        c.sync_now("G")
        if cut:
            wait_for(lambda: sending(c) or c.group("G", "SiteA").status == "optimal", 20, "the sync to send")
            c.lab_link(True)
            c.call(lambda: c.engine.pace_sender("SiteA", None))
            c.lab_link(False)
        wait_for_commits(c, "G", round_ + 2, 30)
        assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v"), f"round {round_}, seed {seed}"


def test_host_writes_during_a_sync_copy_aside_only_the_blocks_it_sends(client):
    """The PIT preserves what the sync reads: a captured region's dirty blocks, not the rest of it.

    A write elsewhere in a captured region copies nothing (no reserved capacity used);
    a write on a captured block copies it; the recovery point is the capture instant.
    """
    c = client
    make_pair(c, "16MiB")
    c.host_write("SiteA/v", 0, os.urandom(16 * MIB))
    c.sync_now("G", wait=True)  # also where SiteA learns that SiteB takes pieces
    for r in range(96):
        c.host_write("SiteA/v", r * RS + 3 * B, os.urandom(B))
    captured = volume_bytes(c, "SiteA/v")

    def pit_bytes() -> int:
        return next(p for p in c.pairs() if p.array == "SiteA").reserved_capacity.pit_bytes

    c.call(lambda: c.engine.pace_sender("SiteA", 64 * 1024))  # 64 regions a frame: the rest waits seconds
    c.sync_now("G")
    wait_for(lambda: sending(c), 20, "the sync to be sending")
    unsent = range(72, 96)
    for r in unsent:
        c.host_write("SiteA/v", r * RS + 9 * B, os.urandom(B))  # not a block the sync sends
    assert pit_bytes() <= B  # the PIT file's header only
    for r in unsent:
        c.host_write("SiteA/v", r * RS + 3 * B, os.urandom(B))  # a block it sends
    assert pit_bytes() == B + len(unsent) * RS  # a slot each, holding one block
    c.call(lambda: c.engine.pace_sender("SiteA", None))
    wait_for_commits(c, "G", 3)
    assert volume_bytes(c, "SiteB/v") == captured
    assert c.sync_now("G", wait=True).outcome == "committed"
    assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")


def test_a_secondary_that_stops_taking_pieces_mid_sync_fails_it_and_the_next_sync_sends_whole_regions(
        client, daemon_lab):
    """A capture that preserved only dirty blocks is never sent as whole regions (they would mix two instants)."""
    c = client
    make_pair(c, "16MiB")
    c.host_write("SiteA/v", 0, os.urandom(8 * MIB))
    c.sync_now("G", wait=True)
    for r in range(96):
        c.host_write("SiteA/v", r * RS + 3 * B, os.urandom(B))
    c.call(lambda: c.engine.pace_sender("SiteA", 64 * 1024))
    c.sync_now("G")
    wait_for(lambda: sending(c), 20, "the sync to be sending")
    c.lab_link(True)
    wait_for(lambda: c.group("G", "SiteA").status == "paused", 20, "the group to pause")
    receiver = daemon_lab.daemon("SiteB").engine.receiver
    begin = receiver.begin

    def begin_of_an_older_release(*args, **kwargs):  # one that takes whole regions only
        answer = begin(*args, **kwargs)
        answer.pop("partialRegions")
        return answer

    receiver.begin = begin_of_an_older_release
    c.host_write("SiteA/v", 90 * RS + 9 * B, os.urandom(B))  # not preserved: it must not reach the point
    c.call(lambda: c.engine.pace_sender("SiteA", None))
    c.lab_link(False)
    wait_for(lambda: any(s.outcome.startswith("failed") for s in c.sync_history("G")), 30, "the sync to fail")
    failed = [s.outcome for s in c.sync_history("G") if s.outcome.startswith("failed")]
    assert "no longer takes regions as dirty-block pieces" in failed[0]
    stats = c.sync_now("G", wait=True)
    assert stats.outcome == "committed" and stats.bytes_sent >= 96 * RS  # whole regions this time
    assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")


def test_a_region_rewritten_with_zeros_stages_nothing_and_the_history_says_so(client):
    c = client
    make_pair(c, "16MiB")
    c.host_write("SiteA/v", 0, os.urandom(4 * MIB))
    c.sync_now("G", wait=True)
    c.host_write("SiteA/v", 0, bytes(4 * MIB))
    stats = c.sync_now("G", wait=True)
    assert stats.unique_changed_bytes == 4 * MIB and stats.staged_bytes == 0
    assert c.sync_history("G")[-1].staged_bytes == 0  # over REST, as the Guru's forecast reads it
    assert volume_bytes(c, "SiteB/v") == volume_bytes(c, "SiteA/v")
