"""Role changes of mirror groups (SPEC §2 "Roles", "Controller ownership").

Normal role change (both arrays talking): pending -> in progress -> a final sync ->
roles swapped on both arrays. Forced promotion / demotion when the arrays cannot
talk, checked against SPEC's rules. A role conflict is resolved by keeping one
side: the other's divergent writes are preserved before a delta resync.

Each array changes only its own side: the orchestrating array applies a side
message to itself through its own handler table and to its peer over the
mirroring channel.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Callable

import numpy as np

from core import sides
from core.array import StorageArray
from core.domain import Role, Severity
from core.endpoint import ArrayEndpoint
from core.errors import InvalidInput, MirrorError, NotFound
from core.publisher import Publish
from core.replication.host_volumes import HostVolumes
from core.replication.links import Peer
from core.replication.sync_runner import SyncRunner
from core.roles import hints

log = logging.getLogger(__name__)
FINAL_SYNC_ROUNDS = 3  # an interrupted capture, then what changed since (host writes are stopped)


def _clear_log(hv) -> None:
    """Empty a change log (nothing pending): capture everything, then complete."""
    if hv.changelog is None:
        return
    if hv.changelog.in_flight:
        hv.changelog.abort()
    hv.changelog.capture()
    hv.changelog.complete()


class RoleCoordinator:
    """Role changes of the groups of this process's arrays, and their side messages."""

    # How long a normal role change stays pending (cancellable) before it proceeds.
    role_change_delay = 0.0

    def __init__(self, arrays: Mapping[str, StorageArray], endpoints: Mapping[str, ArrayEndpoint],
                 hosts: HostVolumes, runner: SyncRunner, peer: Peer, publish: Publish,
                 group_home: Callable[[str], StorageArray]):
        self._arrays = arrays
        self._endpoints = endpoints
        self._hosts = hosts
        self._runner = runner
        self._peer = peer
        self._publish = publish
        self._group_home = group_home
        self._role_tasks: dict[str, asyncio.Task] = {}

    def _array(self, name: str) -> StorageArray:
        return self._arrays[name]

    def handlers(self, a: StorageArray) -> dict:
        """The side messages of role changes that array ``a`` answers."""
        return {
            "role.view": lambda peer, **p: self.side_view(a, **p),
            "role.mark": lambda peer, **p: self.side_mark(a, **p),
            "role.swap": lambda peer, **p: self._side_swap(a, **p),
            "role.yield": lambda peer, **p: self._side_yield(a, **p),
            "role.request": lambda peer, **p: self._side_request(a, **p),
            "role.resync": lambda peer, **p: self._side_resync(a, **p),
            "role.resolve": lambda peer, **p: self.resolve_role_conflict(p["group"], a.name),
            "pair.fail": lambda peer, **p: self._side_pair_fail(a, **p),
            "volume.owner": lambda peer, **p: self._side_owner(a, **p),
        }

    async def stop(self) -> None:
        tasks = [t for t in self._role_tasks.values() if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def on(self, orch: str, target: str, method: str, params: dict) -> dict:
        """Apply a side message on ``target``: directly when it is ``orch``, else over the channel."""
        if target == orch:
            return await self._endpoints[orch].handle_call(orch, method, params)
        return await self._peer.call(orch, target, method, params)

    def side_view(self, array, remote: str) -> dict:
        groups = []
        for g in array.groups():
            if g.remote_array != remote:
                continue
            groups.append({"name": g.name, "role": g.role, "forced": g.forced, "role_change": g.role_change,
                           "role_conflict": g.role_conflict, "orphan": g.orphan, "rp": g.last_recovery_point_id,
                           "pairs": [{"volume": p.volume.name, "remote_volume": p.remote_volume,
                                      "incomplete": p.incomplete, "orphan": p.orphan} for p in g.pairs],
                           "changed": {p.volume.name: self.changed_bytes(array, p) for p in g.pairs}})
        return {"groups": groups, "hints": hints.hints(array)}

    def changed_bytes(self, array, pair) -> int:
        hv = self._hosts.get((array.name, pair.volume.name))
        return hv.changelog.unsynchronized_bytes if hv is not None and hv.changelog is not None else 0

    def side_mark(self, array, group: str, pair: str | None = None, **flags) -> dict:
        g = array.group(group)
        target = g if pair is None else next((p for p in g.pairs if p.volume.name == pair), None)
        if target is None:
            raise NotFound(f"{array.name}/{pair} is not in group {group}", code="arvmPairNotFound")
        for k, v in flags.items():
            if k not in ("role_change", "role_conflict", "orphan", "forced", "incomplete", "failed_reason"):
                raise InvalidInput(f"cannot set '{k}' on a group side", code="invalidInput")
            setattr(target, k, v)
        if flags.get("orphan") and pair is None:
            for p in g.pairs:
                p.orphan = True
        array.db.commit()
        if flags.get("orphan"):
            array.log(Severity.WARNING, group if pair is None else f"{group}/{pair}", "arvmOrphanFound",
                      f"{'Group' if pair is None else 'Pair'} {array.name}/{pair or group} is an orphan: its "
                      f"partner was removed on {g.remote_array}; remove it to clear it")
        if flags.get("role_conflict"):
            array.log(Severity.CRITICAL, group, "arvmRoleConflict",
                      f"Group {group} is primary on both {array.name} and {g.remote_array}: role conflict; "
                      "choose the side that stays primary in the Recovery Guru")
        self._hosts.refresh_access(array)
        self._publish("group", array.name, group)
        return {"ok": True}

    def _side_swap(self, array, group: str, role: str) -> dict:
        """Take ``role`` for the group: clean change log / staging, host access follows."""
        g = array.group(group)
        self._runner.drop(array, g)
        for p in g.pairs:
            hv = self._hosts.get((array.name, p.volume.name))
            if hv is None:
                continue
            if hv.pit is not None and hv.pit.active:
                hv.pit.end()
            if hv.staging is not None:
                hv.staging.discard()
            _clear_log(hv)  # the new primary tracks only writes made from now on
        g.role = Role(role).value
        g.role_change = ""
        g.role_conflict = False
        g.forced = ""
        array.db.commit()
        hints.set_hint(array, group, False)
        self._hosts.refresh_access(array)
        array.log(Severity.INFO, group, "arvmRoleChanged", f"Group {group} is now {role} on {array.name}")
        self._publish("group", array.name, group)
        return {"ok": True}

    def _side_yield(self, array, group: str, preserve: bool = True) -> dict:
        """The loser of a role conflict (or the force-demoted side): keep its divergent writes, become secondary.

        Returns its pending regions per volume so the winner resyncs them too.
        """
        g = array.group(group)
        self._runner.drop(array, g)
        regions, files = {}, []
        for p in g.pairs:
            hv = self._hosts.get((array.name, p.volume.name))
            if hv is None or hv.changelog is None:
                continue
            pend = hv.changelog.pending_regions()
            regions[p.remote_volume] = pend.tolist()
            if preserve and len(pend):
                files.append(self._preserve(array, g, hv, pend))
        self._side_swap(array, group, Role.SECONDARY.value)
        return {"regions": regions, "preserved": files}

    def _preserve(self, array, g, hv, pend: np.ndarray) -> str:
        """Write the loser's divergent regions to ``preserved/`` with a JSON index (never silently lost)."""
        rs = self._hosts.region_size
        d = array.data_dir / "preserved"
        d.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        data_path = d / f"{g.name}-{hv.name}-{stamp}.bin"
        index = {"array": array.name, "group": g.name, "volume": hv.name, "region_size": rs,
                 "recovery_point_id": g.last_recovery_point_id, "regions": []}
        pos = 0
        with open(data_path, "wb") as f:
            for r in pend.tolist():
                off = r * rs
                n = max(0, min(rs, hv.size - off))
                f.write(hv.read(off, n))
                index["regions"].append({"offset": off, "length": n, "file_offset": pos})
                pos += n
        data_path.with_suffix(".json").write_text(json.dumps(index, indent=1))
        array.log(Severity.WARNING, g.name, "arvmDivergentDataPreserved",
                  f"{pos} bytes written on {array.name}/{hv.name} since the common recovery point were kept before "
                  f"the resync as preserved data {data_path.stem} (View > Preserved data, 'mirrorctl preserved list': "
                  "restore them into a new volume, export or delete them)")
        return str(data_path)

    async def _side_request(self, array, group: str, primary: str) -> dict:
        """The secondary ``primary`` asks this array, the current primary, to hand over the role."""
        g = array.group(group)
        if g.role != Role.PRIMARY.value:
            raise MirrorError(f"group {group} is not primary on {array.name}", code="arvmGroupNotPrimary")
        await self._orchestrate(array, group, primary, wait=False)
        return {"ok": True}

    def _side_pair_fail(self, array, volume: str, reason: str) -> dict:
        """The partner volume failed (``reason``) or was repaired (no reason): this side's pair follows."""
        pair = sides.find_pair(array, volume)
        repaired = not reason and pair.failed_reason.startswith("volume ")
        if reason or repaired:
            pair.failed_reason = reason
        array.db.commit()
        if repaired and pair.group.role == Role.PRIMARY.value:  # the group waits for Resume, as on the primary
            self._runner.state(array.name, pair.group.name).waiting_for_user = True
        self._publish("pair", array.name, f"{pair.group.name}/{volume}")
        return {"ok": True}

    def _side_owner(self, array, owners: dict) -> dict:
        for name, ctrl in owners.items():
            row = array.volume(name)
            if not array.controller_offline(ctrl) and row.current_owner != ctrl:
                row.current_owner = ctrl
                array.log(Severity.INFO, name, "volumeOwnerChanged",
                          f"Secondary {array.name}/{name} now owned by controller {ctrl}, following its primary")
        array.db.commit()
        return {"ok": True}

    # -- normal role change -------------------------------------------------------------------
    async def role_change(self, group: str, array: str, force: bool = False, wait: bool = True) -> dict:
        """Make ``array`` the primary of ``group`` (lossless when both arrays talk; ``force`` when they cannot)."""
        if array not in self._arrays:
            return await self._role_change_to_remote(group, array, force, wait)
        a = self._array(array)
        g = a.group(group)
        if g.role_conflict:
            if force:
                raise MirrorError(f"cannot force the promotion of {group}: its role conflict is being resolved; "
                                  "choose the side that stays primary instead", code="arvmRoleConflict")
            return await self.resolve_role_conflict(group, array)
        if g.role == Role.PRIMARY.value:
            raise MirrorError(f"group {group} is already primary on {array}", code="arvmGroupAlreadyPrimary")
        if not force:
            self._check_normal(a, g)
        if not await self._peer.can_reach(array, g.remote_array):
            if not force:
                raise MirrorError(f"{array} cannot reach {g.remote_array}; a role change needs both arrays, or "
                                  "force the promotion (--force)", code="arvmRemoteArrayUnreachable")
            return await self._force_promote(a, g)
        self._check_normal(a, g)
        # The primary's array runs the change (and checks its own side).
        await self._peer.call(array, g.remote_array, "role.request", {"group": group, "primary": array})
        return {"group": group, "primary": array, "state": "pending"}

    async def _role_change_to_remote(self, group: str, remote: str, force: bool, wait: bool) -> dict:
        """Make ``remote`` primary, acting from this array's (primary) side of the group."""
        home = next((a for a in self._arrays.values()
                     if (g := a.find_group(group)) is not None and g.remote_array == remote), None)
        if home is None:
            raise NotFound(f"no mirror consistency group '{group}' between an array here and {remote}",
                           code="arvmGroupNotFound")
        g = home.group(group)
        if g.role_conflict:
            if force:
                raise MirrorError(f"cannot force a role change of {group}: its role conflict is being resolved; "
                                  "choose the side that stays primary instead", code="arvmRoleConflict")
            if not await self._peer.can_reach(home.name, remote):
                raise MirrorError(f"{home.name} cannot reach {remote}; restore the link first",
                                  code="arvmRemoteArrayUnreachable")
            return await self._peer.call(home.name, remote, "role.resolve", {"group": group}, timeout=600)
        if g.role != Role.PRIMARY.value:
            raise MirrorError(f"group {group} is already primary on {remote}", code="arvmGroupAlreadyPrimary")
        if not await self._peer.can_reach(home.name, remote):
            if not force:
                raise MirrorError(f"{home.name} cannot reach {remote}; a role change needs both arrays, or "
                                  "force the demotion (--force)", code="arvmRemoteArrayUnreachable")
            return self._force_demote(home, g)
        self._check_normal(home, g)
        return await self._orchestrate(home, group, remote, wait)

    async def _orchestrate(self, pa, group: str, new_primary: str, wait: bool) -> dict:
        """Run a normal role change from the current primary ``pa``: pending, then in progress, then swap."""
        pg = pa.group(group)
        self._check_normal(pa, pg)
        for side in (pa.name, new_primary):
            await self.on(pa.name, side, "role.mark", {"group": group, "role_change": "pending"})
        pa.log(Severity.INFO, group, "arvmRoleChangePending",
               f"Role change of {group} requested: {new_primary} becomes primary (pending; may be cancelled)")
        task = asyncio.get_running_loop().create_task(self._run_role_change(pa, group, new_primary))
        self._role_tasks[group] = task
        if not wait:
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            return {"group": group, "primary": new_primary, "state": "pending"}
        await task
        return {"group": group, "primary": new_primary, "state": "done"}

    async def promote(self, group: str, array: str, force: bool = False, wait: bool = True) -> dict:
        return await self.role_change(group, array, force=force, wait=wait)

    async def demote(self, group: str, array: str, force: bool = False, wait: bool = True) -> dict:
        a = self._array(array)
        g = a.group(group)
        if g.role != Role.PRIMARY.value:
            raise MirrorError(f"group {group} is already secondary on {array}", code="arvmGroupAlreadySecondary")
        if not force:  # what this side knows refuses first (an incomplete member is known only here)
            self._check_normal(a, g)
        if not await self._peer.can_reach(array, g.remote_array):
            if not force:
                raise MirrorError(f"{array} cannot reach {g.remote_array}; a role change needs both arrays, or "
                                  "force the demotion (--force)", code="arvmRemoteArrayUnreachable")
            return self._force_demote(a, g)
        return await self.role_change(group, g.remote_array, wait=wait)

    def _check_normal(self, a, g) -> None:
        if g.role_change == "pending":
            raise MirrorError(f"a role change of {g.name} is already pending; cancel it first",
                              code="arvmRoleChangePending")
        if g.role_change == "in_progress":
            raise MirrorError(f"a role change of {g.name} is in progress; wait for it to finish",
                              code="arvmRoleChangeInProgress")
        if g.role_conflict:
            raise MirrorError(f"group {g.name} is in a role conflict; resolve it in the Recovery Guru",
                              code="arvmRoleConflict")
        if any(p.incomplete for p in g.pairs):
            raise MirrorError(f"group {g.name} has an incomplete member; complete or remove it first",
                              code="arvmGroupHasIncompleteMember")

    async def role_cancel(self, group: str) -> None:
        """Cancel a pending role change (one in progress cannot be cancelled)."""
        array = self._group_home(group)
        g = array.group(group)
        if g.role_change == "in_progress":
            raise MirrorError(f"the role change of {group} is in progress and cannot be cancelled",
                              code="arvmRoleChangeInProgress")
        if g.role_change != "pending":
            raise MirrorError(f"group {group} has no pending role change", code="arvmNoRoleChangePending")
        task = self._role_tasks.pop(group, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for side in (array.name, g.remote_array):
            await self.on(array.name, side, "role.mark", {"group": group, "role_change": ""})
        array.log(Severity.INFO, group, "arvmRoleChangeCancelled", f"Role change of {group} cancelled")

    async def _run_role_change(self, pa, group: str, new_primary: str) -> None:
        await asyncio.sleep(self.role_change_delay)
        if pa.group(group).role_change != "pending":
            return  # cancelled from the other array while pending
        st = self._runner.state(pa.name, group)
        if st.running:  # the pending phase waits for the running sync
            await asyncio.gather(st.task, return_exceptions=True)
        g = pa.group(group)
        for side in (pa.name, new_primary):
            await self.on(pa.name, side, "role.mark", {"group": group, "role_change": "in_progress"})
        pa.log(Severity.INFO, group, "arvmRoleChangeInProgress",
               f"Role change of {group} in progress: host writes stopped, the last changes are synchronized")
        try:
            await self.final_sync(pa, g)
        except MirrorError:
            for side in (pa.name, new_primary):
                await self.on(pa.name, side, "role.mark", {"group": group, "role_change": ""})
            pa.log(Severity.CRITICAL, group, "arvmRoleChangeFailed",
                   f"Role change of {group} failed: the last changes could not be synchronized; roles unchanged")
            raise
        await self.on(pa.name, new_primary, "role.swap", {"group": group, "role": Role.PRIMARY.value})
        await self.on(pa.name, pa.name, "role.swap", {"group": group, "role": Role.SECONDARY.value})
        self._runner.states.pop((pa.name, group), None)
        self._role_tasks.pop(group, None)

    async def final_sync(self, array, g) -> None:
        """Sync what the secondary lacks, even though the scheduler holds the group (role change).

        Host writes are stopped by now. A capture left by an interrupted sync is older
        than the last writes: it is sent first, then what changed since, so the
        secondary that becomes primary holds every acknowledged write.
        """
        st = self._runner.state(array.name, g.name)
        if st.running:
            await asyncio.gather(st.task, return_exceptions=True)
        for _ in range(FINAL_SYNC_ROUNDS):
            pending = any(self._hosts[(array.name, p.volume.name)].changelog.pending_regions().size
                          for p in g.pairs if not p.incomplete and not p.orphan)
            if not pending and st.transfer is None:
                return
            fut = asyncio.get_running_loop().create_future()
            st.waiters.append(fut)
            self._runner.start_sync(array, g, st)
            await fut
        raise MirrorError(f"the last changes of {g.name} are still not on {g.remote_array} after "
                          f"{FINAL_SYNC_ROUNDS} synchronizations; roles unchanged", code="arvmRoleChangeFailed")

    # -- forced changes ---------------------------------------------------------------------------
    def forced_promotion_refusal(self, array, g) -> MirrorError | None:
        """The first SPEC rule that forbids a forced promotion of ``g`` on ``array``, or None."""
        rules = [
            (not g.pairs, "arvmGroupEmpty", "the group has no members"),
            (g.role_conflict, "arvmRoleConflict", "the group's role conflict is being resolved"),
            (g.role_change == "pending", "arvmRoleChangePending", "a role change of the group is pending"),
            (g.role_change == "in_progress", "arvmRoleChangeInProgress", "a role change of the group is in progress"),
            (any(p.volume.failed for p in g.pairs),
             "arvmMemberVolumeFailed", "a member volume has failed"),
            (any(p.failed_reason for p in g.pairs), "arvmGroupFailed",
             "the group is failed (a member or its reserved capacity failed)"),
            (any(not p.initial_sync_done for p in g.pairs), "arvmInitialSyncInProgress",
             "a member is still in its initial synchronization"),
            (any(not p.recovery_point_available for p in g.pairs), "arvmRecoveryPointUnavailable",
             "a member has no recovery point image"),
        ]
        for bad, code, rule in rules:
            if bad:
                return MirrorError(f"cannot force the promotion of {g.name} on {array.name}: {rule}", code=code)
        return None

    async def _force_promote(self, a, g) -> dict:
        refusal = self.forced_promotion_refusal(a, g)
        if refusal is not None:
            raise refusal
        for p in g.pairs:  # back to the last recovery point: uncommitted staging never reaches the volume
            hv = self._hosts.volume(a.name, p.volume.name)
            hv.staging.discard()
            _clear_log(hv)  # from now on it tracks this side's divergent writes
        g.role, g.forced = Role.PRIMARY.value, "promoted"
        a.db.commit()
        hints.set_hint(a, g.name, True)
        self._hosts.refresh_access(a)
        a.log(Severity.CRITICAL, g.name, "arvmForcedPromotion",
              f"Group {g.name} force-promoted on {a.name} while {g.remote_array} is unreachable; volumes rolled "
              f"back to recovery point {g.last_recovery_point_id} and writable by hosts")
        self._publish("group", a.name, g.name)
        return {"group": g.name, "primary": a.name, "state": "forced"}

    def _force_demote(self, a, g) -> dict:
        if g.role_change:
            raise MirrorError(f"a role change of {g.name} is {g.role_change.replace('_', ' ')}",
                              code="arvmRoleChangeInProgress" if g.role_change == "in_progress"
                              else "arvmRoleChangePending")
        self._runner.drop(a, g)  # its regions go back to the change log: they are this side's changes
        g.role, g.forced = Role.SECONDARY.value, "demoted"
        a.db.commit()
        hints.set_hint(a, g.name, True)
        self._hosts.refresh_access(a)
        a.log(Severity.CRITICAL, g.name, "arvmForcedDemotion",
              f"Group {g.name} force-demoted on {a.name} while {g.remote_array} is unreachable; host writes refused")
        self._publish("group", a.name, g.name)
        return {"group": g.name, "secondary": a.name, "state": "forced"}

    async def resync_winner(self, orch: str, winner: str, name: str, regions: dict) -> None:
        """Mark the loser's changed regions dirty on the winner and sync: never a full copy."""
        if winner not in self._arrays:  # the winner runs in another process: it resyncs by itself
            await self._peer.call(orch, winner, "role.resync", {"group": name, "regions": regions})
            return
        wa = self._array(winner)
        wg = wa.group(name)
        for p in wg.pairs:
            hv = self._hosts.volume(winner, p.volume.name)
            if hv.changelog is not None and regions.get(p.volume.name):
                hv.changelog.mark_all(regions[p.volume.name])
        wg.role_change, wg.role_conflict, wg.forced = "", False, ""
        wa.db.commit()
        hints.set_hint(wa, name, False)
        self._hosts.refresh_access(wa)
        self._runner.drop(wa, wg)
        wa.log(Severity.INFO, name, "arvmRoleChangeCompleted",
               f"Group {name}: {winner} is primary; resynchronizing only the regions changed on either side")
        self._publish("group", winner, name)
        if wg.pairs:
            await self._resync(wa, wg)

    async def _resync(self, array, g) -> None:
        """One sync of everything pending now: the loser's regions and the winner's own changes.

        The winner is a primary taking host writes (it never stopped): writes made while
        this sync runs belong to the next one. Waiting for the log to drain, as a planned
        role change does once hosts are stopped, failed a resolution that had happened
        with "roles unchanged" while hosts kept writing.
        """
        st = self._runner.state(array.name, g.name)
        if st.running:
            await asyncio.gather(st.task, return_exceptions=True)
        fut = asyncio.get_running_loop().create_future()
        st.waiters.append(fut)
        self._runner.start_sync(array, g, st)
        await fut

    def _side_resync(self, array, group: str, regions: dict) -> dict:
        """This array won: resync the loser in the background (the orchestrator does not wait)."""
        task = asyncio.get_running_loop().create_task(self.resync_winner(array.name, array.name, group, regions))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._role_tasks[f"resync {group}"] = task
        return {"ok": True}


    async def resolve_role_conflict(self, group: str, keep: str) -> dict:
        """Keep ``keep`` as primary: preserve the other side's divergent writes, demote it, delta-resync it."""
        a = self._array(keep)
        g = a.group(group)
        if not g.role_conflict:
            raise MirrorError(f"group {group} is not in a role conflict", code="arvmNoRoleConflict")
        loser = g.remote_array
        if not await self._peer.can_reach(keep, loser):
            raise MirrorError(f"{keep} cannot reach {loser}; restore the link first",
                              code="arvmRemoteArrayUnreachable")
        got = await self.on(keep, loser, "role.yield", {"group": group, "preserve": True})
        await self.resync_winner(keep, keep, group, got["regions"])
        return {"group": group, "primary": keep, "preserved": got["preserved"]}
