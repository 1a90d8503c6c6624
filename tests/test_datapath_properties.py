"""Property tests: random host writes, syncs, link drops and crashes.

A model keeps the primary's bytes, the bytes at each capture instant and the last
committed recovery point; after every step the secondary volume must hold exactly
the committed point (never a mix), and after a crash the change log must still
know every region that differs from it, without asking for a full sync.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.datapath import ChangeLog, PitStore, Staging, allocated_regions
from core.datapath.pit import HEADER_SIZE as PIT_HEADER
from core.errors import ReservedCapacityFull

RS = 4096
REGIONS = 12
SIZE = (REGIONS - 1) * RS + 1000  # partial last region


class Crash(Exception):
    """Stands for kill -9 in the middle of an operation."""


class MirrorModel:
    """A primary volume, its mirror on a secondary volume, and the model of both."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="amc-datapath-")
        self.prim_path = os.path.join(self.dir, "primary")
        self.sec_path = os.path.join(self.dir, "secondary")
        for path in (self.prim_path, self.sec_path):
            with open(path, "wb") as f:
                f.truncate(SIZE)
        self.prim_fd = os.open(self.prim_path, os.O_RDWR)
        self.prim = bytearray(SIZE)
        self.committed = bytes(SIZE)
        self.pit_budget = 1 << 30
        self.open_primary()
        self.open_secondary()
        self.sync = None
        self.transfers = 0
        self.since_completed_capture: set[int] = set()  # regions written since the last completed capture
        self.since_capture: set[int] = set()

    def teardown(self):
        self.log.close()
        self.pit.close()
        self.stage.close()
        os.close(self.prim_fd)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------
    def open_primary(self):
        self.log = ChangeLog.open(os.path.join(self.dir, "changelog"), SIZE, RS)
        self.pit = PitStore.open(os.path.join(self.dir, "pit"), self.prim_fd, RS, lambda: self.pit_budget)

    def open_secondary(self):
        self.stage = Staging.open(os.path.join(self.dir, "staging"), self.sec_path, region_size=RS)
        self.durable_end = os.path.getsize(self.stage.path)

    def secondary_bytes(self):
        with open(self.sec_path, "rb") as f:
            return f.read()

    def fail_sync(self):
        self.pit.end()
        self.log.abort()
        self.stage.discard()
        self.sync = None

    # -- initial synchronization (direct mode) --------------------------------------
    def initial_sync(self, writes, crash_after):
        for region, value in writes:
            length = min(RS, SIZE - region * RS)
            os.pwrite(self.prim_fd, bytes([value]) * length, region * RS)
            self.prim[region * RS : region * RS + length] = bytes([value]) * length
        regions = allocated_regions(self.prim_path, SIZE, RS).tolist()
        assert {r for r, _ in writes} <= set(regions)
        self.stage.begin("initial", {"id": 0}, direct=True)
        flushed = set()
        for n, region in enumerate(regions):
            if n == crash_after:  # interrupted initial sync: close without cleanup, resume
                self.stage.close()
                self.open_secondary()
                assert self.stage.begin("initial", {"id": 0}, direct=True) is True
                assert {o // RS for o in self.stage.staged()} == flushed
            if region * RS in self.stage.staged():
                continue
            data = os.pread(self.prim_fd, RS, region * RS)
            self.stage.put(region * RS, data)
            if n % 2 == 0:
                self.stage.flush()
                flushed = {o // RS for o in self.stage.staged()}
        self.stage.prepare()
        self.stage.commit()
        self.committed = bytes(self.prim)
        assert self.secondary_bytes() == self.committed
        assert self.stage.last_committed() == {"id": 0}
        self.durable_end = os.path.getsize(self.stage.path)

    # -- host I/O -------------------------------------------------------------------
    def host_write(self, offset, length, value):
        length = min(length, SIZE - offset)
        self.log.mark(offset, length)
        try:
            self.pit.before_write(offset, length)
        except ReservedCapacityFull:
            self.fail_sync()  # the pair would go Failed; the host write still proceeds
        os.pwrite(self.prim_fd, bytes([value]) * length, offset)
        self.prim[offset : offset + length] = bytes([value]) * length
        touched = set(range(offset // RS, (offset + length - 1) // RS + 1))
        self.since_completed_capture |= touched
        self.since_capture |= touched

    def set_pit_budget(self, budget):
        self.pit_budget = budget

    # -- the sync -------------------------------------------------------------------
    def start_sync(self):
        if self.sync is not None:
            return
        regions = self.log.capture()
        self.pit.begin(regions)
        self.transfers += 1
        tid = f"t{self.transfers}"
        assert self.stage.begin(tid, {"id": self.transfers}) is False
        self.durable_end = os.path.getsize(self.stage.path)
        self.sync = {"tid": tid, "id": self.transfers, "regions": set(regions.tolist()),
                     "snapshot": bytes(self.prim), "to_send": sorted(regions.tolist()), "unacked": set(),
                     "acked": set()}
        self.since_capture = set()

    def send(self, count):
        sync = self.sync
        if sync is None:
            return
        for region in sync["to_send"][:count]:
            data = self.pit.read_region(region)
            assert data == sync["snapshot"][region * RS : region * RS + len(data)]
            self.stage.put(region * RS, data)
            sync["unacked"].add(region)
        del sync["to_send"][:count]
        if count:
            assert self.secondary_bytes() == self.committed  # the previous point, untouched

    def ack(self):
        """The secondary made what it holds durable; the primary releases those regions."""
        if self.sync is None:
            return
        self.stage.flush()
        self.durable_end = os.path.getsize(self.stage.path)
        for region in self.sync["unacked"]:
            self.pit.mark_sent(region)
        self.sync["acked"] |= self.sync["unacked"]
        self.sync["unacked"] = set()

    def link_drop_and_resume(self):
        sync = self.sync
        if sync is None:
            return
        held = {o // RS for o in self.stage.staged()}
        sync["to_send"] = sorted(sync["regions"] - held)

    def commit(self, crash):
        """Send what is left, then the group commits."""
        sync = self.sync
        if sync is None:
            return
        self.send(len(sync["to_send"]))
        self.stage.prepare()
        if crash == "secondary_mid_apply":
            records = self.stage.journal_records()
            stage = self.stage

            def torn_apply():
                for offset, length, zero, pos in records[: len(records) // 2]:
                    os.pwrite(stage._base, bytes(length) if zero else os.pread(stage._fd, length, pos), offset)
                raise Crash

            self.stage._apply = torn_apply
            try:
                self.stage.commit()
            except Crash:
                pass
            else:
                raise AssertionError("commit did not reach the crash point")
            self.stage.close()
            self.open_secondary()
            assert self.stage.recovery.action == "reapplied"
        else:
            self.stage.commit()
        self.committed = sync["snapshot"]
        assert self.secondary_bytes() == self.committed
        assert self.stage.last_committed() == {"id": sync["id"]}
        self.sync = None
        if crash == "primary_before_complete":
            self.crash_primary_now()  # the log keeps the sent regions: a resend, not a loss
            return
        self.log.complete()
        self.pit.end()
        self.since_completed_capture = set(self.since_capture)

    def abort(self):
        if self.sync is not None:
            self.fail_sync()

    # -- crashes --------------------------------------------------------------------
    def crash_primary_now(self):
        self.log.close()  # kill -9: the page cache survives, memory does not
        self.pit.close()
        self.open_primary()
        self.sync = None
        pending = set(self.log.pending_regions().tolist())
        assert pending <= self.since_completed_capture, "the restart would resend never-written regions"

    def crash_primary(self):
        self.crash_primary_now()

    def power_loss_secondary(self, cut):
        """Power loss: the journal keeps what was fsynced plus any prefix of the rest."""
        self.stage.close()
        size = os.path.getsize(os.path.join(self.dir, "staging"))
        keep = self.durable_end + int((size - self.durable_end) * cut)
        os.truncate(os.path.join(self.dir, "staging"), keep)
        self.open_secondary()
        assert self.secondary_bytes() == self.committed
        if self.sync is not None:
            assert self.stage.recovery.action == "resumable"
            assert self.stage.begin(self.sync["tid"], {"id": self.sync["id"]}) is True
            held = {o // RS for o in self.stage.staged()}
            assert self.sync["acked"] <= held, "an acknowledged region was lost"
            self.sync["unacked"] &= held
            self.sync["to_send"] = sorted(self.sync["regions"] - held)

    # -- invariants -----------------------------------------------------------------
    def log_knows_every_difference(self):
        pending = set(self.log.pending_regions().tolist())
        differs = {r for r in range(REGIONS)
                   if self.prim[r * RS : (r + 1) * RS] != self.committed[r * RS : (r + 1) * RS]}
        assert differs <= pending
        assert pending <= self.since_completed_capture | (self.sync["regions"] if self.sync else set())

    def budgets_reported(self):
        assert self.log.bytes_used == os.path.getsize(self.log.path)
        assert self.pit.bytes_used == PIT_HEADER + self.pit.preserved_count * RS
        assert self.stage.bytes_used >= 16


WRITE = st.tuples(st.just("host_write"), st.integers(0, SIZE - 1), st.integers(1, 3 * RS), st.integers(0, 255))
DURING_SYNC = st.one_of(
    WRITE, WRITE, WRITE,
    st.tuples(st.just("send"), st.integers(1, 4)), st.tuples(st.just("send"), st.integers(1, 4)),
    st.just(("ack",)),
    st.just(("link_drop_and_resume",)),
    st.tuples(st.just("power_loss_secondary"), st.floats(0, 1)),
    st.tuples(st.just("set_pit_budget"), st.sampled_from([1 << 30, 1 << 30, 1 << 30, PIT_HEADER + 2 * RS, PIT_HEADER])),
)
ENDING = st.one_of(
    st.tuples(st.just("commit"), st.sampled_from([None, None, "secondary_mid_apply", "primary_before_complete"])),
    st.just(("abort",)),
    st.just(("crash_primary",)),
    st.tuples(st.just("power_loss_secondary"), st.floats(0, 1)),  # then the next cycle starts anew
)
CYCLE = st.tuples(st.lists(WRITE, max_size=6), st.lists(DURING_SYNC, max_size=14), ENDING)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(st.tuples(st.integers(0, REGIONS - 1), st.integers(1, 255)), max_size=5),
    crash_after=st.integers(0, 6),
    cycles=st.lists(CYCLE, min_size=1, max_size=5),
)
def test_random_host_writes_syncs_and_crashes(initial, crash_after, cycles):
    """Sync cycles (writes, capture, interleaved writes/sends/acks/link drops/power
    losses, then commit, abort or crash). After every step the secondary holds
    exactly the last committed point and the change log knows every difference
    without asking for a full sync."""
    model = MirrorModel()
    try:
        model.initial_sync(initial, crash_after)
        for before, during, ending in cycles:
            steps = list(before) + [("start_sync",)] + list(during) + [ending]
            for name, *args in steps:
                getattr(model, name)(*args)
                model.log_knows_every_difference()
                model.budgets_reported()
        model.pit_budget = 1 << 30
        model.commit(None)  # a final, undisturbed sync converges on the primary's bytes
        model.start_sync()
        model.commit(None)
        assert model.secondary_bytes() == bytes(model.prim)
    finally:
        model.teardown()


def test_pending_after_many_random_writes_is_exactly_written(tmp_path):
    """Vectorised marks of random ranges equal a per-region reference model."""
    rng = np.random.default_rng(7)
    size = 1000 * RS + 123
    log = ChangeLog.open(tmp_path / "cl", size, RS)
    ref = np.zeros(1001, dtype=bool)
    for _ in range(500):
        off = int(rng.integers(0, size))
        length = int(rng.integers(1, min(40 * RS, size - off) + 1))
        log.mark(off, length)
        ref[off // RS : (off + length - 1) // RS + 1] = True
    assert np.array_equal(log.pending_regions(), np.flatnonzero(ref))
    log.close()
    assert np.array_equal(ChangeLog.open(tmp_path / "cl", size, RS).pending_regions(), np.flatnonzero(ref))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(-RS, 70 * RS), st.integers(-1, 5 * RS)), max_size=40))
def test_changelog_mark_many_equals_one_mark_per_write(tmp_path_factory, writes):
    """The NBD server's batch announcement tracks exactly what per-write marks would, durably."""
    d = tmp_path_factory.mktemp("mm")
    size = 64 * RS
    batch = ChangeLog.open(str(d / "batch"), size, RS)
    single = ChangeLog.open(str(d / "single"), size, RS)
    batch.mark_many(writes)
    for offset, length in writes:
        if length > 0 and offset >= 0 and offset + length <= size:
            single.mark(offset, length)
    assert sorted(batch.pending_regions().tolist()) == sorted(single.pending_regions().tolist())
    batch.close()
    again = ChangeLog.open(str(d / "batch"), size, RS)  # what a crash leaves: the same set
    assert sorted(again.pending_regions().tolist()) == sorted(single.pending_regions().tolist())
