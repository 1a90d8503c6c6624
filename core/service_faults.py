"""Controller ownership and the lab's injected faults (failed volumes, controller resets, stopped arrays).

Their effects are role and ownership rules (SPEC §2 "Controller ownership",
"Failures"): a failed secondary makes its pair Failed and the group System
suspended; a reset controller hands its volumes to the other one, which finishes
interrupted remote writes from the log in reserved capacity.
"""
from __future__ import annotations

import asyncio
import logging

from core.domain import Role, Severity
from core.errors import InvalidInput, MirrorError, NotFound
from core.refs import split_ref

log = logging.getLogger(__name__)


class FaultService:
    """Mixed into :class:`core.engine.Engine`, before :class:`core.service_roles.RoleService`."""

    # -- ownership -------------------------------------------------------------------------------------
    async def set_volume_owner(self, ref: str, ctrl: str) -> None:
        a, v = split_ref(ref)
        array = self.get_array(a)
        if ctrl not in ("A", "B"):
            raise InvalidInput(f"controller '{ctrl}' must be A or B", code="invalidController")
        if f"{a}/{ctrl}" in self.lab.faults.offline_controllers:
            raise MirrorError(f"controller {a}/{ctrl} is offline; restore it first", code="controllerOffline")
        row = array.volume(v)
        row.preferred_owner = row.current_owner = ctrl
        array.db.commit()
        array.log(Severity.INFO, v, "volumeOwnerChanged", f"Volume {a}/{v} now owned by controller {ctrl}")
        self.publish("volume", a, v)

    # -- lab faults ------------------------------------------------------------------------------------
    def _save_faults(self) -> None:
        self.lab.save()

    def _reload(self):
        return self.lab.reread()

    async def volume_fail(self, ref: str) -> None:
        """Lab: fail a volume; its pair fails and its group is system suspended."""
        a, v = split_ref(ref)
        array = self.get_array(a)
        row = array.volume(v)
        before = self._reload()
        if ref not in self.lab.faults.failed_volumes:
            self.lab.faults.failed_volumes.append(ref)
        self._save_faults()
        row.failed = True
        array.db.commit()
        await self._apply_faults(before)
        array.log(Severity.CRITICAL, v, "volumeFailed", f"Volume {ref} failed")
        pair = array.pair_of(row)
        if pair is not None:
            reason = f"volume {ref} failed; repair it, then resume the group"
            pair.failed_reason = reason
            array.db.commit()
            st = self.runner.primary_state(array, pair.group)
            if st is not None and st.running:
                st.task.cancel()
            try:
                await self.peer_call(a, pair.group.remote_array, "pair.fail",
                                     {"volume": pair.remote_volume, "reason": reason})
            except MirrorError:
                pass
        self.publish("volume", a, v)

    async def volume_repair(self, ref: str) -> None:
        """Lab: repair a failed volume; the group waits for Resume, which resends only what changed."""
        a, v = split_ref(ref)
        array = self.get_array(a)
        row = array.volume(v)
        before = self._reload()
        if ref in self.lab.faults.failed_volumes:
            self.lab.faults.failed_volumes.remove(ref)
        self._save_faults()
        row.failed = False
        array.db.commit()
        await self._apply_faults(before)
        pair = array.pair_of(row)
        if pair is not None:
            if pair.failed_reason.startswith("volume "):
                pair.failed_reason = ""
            array.db.commit()
            try:
                await self.peer_call(a, pair.group.remote_array, "pair.fail",
                                     {"volume": pair.remote_volume, "reason": ""})
            except MirrorError:
                pass
            g = pair.group
            prim = a if g.role == Role.PRIMARY.value else g.remote_array
            self.runner.state(prim, g.name).waiting_for_user = True
        array.log(Severity.INFO, v, "volumeRepaired", f"Volume {ref} repaired; resume its group")
        self.publish("volume", a, v)

    @staticmethod
    def _controller(array, ctrl: str):
        """The array's controller ``ctrl``; an unknown label is refused before any fault is recorded or logged."""
        controllers = array.controllers()
        for c in controllers:
            if c.label == ctrl:
                return c
        labels = ", ".join(c.label for c in controllers)
        raise NotFound(f"array {array.name} has no controller '{ctrl}'; its controllers are {labels}",
                       code="controllerNotFound")

    async def controller_reset(self, array: str, ctrl: str) -> None:
        """Lab: reset a controller; its volumes move to the other one, an interrupted sync resumes from the log."""
        a = self.get_array(array)
        controller = self._controller(a, ctrl)
        key = f"{array}/{ctrl}"
        self._reload()
        if key not in self.lab.faults.offline_controllers:
            self.lab.faults.offline_controllers.append(key)
        self._save_faults()
        other = "B" if ctrl == "A" else "A"
        controller.status = "offline"
        moved = []
        for row in a.volumes():
            if row.current_owner == ctrl:
                row.current_owner = other
                moved.append(row.name)
        a.db.commit()
        a.log(Severity.CRITICAL, f"controller {ctrl}", "controllerOffline",
              f"Controller {key} reset; {len(moved)} volume(s) moved to controller {other}")
        for (an, gname), st in list(self.runner.states.items()):
            g = self.get_array(an).find_group(gname)
            if g is None or not st.running:
                continue
            if an == array or g.remote_array == array:  # the remote write is interrupted mid-way
                st.task.cancel()
                await asyncio.gather(st.task, return_exceptions=True)
        self.publish("array", array, key)

    async def controller_restore(self, array: str, ctrl: str) -> None:
        a = self.get_array(array)
        controller = self._controller(a, ctrl)
        key = f"{array}/{ctrl}"
        self._reload()
        if key in self.lab.faults.offline_controllers:
            self.lab.faults.offline_controllers.remove(key)
        self._save_faults()
        controller.status = "optimal"
        for row in a.volumes():
            if row.preferred_owner == ctrl:
                row.current_owner = ctrl
        a.db.commit()
        a.log(Severity.INFO, f"controller {ctrl}", "controllerRestored", f"Controller {key} back online")
        self.publish("array", array, key)

    async def array_stop(self, array: str) -> None:
        """Lab: stop an array (unreachable, its volumes refuse host I/O)."""
        self.get_array(array)
        before = self._reload()
        if array not in self.lab.faults.stopped_arrays:
            self.lab.faults.stopped_arrays.append(array)
        self._save_faults()
        await self._apply_faults(before)
        self.publish("array", array, "stopped")

    async def array_start(self, array: str) -> None:
        self.get_array(array)
        before = self._reload()
        if array in self.lab.faults.stopped_arrays:
            self.lab.faults.stopped_arrays.remove(array)
        self._save_faults()
        await self._apply_faults(before)
        self.publish("array", array, "started")
