"""Property: every committed recovery point is the primary's image at its sync instant (SPEC §2, §5).

Random sequences of host writes (random data, zeros, fill patterns), trims, syncs,
link cuts/restores (the lab's link relay) and restarts of both array daemons run
against a small mirrored pair. A model keeps the primary's bytes; at every committed
recovery point the secondary must hold exactly the model's bytes of that instant, a
restart must leave it on the last recovery point (never a mix), and no sync — after a
restart included — may send more than the regions changed since the last committed
recovery point. (kill -9 of a daemon process: tests/test_replication_crash.py.)
"""
from __future__ import annotations

import random
import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import MirrorError
from test_replication_support import RS, open_lab, read_file, wait_for

SIZE = 2 << 20  # 32 regions
REGIONS = SIZE // RS

_offsets = st.integers(0, SIZE - 1)
_lengths = st.integers(1, 3 * RS)
write_op = st.tuples(st.just("write"), _offsets, _lengths, st.sampled_from(["random", "zeros", "fill"]),
                     st.integers(0, 2**32))
trim_op = st.tuples(st.just("trim"), _offsets, _lengths)
ops = st.lists(st.one_of(write_op, write_op, trim_op, st.just(("sync",)), st.just(("sync",)), st.just(("cut",)),
                         st.just(("restore",)), st.just(("crash",))), max_size=14)
pre_writes = st.lists(write_op, max_size=4)


def _data(kind: str, n: int, seed: int) -> bytes:
    if kind == "zeros":
        return bytes(n)
    if kind == "fill":
        return bytes([seed % 256]) * n
    return random.Random(seed).randbytes(n)


def _regions(offset: int, length: int) -> set[int]:
    return set(range(offset // RS, (offset + length - 1) // RS + 1))


class Run:
    """The lab's daemons under test and the model of what each side must hold."""

    def __init__(self, home):
        self.home = home
        self.client = open_lab(home)
        self.primary = bytearray(SIZE)  # the model of the primary volume, always current
        self.recovery_point = bytes(SIZE)  # the model at the last committed recovery point
        self.changed: set[int] = set()  # regions written since the last committed recovery point
        self.link_cut = False
        self.restarted = False

    def apply(self, op) -> None:
        c = self.client
        kind = op[0]
        if kind in ("write", "trim"):
            offset, length = op[1], min(op[2], SIZE - op[1])
            if kind == "write":
                data = _data(op[3], length, op[4])
                c.host_write("SiteA/v", offset, data)
            else:
                data = bytes(length)
                c.host_trim("SiteA/v", offset, length)
            self.primary[offset:offset + length] = data
            self.changed |= _regions(offset, length)
        elif kind == "sync":
            self.sync()
        elif kind == "cut":
            c.lab_link(True)
            self.link_cut = True
        elif kind == "restore":
            c.lab_link(False)
            self.link_cut = False
        elif kind == "crash":
            c.close()  # both arrays' daemons stop and start again; the page cache survives, as after kill -9
            self.client = open_lab(self.home, link_cut=self.link_cut)
            self.restarted = True
            self.check_secondary_holds_the_recovery_point()

    def sync(self) -> None:
        c = self.client
        if self.link_cut:
            try:
                c.sync_now("G", wait=True)
            except MirrorError as e:
                assert e.code == "arvmRemoteArrayUnreachable"
            else:
                raise AssertionError("a sync committed over a cut link")
            self.check_secondary_holds_the_recovery_point()
            return
        instant = bytes(self.primary)  # no write runs concurrently: the state when sync_now is called
        stats = wait_for(lambda: self._try_sync(), 10, "the group to accept a manual sync")
        assert stats.outcome == "committed", stats.outcome
        # never more than what changed since the last committed recovery point (no full sync)
        assert stats.bytes_payload <= len(self.changed) * RS, (stats, sorted(self.changed), self.restarted)
        assert stats.bytes_payload == len(self.changed) * RS
        self.recovery_point = instant
        self.changed = set()
        self.restarted = False
        self.check_secondary_holds_the_recovery_point()
        assert read_file(self.client.volume("SiteA/v").path) == instant

    def _try_sync(self):
        try:
            return self.client.sync_now("G", wait=True)
        except MirrorError as e:  # the group is resuming by itself after the link returned
            if e.code != "arvmManualSyncAlreadyInProgress":
                raise
            return None

    def check_secondary_holds_the_recovery_point(self) -> None:
        assert read_file(self.client.volume("SiteB/v").path) == self.recovery_point


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pre=pre_writes, steps=ops)
def test_every_recovery_point_matches_the_primary_at_its_instant(tmp_path_factory, lab_template, pre, steps):
    home = tmp_path_factory.mktemp("prop") / "lab"
    subprocess.run(["cp", "-a", "--sparse=always", str(lab_template), str(home)], check=True)
    run = Run(home)
    try:
        c = run.client
        c.create_volume("SiteA/v", SIZE)
        for op in pre:  # written before the pair exists: the initial sync carries them
            run.apply(op)
        c.create_volume("SiteB/v", SIZE)
        c.create_group("G", "SiteA", "SiteB", sync_mode="manual")
        c.add_pair("G", "SiteA/v", "SiteB/v", reserved_percent=100)
        wait_for(lambda: c.group("G").status == "optimal" and c.group("G").last_recovery_point, 10,
                 "the initial synchronization")
        init = c.group("G").last_sync
        assert init.kind == "initial" and init.bytes_payload <= len(run.changed) * RS
        run.recovery_point = bytes(run.primary)
        run.changed = set()
        run.check_secondary_holds_the_recovery_point()
        for op in steps:
            run.apply(op)
        if run.link_cut:
            run.apply(("restore",))
        run.sync()
        assert run.client.verify("G")["identical"]
    finally:
        run.client.close()
