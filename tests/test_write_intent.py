"""The write-intent log's cost (issue 14): activity log and group commit, with the crash rule kept.

Crash rule: every region that may differ from the secondary has its bit on disk
before its data is written. The activity log keeps the bits of regions being
rewritten across a commit (their next write costs no I/O); what a crash adds to a
resync is at most ``hot_regions`` of them. Group commit: batches of first writes
queued while an fdatasync runs share the next one.
"""
from __future__ import annotations

import asyncio
import os
import time

import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.datapath.changelog import HEAT_HALF_LIFE, ChangeLog
from core.nbd import DictProvider, NbdServerThread
from core.nbd import protocol as P
from core.nbd.backend import FileBackend

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from adversary.lab import NbdHost  # noqa: E402

RS = 64 * 1024
B = 4096


def reopened(log: ChangeLog, path, size: int) -> ChangeLog:
    """What a kill -9 leaves: the file as it is, the object dropped without close()."""
    os.close(log._fd)
    log._fd = -1
    return ChangeLog.open(path, size, RS)


def sync_cycle(log: ChangeLog) -> None:
    log.capture()
    log.complete()


def test_a_rewritten_region_keeps_its_bit_and_its_next_write_costs_no_fdatasync(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 100 * RS, RS, hot_regions=10)
    for _ in range(2):
        log.mark(3 * RS, B)  # rewritten: hot
    log.mark(7 * RS, B)  # written once: cleared at the commit as before
    sync_cycle(log)
    assert log.pending_regions().tolist() == []
    assert log.persisted_regions().tolist() == [3]
    before = log.fdatasyncs
    log.mark(3 * RS + B, B)
    assert log.fdatasyncs == before  # no durable update: the bit was still on disk
    log.mark(7 * RS, B)
    assert log.fdatasyncs == before + 1


def test_a_region_no_longer_written_leaves_the_activity_log(tmp_path, monkeypatch):
    log = ChangeLog.open(tmp_path / "cl", 100 * RS, RS, hot_regions=10)
    for _ in range(3):
        log.mark(5 * RS, B)
    for _ in range(5):  # back-to-back commits do not cool a region: time does
        sync_cycle(log)
    assert log.persisted_regions().tolist() == [5]
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 2 * HEAT_HALF_LIFE)
    sync_cycle(log)
    assert log.persisted_regions().tolist() == []


def test_after_a_kill_the_resync_is_the_changes_plus_at_most_hot_regions(tmp_path):
    """The bound kept: regions changed since the recovery point + at most ``hot_regions`` more."""
    size, hot = 400 * RS, 16
    path = tmp_path / "cl"
    log = ChangeLog.open(path, size, RS, hot_regions=hot)
    rng = np.random.default_rng(1)
    for r in rng.choice(400, 200, replace=False):  # 200 regions rewritten: more than the log keeps
        for _ in range(3):
            log.mark(int(r) * RS, B)
    sync_cycle(log)
    changed = sorted(int(r) for r in rng.choice(400, 30, replace=False))
    for r in changed:
        log.mark(r * RS + B, B)
    again = reopened(log, path, size)
    resent = set(again.pending_regions().tolist())
    assert set(changed) <= resent  # every region that may differ is known
    assert len(resent - set(changed)) <= hot
    assert len(resent) < 400  # never a full sync


def test_a_clean_close_drops_the_activity_log(tmp_path):
    path = tmp_path / "cl"
    log = ChangeLog.open(path, 50 * RS, RS, hot_regions=10)
    for _ in range(2):
        log.mark(1 * RS, B)
    sync_cycle(log)
    log.mark(9 * RS, B)  # pending: kept
    log.close()
    assert ChangeLog.open(path, 50 * RS, RS).pending_regions().tolist() == [9]


def test_concurrent_first_writes_to_different_regions_share_fdatasyncs(tmp_path):
    log = ChangeLog.open(tmp_path / "cl", 1000 * RS, RS)
    n = 20

    async def main():
        async def writer(r):
            ticket = log.queue_intents([(r * RS, B)])
            assert ticket is not None
            await log.make_durable(ticket)
            durable.append(r)

        durable: list[int] = []
        await asyncio.gather(*(writer(r * 37) for r in range(n)))
        return durable

    before = log.fdatasyncs
    durable = asyncio.run(main())
    assert sorted(durable) == [r * 37 for r in range(n)]
    assert log.fdatasyncs - before < n
    assert log.persisted_regions().tolist() == [r * 37 for r in range(n)]
    again = reopened(log, tmp_path / "cl", 1000 * RS)
    assert again.pending_regions().tolist() == [r * 37 for r in range(n)]


