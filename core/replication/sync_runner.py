"""Running syncs: the scheduler's decisions, capture -> send -> commit, and what a sync leaves behind.

Each primary group side has a :class:`GroupState` here (the running task, the
captured transfer, waiters, failures, the next due time on the monotonic clock).
A tick looks at every primary group and starts what is due; a sync captures the
changed regions, sends them to the secondary (:mod:`core.replication.groupsync`)
and commits the recovery point, or leaves the group paused, failing, failed or
resynchronizing in place, with a row in the history either way.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import select

from core.array import StorageArray
from core.domain import ResyncPolicy, Role, Severity, SyncMode
from core.errors import CommunicationError, MirrorError, ReservedCapacityFull
from core.publisher import Publish
from core.replication import alerts, groupsync, receiver, resume_hint, sync_figures
from core.replication.clock import SchedulerClock
from core.replication.host_volume import HostVolume
from core.replication.host_volumes import HostVolumes
from core.replication.links import Peer
from core.replication.state import GroupState
from core.snapshots import SyncStats
from core.status import GroupRuntime, PairRuntime
from core.store.schema import SyncStatRow

log = logging.getLogger(__name__)
FAILING_AFTER = 3  # syncs failed in a row before the group says "Synchronization failing"
# The threshold alerts (reserved capacity used, recovery point age) are checked this often, not
# at every tick: measuring every pair 4 times a second was a quarter of a daemon's loop at
# 32 groups x 8 pairs (issue 14), for thresholds in minutes and percent.
ALERT_SECONDS = 2.0
Holds = Callable[[StorageArray, object], bool]
Incoming = Callable[[str, str], "receiver.Incoming | None"]  # (array, group) -> the transfer a secondary receives


def reserved_parts(hv: HostVolume | None) -> tuple[int, int, int]:
    """``(pit, log, staging)`` bytes a volume's reserved capacity holds (0s when it is not mirrored here)."""
    if hv is None:
        return 0, 0, 0
    log_bytes = sum(x.bytes_used for x in (hv.changelog, hv.since_capture) if x is not None)
    return (hv.pit.bytes_used if hv.pit is not None else 0, log_bytes,
            hv.staging.bytes_used if hv.staging is not None else 0)


