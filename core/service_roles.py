"""Roles, failover and recovery (SPEC §2 "Roles", "Orphans", "Controller ownership").

Normal role change (both arrays talking): pending -> in progress -> a final sync ->
roles swapped on both arrays. Forced promotion / demotion when the arrays cannot
talk, checked against SPEC's rules. When the link returns the two sides reconcile:
role conflict (both primary; resolved by the Recovery Guru, the loser's divergent
writes preserved before a delta resync), double forced change (finished by the
system), orphans and incomplete pairs. Lab faults (failed volumes, controller
resets, stopped arrays) live here too, since their effects are role and ownership
rules.

Each array changes only its own side: the orchestrating array applies a side
message to itself directly and to its peer over the mirroring channel.
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone

import numpy as np

from core import sides
from core.domain import Role, Severity
from core.errors import InvalidInput, MirrorError, NotFound
from core.guru import GuruService
from core.refs import split_ref

log = logging.getLogger(__name__)
HINTS_FILE = "reconcile.json"


def _clear_log(hv) -> None:
    """Empty a change log (nothing pending): capture everything, then complete."""
    if hv.changelog is None:
        return
    if hv.changelog.in_flight:
        hv.changelog.abort()
    hv.changelog.capture()
    hv.changelog.complete()


class RoleService(GuruService):
    """Mixed into :class:`core.engine.Engine` (first in its bases)."""

    # How long a normal role change stays pending (cancellable) before it proceeds.
    role_change_delay = 0.0

    # -- side messages ------------------------------------------------------------------
    def _register_role_methods(self) -> None:
        for name, ep in self.endpoints.items():
            if getattr(ep, "_roles_registered", False):
                continue
            ep._roles_registered = True
            a = ep.array
            ep.register("role.view", lambda peer, _a=a, **p: self._side_view(_a, **p))
            ep.register("role.mark", lambda peer, _a=a, **p: self._side_mark(_a, **p))
            ep.register("role.swap", lambda peer, _a=a, **p: self._side_swap(_a, **p))
            ep.register("role.yield", lambda peer, _a=a, **p: self._side_yield(_a, **p))
            ep.register("role.request", lambda peer, _a=a, **p: self._side_request(_a, **p))
            ep.register("pair.fail", lambda peer, _a=a, **p: self._side_pair_fail(_a, **p))
            ep.register("volume.owner", lambda peer, _a=a, **p: self._side_owner(_a, **p))
            # between arrays in separate processes (core/service_reconcile.py)
            ep.register("reconcile.request", lambda peer, _a=a, **p: self._side_reconcile_request(_a, **p))
            ep.register("role.unhint", lambda peer, _a=a, **p: self._side_unhint(_a))
            ep.register("role.peer_changed", lambda peer, _a=a, **p: self._side_peer_changed(_a, **p))
            ep.register("role.resync", lambda peer, _a=a, **p: self._side_resync(_a, **p))
            ep.register("role.resolve", lambda peer, _a=a, **p: self.resolve_role_conflict(p["group"], _a.name))
            ep.register("pair.complete", lambda peer, _a=a, **p: self._complete_pair(_a, **p))

    def _start_roles(self) -> None:
        self._register_role_methods()
        self._was_reachable: dict[tuple[str, str], bool] = {}
        self._reconcile_asked: dict[tuple[str, str], float] = {}
        self.peer_changed: dict[tuple[str, str], int] = {}  # (local, group) -> bytes the remote changed
        self._reconciling: dict[tuple[str, str], asyncio.Task] = {}
        self._role_tasks: dict[str, asyncio.Task] = {}

    async def _stop_roles(self) -> None:
        tasks = [t for t in list(getattr(self, "_reconciling", {}).values()) + list(
            getattr(self, "_role_tasks", {}).values()) if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _on(self, orch: str, target: str, method: str, params: dict) -> dict:
        """Apply a side message on ``target``: directly when it is ``orch``, else over the channel."""
        if target == orch:
            return await self.endpoints[orch].handle_call(orch, method, params)
        return await self.peer_call(orch, target, method, params)

    def _side_view(self, array, remote: str) -> dict:
        groups = []
        for g in array.groups():
            if g.remote_array != remote:
                continue
            groups.append({"name": g.name, "role": g.role, "forced": g.forced, "role_change": g.role_change,
                           "role_conflict": g.role_conflict, "orphan": g.orphan, "rp": g.last_recovery_point_id,
                           "pairs": [{"volume": p.volume.name, "remote_volume": p.remote_volume,
                                      "incomplete": p.incomplete, "orphan": p.orphan} for p in g.pairs],
                           "changed": {p.volume.name: self._changed_bytes(array, p) for p in g.pairs}})
        return {"groups": groups, "hints": self._hints(array)}

    def _changed_bytes(self, array, pair) -> int:
        hv = self.hosts.get((array.name, pair.volume.name))
        return hv.changelog.unsynchronized_bytes if hv is not None and hv.changelog is not None else 0

    def _side_mark(self, array, group: str, pair: str | None = None, **flags) -> dict:
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
        self.refresh_access(array)
        self.publish("group", array.name, group)
        return {"ok": True}

    def _side_swap(self, array, group: str, role: str) -> dict:
        """Take ``role`` for the group: clean change log / staging, host access follows."""
        g = array.group(group)
        self._drop_transfer(array, g)
        for p in g.pairs:
            hv = self.hosts.get((array.name, p.volume.name))
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
        self._set_hint(array, group, False)
        self.refresh_access(array)
        array.log(Severity.INFO, group, "arvmRoleChanged", f"Group {group} is now {role} on {array.name}")
        self.publish("group", array.name, group)
        return {"ok": True}

    def _side_yield(self, array, group: str, preserve: bool = True) -> dict:
        """The loser of a role conflict (or the force-demoted side): keep its divergent writes, become secondary.

        Returns its pending regions per volume so the winner resyncs them too.
        """
        g = array.group(group)
        self._drop_transfer(array, g)
        regions, files = {}, []
        for p in g.pairs:
            hv = self.hosts.get((array.name, p.volume.name))
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
        rs = self.region_size
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
                  f"{pos} bytes written on {array.name}/{hv.name} since the common recovery point were kept in "
                  f"{data_path} before the resync")
        return str(data_path)

    def _drop_transfer(self, array, g) -> None:
        st = self.runner.states.get((array.name, g.name))
        if st is None:
            return
        if st.running:
            st.task.cancel()
        if st.transfer is not None:
            self.runner.abandon(array, g, st)
        st.paused = st.waiting_for_user = st.manual_requested = False

    async def _side_request(self, array, group: str, primary: str) -> dict:
        """The secondary ``primary`` asks this array, the current primary, to hand over the role."""
        g = array.group(group)
        if g.role != Role.PRIMARY.value:
            raise MirrorError(f"group {group} is not primary on {array.name}", code="arvmGroupNotPrimary")
        await self._orchestrate(array, group, primary, wait=False)
        return {"ok": True}

    def _side_pair_fail(self, array, volume: str, reason: str) -> dict:
        pair = sides.find_pair(array, volume)
        if reason or pair.failed_reason.startswith("volume "):
            pair.failed_reason = reason
        array.db.commit()
        self.publish("pair", array.name, f"{pair.group.name}/{volume}")
        return {"ok": True}

    def _side_owner(self, array, owners: dict) -> dict:
        offline = set(self.lab.faults.offline_controllers)
        for name, ctrl in owners.items():
            row = array.volume(name)
            if f"{array.name}/{ctrl}" not in offline and row.current_owner != ctrl:
                row.current_owner = ctrl
                array.log(Severity.INFO, name, "volumeOwnerChanged",
                          f"Secondary {array.name}/{name} now owned by controller {ctrl}, following its primary")
        array.db.commit()
        return {"ok": True}

    # -- hints: what changed on this side while apart ------------------------------------
    def _hints(self, array) -> list[str]:
        path = array.data_dir / HINTS_FILE
        return json.loads(path.read_text()).get("groups", []) if path.exists() else []

    def _set_hint(self, array, group: str, on: bool) -> None:
        hints = set(self._hints(array))
        if (group in hints) == on:
            return
        hints.add(group) if on else hints.discard(group)
        (array.data_dir / HINTS_FILE).write_text(json.dumps({"groups": sorted(hints)}))

    # -- normal role change -------------------------------------------------------------------
    async def role_change(self, group: str, array: str, force: bool = False, wait: bool = True) -> dict:
        """Make ``array`` the primary of ``group`` (lossless when both arrays talk; ``force`` when they cannot)."""
        if array not in self.arrays:
            return await self._role_change_to_remote(group, array, force, wait)
        a = self.get_array(array)
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
            other = self.arrays.get(g.remote_array)
            if other is not None and other.find_group(group) is not None:
                self._check_normal(other, other.group(group))
        if not await self.can_reach(array, g.remote_array):
            if not force:
                raise MirrorError(f"{array} cannot reach {g.remote_array}; a role change needs both arrays, or "
                                  "force the promotion (--force)", code="arvmRemoteArrayUnreachable")
            return await self._force_promote(a, g)
        self._check_normal(a, g)
        primary = g.remote_array
        if primary not in self.arrays:  # the primary's engine runs the change
            await self.peer_call(array, primary, "role.request", {"group": group, "primary": array})
            return {"group": group, "primary": array, "state": "pending"}
        return await self._orchestrate(self.get_array(primary), group, array, wait)

    async def _role_change_to_remote(self, group: str, remote: str, force: bool, wait: bool) -> dict:
        """Make ``remote`` (an array in another process) primary, acting from this side of the group."""
        home = next((a for a in self.arrays.values()
                     if (g := a.find_group(group)) is not None and g.remote_array == remote), None)
        if home is None:
            raise NotFound(f"no mirror consistency group '{group}' between an array here and {remote}",
                           code="arvmGroupNotFound")
        g = home.group(group)
        if g.role_conflict:
            if force:
                raise MirrorError(f"cannot force a role change of {group}: its role conflict is being resolved; "
                                  "choose the side that stays primary instead", code="arvmRoleConflict")
            if not await self.can_reach(home.name, remote):
                raise MirrorError(f"{home.name} cannot reach {remote}; restore the link first",
                                  code="arvmRemoteArrayUnreachable")
            return await self.peer_call(home.name, remote, "role.resolve", {"group": group}, timeout=600)
        if g.role != Role.PRIMARY.value:
            raise MirrorError(f"group {group} is already primary on {remote}", code="arvmGroupAlreadyPrimary")
        if not await self.can_reach(home.name, remote):
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
            await self._on(pa.name, side, "role.mark", {"group": group, "role_change": "pending"})
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
        a = self.get_array(array)
        g = a.group(group)
        if g.role != Role.PRIMARY.value:
            raise MirrorError(f"group {group} is already secondary on {array}", code="arvmGroupAlreadySecondary")
        if not await self.can_reach(array, g.remote_array):
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
        array = self.group_home(group)
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
            await self._on(array.name, side, "role.mark", {"group": group, "role_change": ""})
        array.log(Severity.INFO, group, "arvmRoleChangeCancelled", f"Role change of {group} cancelled")

    async def _run_role_change(self, pa, group: str, new_primary: str) -> None:
        await asyncio.sleep(self.role_change_delay)
        if pa.group(group).role_change != "pending":
            return  # cancelled from the other array while pending
        st = self.runner.state(pa.name, group)
        if st.running:  # the pending phase waits for the running sync
            await asyncio.gather(st.task, return_exceptions=True)
        g = pa.group(group)
        for side in (pa.name, new_primary):
            await self._on(pa.name, side, "role.mark", {"group": group, "role_change": "in_progress"})
        pa.log(Severity.INFO, group, "arvmRoleChangeInProgress",
               f"Role change of {group} in progress: host writes stopped, the last changes are synchronized")
        try:
            await self._final_sync(pa, g)
        except MirrorError:
            for side in (pa.name, new_primary):
                await self._on(pa.name, side, "role.mark", {"group": group, "role_change": ""})
            pa.log(Severity.CRITICAL, group, "arvmRoleChangeFailed",
                   f"Role change of {group} failed: the last changes could not be synchronized; roles unchanged")
            raise
        await self._on(pa.name, new_primary, "role.swap", {"group": group, "role": Role.PRIMARY.value})
        await self._on(pa.name, pa.name, "role.swap", {"group": group, "role": Role.SECONDARY.value})
        self.runner.states.pop((pa.name, group), None)
        self._role_tasks.pop(group, None)

    async def _final_sync(self, array, g) -> None:
        """Sync what the secondary lacks, even though the scheduler holds the group (role change)."""
        st = self.runner.state(array.name, g.name)
        if st.running:
            await asyncio.gather(st.task, return_exceptions=True)
        pending = any(self.hosts[(array.name, p.volume.name)].changelog.pending_regions().size
                      for p in g.pairs if not p.incomplete and not p.orphan)
        if not pending and st.transfer is None:
            return
        fut = asyncio.get_running_loop().create_future()
        st.waiters.append(fut)
        self.runner.start_sync(array, g, st)
        await fut

    # -- forced changes ---------------------------------------------------------------------------
    def forced_promotion_refusal(self, array, g) -> MirrorError | None:
        """The first SPEC rule that forbids a forced promotion of ``g`` on ``array``, or None."""
        failed = set(self.lab.faults.failed_volumes)
        rules = [
            (not g.pairs, "arvmGroupEmpty", "the group has no members"),
            (g.role_conflict, "arvmRoleConflict", "the group's role conflict is being resolved"),
            (g.role_change == "pending", "arvmRoleChangePending", "a role change of the group is pending"),
            (g.role_change == "in_progress", "arvmRoleChangeInProgress", "a role change of the group is in progress"),
            (any(p.volume.failed or f"{array.name}/{p.volume.name}" in failed for p in g.pairs),
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
            hv = self.host_volume(a.name, p.volume.name)
            hv.staging.discard()
            _clear_log(hv)  # from now on it tracks this side's divergent writes
        g.role, g.forced = Role.PRIMARY.value, "promoted"
        a.db.commit()
        self._set_hint(a, g.name, True)
        self.refresh_access(a)
        a.log(Severity.CRITICAL, g.name, "arvmForcedPromotion",
              f"Group {g.name} force-promoted on {a.name} while {g.remote_array} is unreachable; volumes rolled "
              f"back to recovery point {g.last_recovery_point_id} and writable by hosts")
        self.publish("group", a.name, g.name)
        return {"group": g.name, "primary": a.name, "state": "forced"}

    def _force_demote(self, a, g) -> dict:
        if g.role_change:
            raise MirrorError(f"a role change of {g.name} is {g.role_change.replace('_', ' ')}",
                              code="arvmRoleChangeInProgress" if g.role_change == "in_progress"
                              else "arvmRoleChangePending")
        self._drop_transfer(a, g)  # its regions go back to the change log: they are this side's changes
        g.role, g.forced = Role.SECONDARY.value, "demoted"
        a.db.commit()
        self._set_hint(a, g.name, True)
        self.refresh_access(a)
        a.log(Severity.CRITICAL, g.name, "arvmForcedDemotion",
              f"Group {g.name} force-demoted on {a.name} while {g.remote_array} is unreachable; host writes refused")
        self.publish("group", a.name, g.name)
        return {"group": g.name, "secondary": a.name, "state": "forced"}

    # -- pairs and groups while apart -------------------------------------------------------------
    async def add_pair(self, group: str, primary: str, secondary: str, reserved_percent: float = 20,
                       secondary_reserved_percent: float | None = None):
        pa, pv = split_ref(primary)
        sa, sv = split_ref(secondary)
        g = self.get_array(pa).find_group(group)
        if g is None or g.role != Role.PRIMARY.value or await self.can_reach(pa, sa) or g.remote_array != sa:
            return await super().add_pair(group, primary, secondary, reserved_percent, secondary_reserved_percent)
        local = self.get_array(pa)
        sides.create_pair_side(local, group, pv, sv, reserved_percent, incomplete=True)
        row = local.pair_of(local.volume(pv))
        self.runner.pair_added(local, row)
        self._set_hint(local, group, True)
        local.log(Severity.WARNING, f"{group}/{pv}", "arvmPairIncomplete",
                  f"Pair {primary} -> {secondary} created while {sa} is unreachable: incomplete until the link returns")
        self.publish("pair", pa, f"{group}/{pv}")
        return self.pair_snapshot(local, row)

    async def remove_pair(self, ref: str) -> None:
        a, v = split_ref(ref)
        array = self.get_array(a)
        pair = sides.find_pair(array, v)
        gname = pair.group.name
        if not (pair.orphan or pair.incomplete or pair.group.orphan):
            if not await self.can_reach(a, pair.group.remote_array):
                self._set_hint(array, gname, True)
            return await super().remove_pair(ref)
        # An orphan's partner is gone: remove only this side, the remote is not asked.
        self.remove_local_pair_side(array, v, gname)

    async def delete_group(self, name: str) -> None:
        array = self.group_home(name)
        g = array.group(name)
        if not g.orphan:
            if not await self.can_reach(array.name, g.remote_array):
                self._set_hint(array, name, True)
            return await super().delete_group(name)
        for p in list(g.pairs):
            self.detach_pair_volume(array.name, p.volume.name)
        sides.delete_group_side(array, name, force=True)
        self.runner.states.pop((array.name, name), None)
        self.refresh_access(array)
        self.publish("group", array.name, name)