def test_a_bit_is_on_disk_before_make_durable_returns(tmp_path):
    """What the NBD server waits for before writing: the bit is in the file (and fdatasynced)."""
    path = tmp_path / "cl"
    log = ChangeLog.open(path, 100 * RS, RS)

    async def main():
        ticket = log.queue_intents([(42 * RS, B), (43 * RS - 1, 2)])
        await log.make_durable(ticket)
        assert log.queue_intents([(42 * RS + B, B)]) is None  # durable now: no wait

    asyncio.run(main())
    seen = ChangeLog.open(path, 100 * RS, RS)  # another reader of the file, the writer still open
    assert seen.pending_regions().tolist() == [42, 43]


def test_a_commit_while_an_intent_is_in_flight_keeps_its_bit(tmp_path):
    path = tmp_path / "cl"
    log = ChangeLog.open(path, 100 * RS, RS)
    log.mark(2 * RS, B)

    async def main():
        ticket = log.queue_intents([(5 * RS, B)])
        durable = asyncio.ensure_future(log.make_durable(ticket))
        await asyncio.sleep(0)  # the flush started: its bit is written, the fdatasync runs
        sync_cycle(log)  # the commit clears region 2, rewriting the block that holds region 5
        await durable

    asyncio.run(main())
    assert reopened(log, path, 100 * RS).pending_regions().tolist() == [5]


def test_nbd_writes_wait_for_the_intent_and_land_in_order(tmp_path):
    """A backend whose intent is slow: the server holds the requests, then writes them all, in order."""
    path = tmp_path / "vol"
    path.write_bytes(bytes(64 * RS))
    log = ChangeLog.open(tmp_path / "cl", 64 * RS, RS)

    class Mirrored(FileBackend):
        def intend_writes(self, ranges):
            ticket = log.queue_intents(ranges)
            return None if ticket is None else log.make_durable(ticket)

        def write(self, offset, data, fua=False):
            assert log.persisted_regions().tolist().count(offset // RS) == 1  # the crash rule
            super().write(offset, data, fua)

    backend = Mirrored("v", path)
    server = NbdServerThread(DictProvider({"v": backend}))
    server.start()
    writes = [((i * 7 % 64) * RS + (i % 16) * B, bytes([i % 251 + 1]) * B) for i in range(40)]
    writes.append((8 * RS, b"\x09" * (2 * 1024 * 1024)))  # a large write: announced with its header
    try:
        host = NbdHost(f"127.0.0.1:{server.port}", "v")
        try:  # pipelined: every request sent before any reply is read
            host.sock.sendall(b"".join(P.REQUEST.pack(P.REQUEST_MAGIC, 0, P.CMD_WRITE, i, off, len(data)) + data
                                       for i, (off, data) in enumerate(writes)))
            replies = [P.SIMPLE_REPLY.unpack(host._recv(P.SIMPLE_REPLY.size)) for _ in writes]
        finally:
            host.close()
    finally:
        server.stop()
        backend.close()
    assert [(err, cookie) for _, err, cookie in replies] == [(0, i) for i in range(len(writes))]
    image = bytearray(64 * RS)
    for off, data in writes:
        image[off:off + len(data)] = data
    assert path.read_bytes() == bytes(image)
    assert set(log.persisted_regions().tolist()) == {off // RS for off, _ in writes[:-1]} | set(range(8, 40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.tuples(st.integers(-RS, 70 * RS), st.integers(-1, 3 * RS)), max_size=16), max_size=6))
def test_every_region_of_a_queued_batch_is_durable_before_its_writes_run(tmp_path_factory, batches):
    """Whatever the batches (some out of range, some overlapping): once make_durable returns, on disk."""
    d = tmp_path_factory.mktemp("qi")
    size = 64 * RS
    log = ChangeLog.open(str(d / "cl"), size, RS)

    async def main():
        tickets = [log.queue_intents(batch) for batch in batches]
        await asyncio.gather(*(log.make_durable(t) for t in tickets if t is not None))

    asyncio.run(main())
    want = {r for batch in batches for off, n in batch if n > 0 and off >= 0 and off + n <= size
            for r in range(off // RS, (off + n - 1) // RS + 1)}
    assert set(log.persisted_regions().tolist()) == want
    assert all(log.queue_intents(batch) is None for batch in batches)
    assert set(reopened(log, str(d / "cl"), size).pending_regions().tolist()) == want
