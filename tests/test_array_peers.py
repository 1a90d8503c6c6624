"""Two arrays in two engines that share nothing but the mirroring channel, through the lab's link relay.

Each engine opens only its own array's data directory (as an array daemon does) and
knows the other only as a remote-array entry pointing at the relay. Cutting the relay
is a cut TCP path: nothing else tells the engines. Everything a user does — mirror,
sync, fail over, resolve a role conflict — must work from either side.
"""
from __future__ import annotations

import asyncio
import threading

import pytest

from core.errors import MirrorError
from core.lab import LAB_PASSWORDS
from core.lab.relay import LinkRelay
from core.runtime import BlockingEngine
from test_replication_support import wait_for as wait_until

DATA = b"SiteA-rp1" * 1000


class RelayThread:
    """The link relay on its own loop, as the lab runs it in its own process."""

    def __init__(self, routes: dict[str, str]):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="relay", daemon=True)
        self.thread.start()
        self.relay = LinkRelay(routes)
        self._run(self.relay.start())

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def _call(self, fn, *args):
        async def call():
            return fn(*args)
        return self._run(call())

    def address(self, name: str) -> str:
        return self.relay.address(name)

    def cut(self) -> None:
        self._call(self.relay.cut)

    def restore(self) -> None:
        self._call(self.relay.restore)

    def close(self) -> None:
        self._run(self.relay.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def _start(data_dir) -> BlockingEngine:
    return BlockingEngine(data_dir, purpose="pytest peer", timeout=120).start()


@pytest.fixture
def peers(lab_home):
    a_dir, b_dir = lab_home / "arrays" / "SiteA", lab_home / "arrays" / "SiteB"
    a, b = _start(a_dir), _start(b_dir)
    link = None
    try:
        addr = {n: e.call(lambda e=e, n=n: e.engine.get_array(n).channel_address) for n, e in (("SiteA", a), ("SiteB", b))}
        link = RelayThread(addr)
        a.add_remote_array("SiteB", [link.address("SiteB")], LAB_PASSWORDS["SiteB"])
        b.add_remote_array("SiteA", [link.address("SiteA")], LAB_PASSWORDS["SiteA"])
        wait_until(lambda: a.remote_arrays()[0]["reachable"] and b.remote_arrays()[0]["reachable"],
                   what="both arrays to see each other")
        yield a, b, link
    finally:
        a.close()
        b.close()
        if link is not None:
            link.close()


@pytest.fixture
def mirrored(peers):
    a, b, link = peers
    a.create_volume("SiteA/v", "16MiB")
    b.create_volume("SiteB/v_dr", "16MiB")
    a.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    a.add_pair("G", "SiteA/v", "SiteB/v_dr")
    a.host_write("SiteA/v", 0, DATA)
    a.sync_now("G", wait=True, after_running=True)
    return a, b, link


def status(engine, array):
    return engine.group("G", array).status


def test_mirror_between_two_engines_reaches_the_secondary(mirrored):
    a, b, _ = mirrored
    assert b.host_read("SiteB/v_dr", 0, len(DATA)) == DATA
    assert b.group("G", "SiteB").role == "secondary"
    assert status(a, "SiteA") == "optimal"
    with pytest.raises(MirrorError) as e:  # hosts cannot write a secondary
        b.host_write("SiteB/v_dr", 0, b"x")
    assert e.value.code == "arvmVolumeNotWritable"


def test_cut_link_pauses_both_sides_and_restore_resumes(mirrored):
    a, b, link = mirrored
    link.cut()
    wait_until(lambda: status(a, "SiteA") == "paused" and status(b, "SiteB") == "paused", what="paused on both sides")
    a.host_write("SiteA/v", 4096, b"after the cut")
    link.restore()
    wait_until(lambda: status(a, "SiteA") == "optimal", what="optimal again")
    a.sync_now("G", wait=True)
    assert b.host_read("SiteB/v_dr", 4096, 13) == b"after the cut"


def test_forced_promotion_then_restore_is_a_role_conflict_on_both_sides(mirrored):
    a, b, link = mirrored
    link.cut()
    wait_until(lambda: not b.remote_arrays()[0]["reachable"], what="SiteB to notice the cut")
    b.promote("G", "SiteB", force=True)
    b.host_write("SiteB/v_dr", 0, b"written on B while apart")
    a.host_write("SiteA/v", 65536, b"written on A while apart")
    link.restore()
    wait_until(lambda: status(a, "SiteA") == "role_conflict" and status(b, "SiteB") == "role_conflict",
               timeout=10, what="a role conflict on both sides within 10 s")
    # Each side's Guru offers keeping either array, from its own REST surface.
    problems = {p.id: p for p in b.guru()}
    actions = {x.id for x in problems["role-conflict:G"].actions}
    assert actions == {"keep-SiteA", "keep-SiteB"}
    b.guru_fix("role-conflict:G", "keep-SiteA")  # chosen on B, carried out by A
    wait_until(lambda: b.group("G", "SiteB").role == "secondary" and status(a, "SiteA") == "optimal",
               timeout=20, what="SiteB demoted and resynced")
    a.sync_now("G", wait=True, after_running=True)
    assert b.host_read("SiteB/v_dr", 0, len(DATA)) == DATA  # B's divergent write overwritten...
    assert b.host_read("SiteB/v_dr", 65536, 24) == b"written on A while apart"
    preserved = list((b.engine.get_array("SiteB").data_dir / "preserved").glob("G-v_dr-*.bin"))
    assert preserved and b"written on B while apart" in preserved[0].read_bytes()  # ...but kept


def test_double_forced_change_finishes_by_itself(mirrored):
    a, b, link = mirrored
    link.cut()
    wait_until(lambda: not a.remote_arrays()[0]["reachable"] and not b.remote_arrays()[0]["reachable"],
               what="both sides to notice the cut")
    a.demote("G", "SiteA", force=True)
    b.promote("G", "SiteB", force=True)
    b.host_write("SiteB/v_dr", 0, b"B is primary now")
    link.restore()
    wait_until(lambda: status(b, "SiteB") == "optimal" and status(a, "SiteA") == "optimal"
               and a.group("G", "SiteA").role == "secondary", timeout=20, what="the forced change to finish")
    b.sync_now("G", wait=True, after_running=True)
    assert a.host_read("SiteA/v", 0, 16) == b"B is primary now"


def test_normal_role_change_requested_from_the_secondary_side(mirrored):
    a, b, _ = mirrored
    b.promote("G", "SiteB")
    wait_until(lambda: b.group("G", "SiteB").role == "primary" and a.group("G", "SiteA").role == "secondary",
               timeout=20, what="roles swapped")
    b.host_write("SiteB/v_dr", 0, b"new primary")
    b.sync_now("G", wait=True, after_running=True)
    assert a.host_read("SiteA/v", 0, 11) == b"new primary"
    a.promote("G", "SiteA")  # and back, asked from the side that becomes primary
    wait_until(lambda: a.group("G", "SiteA").role == "primary", timeout=20, what="roles swapped back")


def test_group_deleted_while_apart_is_an_orphan_when_the_link_returns(peers):
    a, b, link = peers
    a.create_group("H", "SiteA", "SiteB", sync_mode="manual")
    link.cut()
    wait_until(lambda: not a.remote_arrays()[0]["reachable"], what="SiteA to notice the cut")
    a.delete_group("H")
    link.restore()
    wait_until(lambda: b.group("H", "SiteB").status == "orphan", timeout=10, what="the orphan found on SiteB")