class SyncRunner:
    """The syncs of this process's primary group sides."""

    def __init__(self, arrays: Mapping[str, StorageArray], hosts: HostVolumes, peer: Peer, publish: Publish,
                 region_size: int, holds: Holds, incoming: Incoming):
        self._arrays = arrays
        self._hosts = hosts
        self._peer = peer
        self._publish = publish
        self.region_size = region_size
        self._holds = holds  # True while a group's two sides must reconcile first
        self._incoming = incoming  # a secondary side's figures come from what it receives
        self.states: dict[tuple[str, str], GroupState] = {}
        self._last_sync: dict[tuple[str, str], SyncStats | None] = {}
        self.clock = SchedulerClock()
        self._alerts_due = 0.0  # monotonic time of the next alert check: the first tick checks
        self._rows: dict[str, list] = {}  # each array's group rows, as the last tick read them

    def _array(self, name: str) -> StorageArray:
        return self._arrays[name]

    async def stop(self) -> None:
        tasks = [s.task for s in self.states.values() if s.running]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- pairs and groups changing ---------------------------------------------------------
    def pair_added(self, array, pair) -> None:
        self._hosts.attach_pair_volume(array, pair.volume.name)
        self.state(array.name, pair.group.name).next_due = None  # planned again by the next tick
        # A new pair's initial sync starts now, not at the next tick (up to TICK_SECONDS later).
        with contextlib.suppress(RuntimeError):  # no loop running: the scheduler's tick starts it
            asyncio.get_running_loop().call_soon(self.tick)

    def pair_removing(self, array, pair) -> None:
        st = self.states.get((array.name, pair.group.name))
        if st is not None and st.running:
            raise MirrorError(f"group {pair.group.name} is synchronizing; suspend it or wait for the sync to finish "
                              "before removing a pair", code="arvmSyncInProgress")
        if st is not None and st.transfer is not None:
            self.abandon(array, pair.group, st)

    def settings_changed(self, array, group) -> None:
        self.plan(group, self.state(array.name, group.name))

    def drop(self, array, g) -> None:
        """The group's side changes role: stop its sync and give up its capture (regions go back to the log)."""
        st = self.states.get((array.name, g.name))
        if st is None:
            return
        if st.running:
            st.task.cancel()
        if st.transfer is not None:
            self.abandon(array, g, st)
        st.paused = st.waiting_for_user = st.manual_requested = False

    def state(self, array: str, group: str) -> GroupState:
        return self.states.setdefault((array, group), GroupState())

    def sending_state(self, array, g) -> GroupState | None:
        """The sync state of a primary group side (None for a secondary: it receives, see ``incoming``)."""
        return self.states.get((array.name, g.name)) if g.role == Role.PRIMARY.value else None

    def _received(self, array, g) -> "receiver.Incoming | None":
        return self._incoming(array.name, g.name) if g.role == Role.SECONDARY.value else None

    def pair_runtime(self, array, pair) -> PairRuntime:
        """The live figures of one pair side (a listing asks :meth:`pair_runtimes` per group instead)."""
        return self.pair_runtimes(array, pair.group, (pair,))[0][1]

    def pair_runtimes(self, array, group, pairs=None) -> list[tuple[object, PairRuntime]]:
        """``(pair, runtime)`` of each pair of ``group`` (or of ``pairs``, in it): the group is looked at once.

        A listing asks for every pair of every group (512 at issue 14's scale); looking up the
        group's sync state, its transfer's pair and what its secondary receives again for
        each pair was most of the cost of a pair's runtime. Every figure is computed from the
        current state: nothing here is kept between two calls.
        """
        primary = group.role == Role.PRIMARY.value
        st = self.states.get((array.name, group.name)) if primary else None
        t = st.transfer if st is not None else None
        sending = {p.local_volume: p for p in t.pairs} if t is not None else {}
        incoming = self._received(array, group)
        hosts = self._hosts
        out = []
        for pair in group.pairs if pairs is None else pairs:
            name = pair.volume.name
            out.append((pair, self._runtime(hosts.get((array.name, name)), name, primary, st, t, sending.get(name),
                                            incoming)))
        return out

    def _runtime(self, hv, name: str, primary: bool, st: GroupState | None, t, sending, incoming) -> PairRuntime:
        progress = None
        syncing = False
        unsynced = in_blocks = 0
        if sending is not None:
            syncing = st.running
            progress = sync_figures.progress(t.kind, sending.bytes_done, sending.bytes_total, t)
        changelog = hv.changelog if hv is not None else None
        if changelog is not None and primary:
            if sending is None:
                unsynced = changelog.unsynchronized_bytes
            else:  # what was sent is on the secondary already, unless a host rewrote it since the capture
                unsynced = sync_figures.unsynchronized_bytes(changelog.pending_regions(),
                                                             hv.since_capture.pending_regions(), sending,
                                                             self.region_size, hv.size)
            in_blocks = min(unsynced, changelog.unsynchronized_block_bytes) if unsynced else 0
        if incoming is not None and name in incoming.totals:
            total = incoming.totals[name]
            done = min(total, incoming.received.get(name, 0))
            syncing = incoming.receiving
            progress = sync_figures.progress(incoming.kind, done, total, incoming)
            unsynced = in_blocks = total - done
        pit, log_bytes, staging = reserved_parts(hv)
        return PairRuntime(syncing=syncing, progress=progress, unsynchronized_bytes=unsynced, pit_bytes=pit,
                           log_bytes=log_bytes, staging_bytes=staging, unsynchronized_block_bytes=in_blocks)

    def reserved_used(self, array, pair) -> int:
        """Bytes of the pair's reserved capacity in use (PIT copies, change logs, staging): what its alert measures."""
        return sum(reserved_parts(self._hosts.get((array.name, pair.volume.name))))

    def group_runtime(self, array, group) -> GroupRuntime:
        st = self.sending_state(array, group)
        # Just after a start the link to a remote daemon is not probed yet: unknown is not "lost".
        reachable = self._peer.reachable(array.name, group.remote_array) or \
            not self._peer.known(array.name, group.remote_array)
        incoming = self._received(array, group)
        if incoming is not None:
            done = sum(min(t, incoming.received.get(v, 0)) for v, t in incoming.totals.items())
            return GroupRuntime(syncing=incoming.receiving and reachable,
                                progress=sync_figures.progress(incoming.kind, done, sum(incoming.totals.values()),
                                                               incoming) if incoming.totals else None,
                                paused=not reachable)
        if st is None:
            return GroupRuntime(paused=not reachable)
        progress = None
        if st.transfer is not None:
            t = st.transfer
            progress = sync_figures.progress(t.kind, t.bytes_done, t.bytes_total, t)
        return GroupRuntime(syncing=st.running, progress=progress,
                            next_sync=self._next_sync(st.next_due) if st.next_due is not None else None,
                            paused=st.paused or st.waiting_for_user or not reachable,
                            failing=st.last_error if st.failures >= FAILING_AFTER else "")

    def _next_sync(self, deadline: float) -> datetime:
        """The wall-clock time of a deadline, to the millisecond.

        Read from two clocks at each call, it moved by a few microseconds from one listing to
        the next, so every group's snapshot differed at every poll and none could be reused
        (issue 14); to the millisecond it stays put while the schedule and the clock do.
        """
        wall = self.clock.wall_of(deadline)
        return wall.replace(microsecond=wall.microsecond // 1000 * 1000)

    def last_sync(self, array, group) -> SyncStats | None:
        """The group's latest statistics; cached, since every snapshot asks (reset by _record_stats)."""
        cache = self._last_sync
        key = (array.name, group.name)
        if key not in cache:
            row = array.db.scalars(select(SyncStatRow).where(SyncStatRow.group_name == group.name)
                                   .order_by(SyncStatRow.id.desc()).limit(1)).first()
            cache[key] = sync_figures.stats(row) if row is not None else None
        return cache[key]

    def _record_stats(self, array, row: SyncStatRow) -> None:
        array.db.add(row)
        self._last_sync.pop((array.name, row.group_name), None)

    # -- the scheduler --------------------------------------------------------------------------
    def plan(self, g, st: GroupState) -> None:
        """The next scheduled sync: an interval after the last one started, on the monotonic clock."""
        if g.sync_mode != SyncMode.SCHEDULED.value:
            st.next_due = None
        elif st.started_mono is not None:
            st.next_due = st.started_mono + g.sync_interval_minutes * 60
        elif g.last_sync_start is not None:  # started before this process: where the wall clock puts it
            st.next_due = self.clock.deadline_at(g.last_sync_start + timedelta(minutes=g.sync_interval_minutes))
        else:
            st.next_due = self.clock.mono()  # never synchronized: now

    def recovery_point_age(self, array, g) -> float | None:
        """Seconds since the group's last recovery point: monotonic when it committed in this process."""
        st = self.states.get((array.name, g.name))
        if st is not None and st.rp_mono is not None:
            return self.clock.mono() - st.rp_mono
        if g.last_recovery_point is None:
            return None
        return (datetime.now(timezone.utc) - g.last_recovery_point).total_seconds()

    def _notice_clock_jump(self) -> None:
        moved = self.clock.jump()
        if not moved:
            return
        for array in self._arrays.values():
            array.log(Severity.WARNING, array.name, "systemClockChanged",
                      f"The system clock moved {'forward' if moved > 0 else 'back'} by {abs(moved) / 60:.1f} min; "
                      "synchronization schedules and recovery point ages keep following elapsed time, times are "
                      "shown on the new clock")

    def tick(self) -> None:
        """Start every sync that is due (each tick); check the threshold alerts (every ``ALERT_SECONDS``)."""
        self._notice_clock_jump()
        now = self.clock.mono()
        check_alerts = now >= self._alerts_due
        if check_alerts:
            self._alerts_due = now + ALERT_SECONDS
        for array in self._arrays.values():
            # Held until the next tick: the session keeps rows only while something refers to
            # them, and each tick would load every group's pairs and their volumes again.
            self._rows[array.name] = groups = array.groups()
            for g in groups:
                if g.role != Role.PRIMARY.value:
                    continue
                st = self.state(array.name, g.name)
                if check_alerts:
                    used = {p.volume.name: self.reserved_used(array, p) for p in g.pairs}
                    alerts.check(array, g, st, self.recovery_point_age(array, g), used)
                if st.running or not g.pairs:
                    continue
                if g.user_suspended or g.role_change or g.role_conflict or g.orphan:
                    continue
                if self._holds(array, g):  # roles: sides not reconciled yet (core/service_roles.py)
                    continue
                if any(p.failed_reason or p.volume.failed for p in g.pairs):
                    continue
                if not self._peer.known(array.name, g.remote_array):
                    continue  # just started: neither "lost" nor a sync until the link was probed once
                reachable = self._peer.reachable(array.name, g.remote_array)
                if not reachable:
                    if not st.paused:
                        self._pause(array, g, st, "the link to the remote array is down")
                    continue
                if st.paused:
                    st.paused = False
                    array.log(Severity.INFO, g.name, "arvmCommunicationRestored",
                              f"Communication with {g.remote_array} restored")
                    if g.resync_policy == ResyncPolicy.MANUAL.value and not st.manual_requested:
                        st.waiting_for_user = True
                        array.log(Severity.WARNING, g.name, "arvmResyncWaitingForUser",
                                  f"Group {g.name} waits for you to resume synchronization (resync policy manual)")
                    self._publish("group", array.name, g.name)
                if st.waiting_for_user:
                    continue
                initial = any(not p.initial_sync_done for p in g.pairs if not p.incomplete)
                if st.next_due is None and g.sync_mode == SyncMode.SCHEDULED.value:
                    self.plan(g, st)
                due = st.next_due is not None and self.clock.mono() >= st.next_due
                if st.transfer is not None or initial or due or st.manual_requested:
                    self.start_sync(array, g, st)

    def _pause(self, array, g, st: GroupState, why: str) -> None:
        st.paused = True
        array.log(Severity.CRITICAL, g.name, "arvmCommunicationLost",
                  f"Communication with {g.remote_array} lost ({why}); group {g.name} is paused and "
                  f"{'resumes by itself' if g.resync_policy == ResyncPolicy.AUTOMATIC.value else 'waits for you to resume'} "
                  "when the link returns")
        self._publish("group", array.name, g.name)

    def start_sync(self, array, g, st: GroupState) -> None:
        manual, st.manual_requested = st.manual_requested, False  # asked for by a person: Sync now, Resume
        st.task = asyncio.get_running_loop().create_task(self._run_sync(array, g.name, st, manual),
                                                         name=f"sync {array.name}/{g.name}")
        st.task.add_done_callback(lambda task: self._ended(array, g.name, st, task))

    def _ended(self, array, group: str, st: GroupState, task: asyncio.Task) -> None:
        """A sync task that died of an unexpected error still answers whoever waits for it (never a hang)."""
        if task.cancelled() or task.exception() is None:
            return  # cancelled: the capture is kept and the next sync answers its waiters
        e = task.exception()
        log.error("sync of %s/%s died", array.name, group, exc_info=e)
        st.last_error = f"synchronization failed: {e}"
        st.failures += 1
        self.finish_waiters(st, MirrorError(st.last_error, code="arvmSyncFailed"))
        self._publish("group", array.name, group)

    async def _run_sync(self, array, group: str, st: GroupState, manual: bool = False) -> None:
        g = array.group(group)
        if st.transfer is None:  # captured first: the recovery point is the instant the sync was due
            hosts = {p.volume.name: self._hosts.volume(array.name, p.volume.name) for p in g.pairs}
            resume_id = resume_hint.interrupted_transfer(array, group)
            st.transfer = groupsync.capture(g, hosts, self.region_size, resume_id, in_place=st.in_place,
                                            pieces=st.secondary_takes_pieces)
            st.transfer.manual = manual
            resume_hint.record(array, group, st.transfer.id)
            if resume_id:
                array.log(Severity.INFO, group, "arvmSyncResumed",
                          f"Synchronization of {group} interrupted by a restart resumes: regions the secondary "
                          "already holds and that did not change since are not sent again")
            g.last_sync_start = st.transfer.started_at  # committed with the event below
            st.started_mono = self.clock.mono()
            self.plan(g, st)
            if st.transfer.bytes_total:  # a sync with nothing to send is one event: its commit
                array.log(Severity.INFO, group, "arvmSyncStarted",
                          f"{sync_figures.sync_kind(st.transfer.kind, st.transfer).capitalize()} synchronization "
                          f"of {group} started ({st.transfer.bytes_total} bytes changed)", durable=False)
        t = st.transfer
        owners = {p.remote_volume: p.volume.current_owner for p in g.pairs if not (p.incomplete or p.orphan)}
        try:  # the secondary's owner follows the primary's with the next remote write
            await self._peer.call(array.name, g.remote_array, "volume.owner", {"owners": owners})
        except MirrorError:
            pass  # the sync itself reports the link
        last_publish = [0.0]

        def progress():
            now = time.monotonic()
            if now - last_publish[0] > 0.1:
                last_publish[0] = now
                self._publish("progress", array.name, group)

        self._publish("group", array.name, group)
        try:
            await self._send(array, g, st, progress)
        except CommunicationError as e:
            st.last_error = e.message
            # The capture is kept and resumes when the link returns; the history says it was cut short.
            self._record_attempt(array, g, t, f"interrupted: {e.message}")
            if not st.paused:
                self._pause(array, g, st, e.message)
            self.finish_waiters(st, e)
            return
        except asyncio.CancelledError:
            raise
        except MirrorError as e:
            if isinstance(e, ReservedCapacityFull):
                info = await self._secondary_failure(array, g, t)
                if await self._resync_in_place(array, g, st, t, info):
                    await self._forget_transfer(array, g, t)
                    return
                self._mark_secondary_full(array, g, info)
            self._fail_sync(array, g, st, e)
            await self._forget_transfer(array, g, t)
            return
        except Exception as e:  # an unexpected failure must not leave the group stuck
            log.exception("sync of %s failed", group)
            self._fail_sync(array, g, st, MirrorError(f"synchronization failed: {e}", code="arvmSyncFailed"))
            await self._forget_transfer(array, g, t)
            return
        self._commit_primary(array, g, st)
        await self._forget_transfer(array, g, t)

    async def _send(self, array, g, st: GroupState, progress) -> None:
        """Send the capture; what the secondary said it takes shapes the next capture's PIT."""
        t = st.transfer
        try:
            await groupsync.send(self._peer, self._hosts, self.region_size, array, g, t, progress)
        finally:
            if t.secondary_takes_pieces is not None:
                st.secondary_takes_pieces = t.secondary_takes_pieces

    async def _forget_transfer(self, array, g, t) -> None:
        """The channel session keeps an encoder (a zstd context) per transfer: drop it once the transfer ended.

        Nothing dropped them, so a daemon's memory grew with every sync (issue 14: +1 encoder
        and +1 pacing record per sync, about 70 KiB each). A transfer cut by the link lost its
        session, and those with it; one that resumes later simply gets a new encoder.
        """
        if not self._peer.reachable(array.name, g.remote_array):
            return  # no session to dial for this: a dead link's session went with its encoders
        try:
            session = await self._peer.session(array.name, g.remote_array)
        except MirrorError:
            return
        session.forget_transfer(t.id)

    def _commit_primary(self, array, g, st: GroupState) -> None:
        t = st.transfer
        resume_hint.record(array, g.name, None)
        for p in t.pairs:
            hv = self._hosts.volume(array.name, p.local_volume)
            hv.changelog.complete()
            hv.pit.end()
        rp_time = datetime.fromisoformat(t.recovery_point["time"])
        g.last_recovery_point = rp_time
        g.last_recovery_point_id = t.recovery_point["id"]
        names = {p.local_volume for p in t.pairs}
        for p in g.pairs:
            if p.volume.name in names:
                p.initial_sync_done = True
                p.recovery_point_available = True
        duration = time.monotonic() - t.started
        self._record_stats(array, sync_figures.history_row(g.name, t, "committed", rp_time))
        st.transfer = None
        st.rp_age_alerted = False
        st.rp_mono = self.clock.mono()
        st.last_error = ""
        st.failures = 0
        st.verify_mismatched = 0  # the regions online verify marked went with this sync
        st.in_place.clear()  # every secondary holds a recovery point again
        st.delete_recovery_point_allowed = False
        # Not fsynced: after an OS crash the change log (cleared lazily) resends these regions.
        what = f"{t.bytes_payload} bytes in {duration:.2f} s ({t.bytes_sent} on the wire)" if t.bytes_total \
            else "nothing had changed since the last recovery point"
        array.log(Severity.INFO, g.name, "arvmSyncCompleted",
                  f"Recovery point {t.recovery_point['id']} of {g.name} committed: {what}", durable=False)
        if duration > g.sync_alert_minutes * 60:
            array.log(Severity.WARNING, g.name, "arvmSyncTimeAlert",
                      f"Synchronization of {g.name} took {duration / 60:.1f} min, longer than its "
                      f"{g.sync_alert_minutes} min threshold; raise the priority or the interval")
        self._publish("group", array.name, g.name)
        self._publish("group", g.remote_array, g.name)
        self.finish_waiters(st, None)

    def abandon(self, array, g, st: GroupState) -> None:
        """Give up the capture: its regions go back to the dirty set for the next sync."""
        t = st.transfer
        if t is None:
            return
        resume_hint.record(array, g.name, None)
        for p in t.pairs:
            hv = self._hosts.volume(array.name, p.local_volume, missing_ok=True)
            if hv is not None and hv.changelog is not None:
                if hv.changelog.in_flight:
                    hv.changelog.abort()
                hv.pit.end()
        st.transfer = None

    def _fail_sync(self, array, g, st: GroupState, e: MirrorError) -> None:
        t = st.transfer
        self.abandon(array, g, st)
        st.last_error = e.message
        st.failures += 1
        if self._peer.reachable(array.name, g.remote_array):
            asyncio.get_running_loop().create_task(self._tell_abort(array.name, g, t))
        self._record_stats(array, sync_figures.history_row(g.name, t, f"failed: {e.message}"))
        array.db.commit()
        array.log(Severity.CRITICAL, g.name, e.code, f"Synchronization of {g.name} failed: {e.message}")
        self._publish("group", array.name, g.name)
        self.finish_waiters(st, e)

    async def _tell_abort(self, local: str, g, t) -> None:
        if t is None:
            return
        try:
            await self._peer.call(local, g.remote_array, "transfer.abort", {
                "group": g.name, "transfer": t.id, "volumes": [p.remote_volume for p in t.pairs]})
        except MirrorError:
            pass  # the secondary discards it when the next transfer begins

    async def _secondary_failure(self, array, g, t) -> dict:
        """What the secondary could not stage (``volume`` None: it was our own PIT that filled up)."""
        if any(p.failed_reason for p in g.pairs):
            return {"volume": None}  # our own PIT store filled up: _on_pit_full already failed that pair
        try:
            return await self._peer.call(array.name, g.remote_array, "transfer.failure", {"transfer": t.id})
        except MirrorError:
            return {"volume": None}  # the link is gone: the pair is failed when it is known

    async def _resync_in_place(self, array, g, st: GroupState, t, info: dict) -> bool:
        """A delta the secondary cannot stage is applied in place, when allowed or when nothing else can help.

        Allowed by ``deleteRecoveryPointIfNecessary`` (sync or resume); needed when the
        secondary's reserved capacity is already as large as its volume, where no
        increase could ever make room (a dead end otherwise). The secondary gives up its
        recovery point until the new one commits; forced promotion refuses meanwhile.
        """
        volume = info.get("volume")
        if volume is None or volume in st.in_place:
            return False
        at_cap = info.get("reservedCapacity", 0) >= info.get("capacity", 1)
        if not (st.delete_recovery_point_allowed or at_cap):
            return False
        self._record_attempt(array, g, t, f"abandoned: the delta does not fit {g.remote_array}/{volume}'s reserved "
                                          "capacity; resynchronizing it in place")
        self.abandon(array, g, st)  # its regions go back to the change log: the next capture sends them
        await self._tell_abort(array.name, g, t)
        st.in_place.add(volume)
        st.manual_requested = True
        why = "its reserved capacity is already the size of the volume" if at_cap else \
            "deleteRecoveryPointIfNecessary was given"
        array.log(Severity.WARNING, g.name, "arvmResyncInPlace",
                  f"The changes of {g.name} do not fit the reserved capacity of {g.remote_array}/{volume} ({why}): "
                  "it is resynchronized in place without a recovery point, and a new recovery point is taken at "
                  "the end")
        self._publish("group", array.name, g.name)
        return True

    def _record_attempt(self, array, g, t, outcome: str) -> None:
        """A sync attempt that did not commit still has a row in the history."""
        if t is None:
            return
        self._record_stats(array, sync_figures.history_row(g.name, t, outcome))
        array.commit(durable=False)

    def _mark_secondary_full(self, array, g, info: dict) -> None:
        """The secondary's staging ran out of reserved capacity: that pair fails (System suspended)."""
        volume = info.get("volume")
        for p in g.pairs:
            if volume is not None and p.remote_volume == volume:
                p.failed_reason = (f"reserved capacity full on the secondary {g.remote_array}/{volume}: increase "
                                   "its reserved capacity, then resume (or resume with "
                                   "deleteRecoveryPointIfNecessary)")
                array.db.commit()
                array.log(Severity.CRITICAL, f"{g.name}/{p.volume.name}", "arvmRepositoryFull",
                          f"Reserved capacity of secondary {g.remote_array}/{volume} is full; pair failed. "
                          "Increase its reserved capacity, then resume the group")
                self._publish("pair", array.name, f"{g.name}/{p.volume.name}")

    def pit_full(self, hv: HostVolume, err: ReservedCapacityFull) -> None:
        array = self._array(hv.array)
        pair = array.pair_of(array.volume(hv.name))
        if pair is None:
            return
        pair.failed_reason = ("reserved capacity full: the recovery point image is unavailable; increase the "
                              "reserved capacity, then resume")
        pair.recovery_point_available = False
        array.db.commit()
        array.log(Severity.CRITICAL, f"{pair.group.name}/{hv.name}", "arvmRepositoryFull",
                  f"Reserved capacity of {hv.array}/{hv.name} is full; pair failed, recovery point image "
                  "unavailable. Increase its reserved capacity, then resume the group")
        self._publish("pair", hv.array, f"{pair.group.name}/{hv.name}")

    def finish_waiters(self, st: GroupState, error: MirrorError | None) -> None:
        """A sync ended: its waiters learn how; those who asked after its capture wait for the next one."""
        done = st.waiters + (st.next_capture_waiters if error is not None else [])
        for fut in done:
            if not fut.done():
                fut.set_exception(error) if error is not None else fut.set_result(None)
        st.waiters.clear()
        if error is not None:
            st.next_capture_waiters.clear()
        elif st.next_capture_waiters:
            st.waiters.extend(st.next_capture_waiters)
            st.next_capture_waiters.clear()
            st.manual_requested = True  # the next tick captures what they wrote
