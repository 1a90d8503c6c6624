"""The data-path part of the engine's service API: host I/O, syncs, suspend/resume, verify.

It opens every volume for host I/O, attaches the change log / PIT / staging of
mirrored volumes from their reserved capacity, runs the channel listeners and the
scheduler, and overrides the status hooks of the other services with live facts.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from core.domain import DEFAULT_REGION_SIZE, ResyncPolicy, Role, Severity, SyncMode
from core.errors import CommunicationError, MirrorError, NotFound, ReservedCapacityFull
from core.lab import LAB_PASSWORDS, LabState
from core.replication import alerts, groupsync, receiver, resume_hint, sync_figures
from core.replication.channels import ChannelHub
from core.replication.clock import SchedulerClock
from core.replication.host_volume import HostVolume
from core.replication.state import GroupState
from core.snapshots import SyncStats
from core.status import GroupRuntime, PairRuntime
from core import remote_arrays
from core.store.schema import SyncStatRow

log = logging.getLogger(__name__)
TICK_SECONDS = 0.25
FAILING_AFTER = 3  # syncs failed in a row before the group says "Synchronization failing"


class SyncService:
    """Mixed into :class:`core.engine.Engine`."""

    region_size = int(os.environ.get("MIRROR_REGION_SIZE", DEFAULT_REGION_SIZE))

    # -- life cycle ----------------------------------------------------------------
    async def start_data_path(self) -> None:
        self.hosts: dict[tuple[str, str], HostVolume] = {}
        self._last_sync: dict[tuple[str, str], SyncStats | None] = {}
        self.states: dict[tuple[str, str], GroupState] = {}
        self.channels = ChannelHub(self, self.listen, self.channel_port, self.channel_ssl, self.peer_ssl)
        self.receiver = Receiver_ = receiver.Receiver(self)
        self._lab_mtime = self._lab_file_mtime()
        self.clock = SchedulerClock()
        for array in self.arrays.values():
            Receiver_.register(self.endpoints[array.name])
            for row in array.volumes():
                self._open_host(array, row)
            receiver.recover_groups(self, array)
            await self.channels.start_array(array)
            self.refresh_access(array)
        self._scheduler = asyncio.get_running_loop().create_task(self._schedule_forever(), name="scheduler")

    async def stop_data_path(self) -> None:
        sched = getattr(self, "_scheduler", None)
        if sched is not None:
            sched.cancel()
            await asyncio.gather(sched, return_exceptions=True)
        tasks = [s.task for s in self.states.values() if s.running]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.channels.stop()
        for hv in self.hosts.values():
            hv.close()
        self.hosts.clear()

    def _open_host(self, array, row) -> HostVolume:
        hv = HostVolume(array.name, row.name, str(array.volume_path(row)))
        hv.failed = row.failed or f"{array.name}/{row.name}" in self.lab.faults.failed_volumes \
            or array.name in self.lab.faults.stopped_arrays  # lab array stop: no host I/O
        pair = array.pair_of(row)
        if pair is not None:
            self._attach(array, pair, hv)
        hv.on_pit_full = self._on_pit_full
        self.hosts[(array.name, row.name)] = hv
        return hv

    def _attach(self, array, pair, hv: HostVolume) -> None:
        hv.reserved_capacity = pair.reserved_capacity
        hv.attach(str(array.reserved_dir(pair)), self.region_size, lambda: self._reserved_budget(hv))

    @staticmethod
    def _reserved_budget(hv: HostVolume) -> int:
        """Bytes the PIT store or staging journal may use: reserved capacity minus the logs.

        Asked on every staged region, so it reads the capacity cached on the volume
        (``increase_reserved_capacity`` updates it), not the database.
        """
        logs = sum(log.bytes_used for log in (hv.changelog, hv.since_capture) if log is not None)
        return max(0, hv.reserved_capacity - logs)

    def host_volume(self, array: str, volume: str, missing_ok: bool = False) -> HostVolume | None:
        hv = self.hosts.get((array, volume))
        if hv is None and not missing_ok:
            raise NotFound(f"volume {array}/{volume} is not open on this engine", code="volumeNotFound")
        return hv

    def refresh_access(self, array) -> None:
        """Recompute which volumes hosts may write (roles, role changes, failures)."""
        for row in array.volumes():
            hv = self.hosts.get((array.name, row.name))
            if hv is None:
                continue
            pair = array.pair_of(row)
            refusal = None
            if pair is not None:
                g = pair.group
                if g.role == Role.SECONDARY.value:
                    refusal = (f"it is the secondary of mirror group {g.name}; hosts write to the primary "
                               f"({g.remote_array}), or promote the group")
                elif g.role_change:
                    refusal = f"mirror group {g.name} is changing roles"
                elif g.role_conflict:
                    refusal = f"mirror group {g.name} is in a role conflict; resolve it in the Recovery Guru"
            hv.refusal = refusal

    # -- hooks of the volume and mirror services ----------------------------------------
    def host_writable(self, array, row) -> bool | None:
        hv = self.hosts.get((array.name, row.name)) if hasattr(self, "hosts") else None
        return None if hv is None else not hv.read_only

    async def on_volume_created(self, array, row) -> None:
        self._open_host(array, row)

    async def on_volume_deleting(self, array, row) -> None:
        hv = self.hosts.pop((array.name, row.name), None)
        if hv is not None:
            hv.close()

    async def on_volume_resized(self, array, row) -> None:
        hv = self.hosts.get((array.name, row.name))
        if hv is not None:
            hv.refresh_size()
        if hv is not None and hv.changelog is not None:
            hv.changelog.resize(row.capacity)
            hv.since_capture.resize(row.capacity)

    def attach_pair_volume(self, array, volume: str) -> None:
        """A pair side was created on ``array``: open its reserved capacity, apply host access."""
        from core.datapath.extents import allocated_regions

        pair = array.pair_of(array.volume(volume))
        hv = self.host_volume(array.name, volume)
        if hv.changelog is None:
            self._attach(array, pair, hv)
            if pair.group.role == Role.PRIMARY.value:
                # Initial synchronization: every region ever written, none of the holes.
                hv.changelog.mark_all(allocated_regions(hv.path, hv.size, self.region_size))
        self.refresh_access(array)

    async def on_pair_added(self, array, pair) -> None:
        self.attach_pair_volume(array, pair.volume.name)
        self._state(array.name, pair.group.name).next_due = None  # planned again by the next tick

    async def on_pair_removing(self, array, pair) -> None:
        st = self.states.get((array.name, pair.group.name))
        if st is not None and st.running:
            raise MirrorError(f"group {pair.group.name} is synchronizing; suspend it or wait for the sync to finish "
                              "before removing a pair", code="arvmSyncInProgress")
        if st is not None and st.transfer is not None:
            self._abandon(array, pair.group, st)

    def detach_pair_volume(self, array_name: str, volume: str) -> None:
        hv = self.hosts.get((array_name, volume))
        if hv is not None:
            hv.detach()

    async def on_group_settings_changed(self, array, group) -> None:
        self._plan(group, self._state(array.name, group.name))

    def _state(self, array: str, group: str) -> GroupState:
        return self.states.setdefault((array, group), GroupState())

    def _primary_state(self, array, g) -> GroupState | None:
        """The sync state of the group, seen from either side (the lab has both)."""
        if g.role == Role.PRIMARY.value:
            return self.states.get((array.name, g.name))
        return self.states.get((g.remote_array, g.name))

    def pair_runtime(self, array, pair) -> PairRuntime:
        hv = self.hosts.get((array.name, pair.volume.name)) if hasattr(self, "hosts") else None
        st = self._primary_state(array, pair.group) if hasattr(self, "states") else None
        progress = None
        syncing = False
        if st is not None and st.transfer is not None:
            name = pair.volume.name if pair.group.role == Role.PRIMARY.value else pair.remote_volume
            for p in st.transfer.pairs:
                if p.local_volume == name:
                    syncing = st.running
                    progress = sync_figures.progress(st.transfer.kind, p.bytes_done, p.bytes_total, st.transfer)
        unsynced = 0
        if hv is not None and hv.changelog is not None and pair.group.role == Role.PRIMARY.value:
            unsynced = hv.changelog.unsynchronized_bytes
        elif st is not None and st.transfer is not None and progress is not None:
            unsynced = progress.bytes_total - progress.bytes_done
        return PairRuntime(
            syncing=syncing, progress=progress, unsynchronized_bytes=unsynced,
            pit_bytes=hv.pit.bytes_used if hv is not None and hv.pit is not None else 0,
            log_bytes=sum(x.bytes_used for x in (hv.changelog, hv.since_capture) if x is not None) if hv else 0,
            staging_bytes=hv.staging.bytes_used if hv is not None and hv.staging is not None else 0)

    def group_runtime(self, array, group) -> GroupRuntime:
        st = self._primary_state(array, group) if hasattr(self, "states") else None
        # Just after a start the link to a remote daemon is not probed yet: unknown is not "lost".
        reachable = self.reachable(array.name, group.remote_array) or \
            not self.link_known(array.name, group.remote_array)
        if st is None:
            return GroupRuntime(paused=not reachable)
        progress = None
        if st.transfer is not None:
            t = st.transfer
            progress = sync_figures.progress(t.kind, t.bytes_done, t.bytes_total, t)
        return GroupRuntime(syncing=st.running, progress=progress,
                            next_sync=self.clock.wall_of(st.next_due) if st.next_due is not None else None,
                            paused=st.paused or st.waiting_for_user or not reachable,
                            failing=st.last_error if st.failures >= FAILING_AFTER else "")

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

    # -- remotes ---------------------------------------------------------------------------
    def remote_addresses(self, local: str, remote: str) -> list[tuple[str, int]]:
        if remote in self.channels.servers:
            return [("127.0.0.1", self.channels.servers[remote].port)]
        return remote_arrays.addresses_of(self.get_array(local), remote)

    def remote_password(self, local: str, remote: str) -> str:
        known = remote_arrays.password_of(self.get_array(local), remote)
        return known if known is not None else LAB_PASSWORDS.get(remote, "")

    # -- faults of the lab ------------------------------------------------------------------
    def _lab_file_mtime(self) -> float:
        try:
            return os.stat(self.lab.path).st_mtime
        except FileNotFoundError:
            return 0.0

    async def _reload_lab_faults(self) -> None:
        """Another process (``mirrorctl lab link cut``) may change lab.json: follow it."""
        mtime = self._lab_file_mtime()
        if mtime == self._lab_mtime:
            return
        self._lab_mtime = mtime
        before = self.lab.faults
        self.lab = LabState(self.home)
        await self._apply_faults(before)
        await self.sync_drills()

    async def _apply_faults(self, before) -> None:
        f = self.lab.faults
        if f.link_cut and not before.link_cut:
            await self.channels.close_sessions()
            self.publish("link", obj="cut")
        elif before.link_cut and not f.link_cut:
            self.publish("link", obj="restored")
        if f.link_bandwidth != before.link_bandwidth:
            self.channels.set_rate(f.link_bandwidth)
        for (a, v), hv in self.hosts.items():
            # a stopped array's volumes refuse host I/O (lab array stop, core/service_roles.py)
            hv.failed = f"{a}/{v}" in f.failed_volumes or self.get_array(a).volume(v).failed \
                or a in f.stopped_arrays

    async def lab_link(self, cut: bool) -> dict:
        """Cut or restore the link between the lab's arrays (kept in lab.json until restored)."""
        before = self.lab.faults
        self.lab = LabState(self.home)  # keep what other processes changed meanwhile
        self.lab.faults.link_cut = cut
        self.lab.save()
        self._lab_mtime = self._lab_file_mtime()
        await self._apply_faults(before)
        return await self.lab_faults()

    async def lab_faults(self) -> dict:
        from dataclasses import asdict

        return asdict(self.lab.faults)

    # -- the scheduler --------------------------------------------------------------------------
    async def _schedule_forever(self) -> None:
        while True:
            try:
                await self._reload_lab_faults()
                self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed")
            await asyncio.sleep(TICK_SECONDS)

    def _plan(self, g, st: GroupState) -> None:
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
        st = self.states.get((array.name, g.name)) if hasattr(self, "states") else None
        if st is not None and st.rp_mono is not None:
            return self.clock.mono() - st.rp_mono
        if g.last_recovery_point is None:
            return None
        return (datetime.now(timezone.utc) - g.last_recovery_point).total_seconds()

    def _notice_clock_jump(self) -> None:
        moved = self.clock.jump()
        if not moved:
            return
        for array in self.arrays.values():
            array.log(Severity.WARNING, array.name, "systemClockChanged",
                      f"The system clock moved {'forward' if moved > 0 else 'back'} by {abs(moved) / 60:.1f} min; "
                      "synchronization schedules and recovery point ages keep following elapsed time, times are "
                      "shown on the new clock")

    def _tick(self) -> None:
        self._notice_clock_jump()
        for array in self.arrays.values():
            for g in array.groups():
                if g.role != Role.PRIMARY.value:
                    continue
                st = self._state(array.name, g.name)
                used = {p.volume.name: (rt := self.pair_runtime(array, p)).pit_bytes + rt.log_bytes + rt.staging_bytes
                        for p in g.pairs}
                alerts.check(array, g, st, self.recovery_point_age(array, g), used)
                if st.running or not g.pairs:
                    continue
                if g.user_suspended or g.role_change or g.role_conflict or g.orphan:
                    continue
                if self.role_hold(array, g):  # roles: sides not reconciled yet (core/service_roles.py)
                    continue
                if any(p.failed_reason or p.volume.failed for p in g.pairs):
                    continue
                if not self.link_known(array.name, g.remote_array):
                    continue  # just started: neither "lost" nor a sync until the link was probed once
                reachable = self.reachable(array.name, g.remote_array)
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
                    self.publish("group", array.name, g.name)
                if st.waiting_for_user:
                    continue
                initial = any(not p.initial_sync_done for p in g.pairs if not p.incomplete)
                if st.next_due is None and g.sync_mode == SyncMode.SCHEDULED.value:
                    self._plan(g, st)
                due = st.next_due is not None and self.clock.mono() >= st.next_due
                if st.transfer is not None or initial or due or st.manual_requested:
                    self._start_sync(array, g, st)

    def role_hold(self, array, g) -> bool:
        """Hook (core/service_roles.py): True while the group's two sides must reconcile first."""
        return False

    def _pause(self, array, g, st: GroupState, why: str) -> None:
        st.paused = True
        array.log(Severity.CRITICAL, g.name, "arvmCommunicationLost",
                  f"Communication with {g.remote_array} lost ({why}); group {g.name} is paused and "
                  f"{'resumes by itself' if g.resync_policy == ResyncPolicy.AUTOMATIC.value else 'waits for you to resume'} "
                  "when the link returns")
        self.publish("group", array.name, g.name)

    def _start_sync(self, array, g, st: GroupState) -> None:
        st.manual_requested = False
        st.task = asyncio.get_running_loop().create_task(self._run_sync(array, g.name, st),
                                                         name=f"sync {array.name}/{g.name}")

    async def _run_sync(self, array, group: str, st: GroupState) -> None:
        g = array.group(group)
        if st.transfer is None:
            hosts = {p.volume.name: self.host_volume(array.name, p.volume.name) for p in g.pairs}
            resume_id = resume_hint.interrupted_transfer(array, group)
            st.transfer = groupsync.capture(g, hosts, self.region_size, resume_id, in_place=st.in_place)
            resume_hint.record(array, group, st.transfer.id)
            if resume_id:
                array.log(Severity.INFO, group, "arvmSyncResumed",
                          f"Synchronization of {group} interrupted by a restart resumes: regions the secondary "
                          "already holds and that did not change since are not sent again")
            g.last_sync_start = st.transfer.started_at  # committed with the event below
            st.started_mono = self.clock.mono()
            self._plan(g, st)
            array.log(Severity.INFO, group, "arvmSyncStarted",
                      f"{st.transfer.kind.capitalize()} synchronization of {group} started "
                      f"({st.transfer.bytes_total} bytes changed)", durable=False)
        t = st.transfer
        last_publish = [0.0]

        def progress():
            now = time.monotonic()
            if now - last_publish[0] > 0.1:
                last_publish[0] = now
                self.publish("progress", array.name, group)

        self.publish("group", array.name, group)
        try:
            await groupsync.send(self, array, g, t, progress)
        except CommunicationError as e:
            st.last_error = e.message
            # The capture is kept and resumes when the link returns; the history says it was cut short.
            self._record_attempt(array, g, t, f"interrupted: {e.message}")
            if not st.paused:
                self._pause(array, g, st, e.message)
            self._finish_waiters(st, e)
            return
        except asyncio.CancelledError:
            raise
        except MirrorError as e:
            if isinstance(e, ReservedCapacityFull):
                info = await self._secondary_failure(array, g, t)
                if await self._resync_in_place(array, g, st, t, info):
                    return
                self._mark_secondary_full(array, g, info)
            self._fail_sync(array, g, st, e)
            return
        except Exception as e:  # an unexpected failure must not leave the group stuck
            log.exception("sync of %s failed", group)
            self._fail_sync(array, g, st, MirrorError(f"synchronization failed: {e}", code="arvmSyncFailed"))
            return
        self._commit_primary(array, g, st)

    def _commit_primary(self, array, g, st: GroupState) -> None:
        t = st.transfer
        resume_hint.record(array, g.name, None)
        for p in t.pairs:
            hv = self.host_volume(array.name, p.local_volume)
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
        array.log(Severity.INFO, g.name, "arvmSyncCompleted",
                  f"Recovery point {t.recovery_point['id']} of {g.name} committed: {t.bytes_payload} bytes in "
                  f"{duration:.2f} s ({t.bytes_sent} on the wire)", durable=False)
        if duration > g.sync_alert_minutes * 60:
            array.log(Severity.WARNING, g.name, "arvmSyncTimeAlert",
                      f"Synchronization of {g.name} took {duration / 60:.1f} min, longer than its "
                      f"{g.sync_alert_minutes} min threshold; raise the priority or the interval")
        self.publish("group", array.name, g.name)
        self.publish("group", g.remote_array, g.name)
        self._finish_waiters(st, None)

    def _abandon(self, array, g, st: GroupState) -> None:
        """Give up the capture: its regions go back to the dirty set for the next sync."""
        t = st.transfer
        if t is None:
            return
        resume_hint.record(array, g.name, None)
        for p in t.pairs:
            hv = self.host_volume(array.name, p.local_volume, missing_ok=True)
            if hv is not None and hv.changelog is not None:
                if hv.changelog.in_flight:
                    hv.changelog.abort()
                hv.pit.end()
        st.transfer = None

    def _fail_sync(self, array, g, st: GroupState, e: MirrorError) -> None:
        t = st.transfer
        self._abandon(array, g, st)
        st.last_error = e.message
        st.failures += 1
        if self.reachable(array.name, g.remote_array):
            asyncio.get_running_loop().create_task(self._tell_abort(array.name, g, t))
        self._record_stats(array, sync_figures.history_row(g.name, t, f"failed: {e.message}"))
        array.db.commit()
        array.log(Severity.CRITICAL, g.name, e.code, f"Synchronization of {g.name} failed: {e.message}")
        self.publish("group", array.name, g.name)
        self._finish_waiters(st, e)

    async def _tell_abort(self, local: str, g, t) -> None:
        if t is None:
            return
        try:
            await self.peer_call(local, g.remote_array, "transfer.abort", {
                "group": g.name, "transfer": t.id, "volumes": [p.remote_volume for p in t.pairs]})
        except MirrorError:
            pass  # the secondary discards it when the next transfer begins

    async def _secondary_failure(self, array, g, t) -> dict:
        """What the secondary could not stage (``volume`` None: it was our own PIT that filled up)."""
        if any(p.failed_reason for p in g.pairs):
            return {"volume": None}  # our own PIT store filled up: _on_pit_full already failed that pair
        try:
            return await self.peer_call(array.name, g.remote_array, "transfer.failure", {"transfer": t.id})
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
        self._abandon(array, g, st)  # its regions go back to the change log: the next capture sends them
        await self._tell_abort(array.name, g, t)
        st.in_place.add(volume)
        st.manual_requested = True
        why = "its reserved capacity is already the size of the volume" if at_cap else \
            "deleteRecoveryPointIfNecessary was given"
        array.log(Severity.WARNING, g.name, "arvmResyncInPlace",
                  f"The changes of {g.name} do not fit the reserved capacity of {g.remote_array}/{volume} ({why}): "
                  "it is resynchronized in place without a recovery point, and a new recovery point is taken at "
                  "the end")
        self.publish("group", array.name, g.name)
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
                self.publish("pair", array.name, f"{g.name}/{p.volume.name}")

    def _on_pit_full(self, hv: HostVolume, err: ReservedCapacityFull) -> None:
        array = self.get_array(hv.array)
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
        self.publish("pair", hv.array, f"{pair.group.name}/{hv.name}")

    def _finish_waiters(self, st: GroupState, error: MirrorError | None) -> None:
        for fut in st.waiters:
            if not fut.done():
                fut.set_exception(error) if error is not None else fut.set_result(None)
        st.waiters.clear()
