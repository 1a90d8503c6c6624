"""Controller ownership and the lab's injected faults (failed volumes, controller resets).

Their effects are role and ownership rules (SPEC §2 "Controller ownership",
"Failures"): a failed secondary makes its pair Failed and the group System
suspended; a reset controller hands its volumes to the other one, which finishes
interrupted remote writes from the log in reserved capacity. A fault is the array's
own state (the volume's ``failed``, the controller's status in its database); a
stopped array is a stopped daemon and a cut link a cut connection, which the lab's
supervisor and link relay make.
"""
from __future__ import annotations

import asyncio

from core.commands.volumes import VolumeCommands
from core.domain import Role, Severity
from core.errors import InvalidInput, MirrorError, NotFound
from core.publisher import Publish
from core.refs import split_ref
from core.replication.host_volumes import HostVolumes
from core.replication.links import Peer
from core.replication.sync_runner import SyncRunner


class LabFaultCommands:
    def __init__(self, volumes: VolumeCommands, hosts: HostVolumes, runner: SyncRunner, peer: Peer,
                 publish: Publish):
        self._volumes = volumes
        self._hosts = hosts
        self._runner = runner
        self._peer = peer
        self._publish = publish

    # -- ownership -------------------------------------------------------------------------------------
    async def set_volume_owner(self, ref: str, ctrl: str) -> None:
        a, v = split_ref(ref)
        array = self._volumes.array(a)
        if ctrl not in ("A", "B"):
            raise InvalidInput(f"controller '{ctrl}' must be A or B", code="invalidController")
        if array.controller_offline(ctrl):
            raise MirrorError(f"controller {a}/{ctrl} is offline; restore it first", code="controllerOffline")
        row = array.volume(v)
        row.preferred_owner = row.current_owner = ctrl
        array.db.commit()
        array.log(Severity.INFO, v, "volumeOwnerChanged", f"Volume {a}/{v} now owned by controller {ctrl}")
        self._publish("volume", a, v)

    # -- lab faults ------------------------------------------------------------------------------------
    async def volume_fail(self, ref: str) -> None:
        """Lab: fail a volume; its pair fails and its group is system suspended."""
        a, v = split_ref(ref)
        array = self._volumes.array(a)
        row = array.volume(v)
        row.failed = True
        array.db.commit()
        self._hosts.follow_failure(array, row)
        array.log(Severity.CRITICAL, v, "volumeFailed", f"Volume {ref} failed")
        pair = array.pair_of(row)
        if pair is not None:
            reason = f"volume {ref} failed; repair it, then resume the group"
            pair.failed_reason = reason
            array.db.commit()
            st = self._runner.sending_state(array, pair.group)
            if st is not None and st.running:
                st.task.cancel()
            try:
                await self._peer.call(a, pair.group.remote_array, "pair.fail",
                                      {"volume": pair.remote_volume, "reason": reason})
            except MirrorError:
                pass
        self._publish("volume", a, v)

    async def volume_repair(self, ref: str) -> None:
        """Lab: repair a failed volume; the group waits for Resume, which resends only what changed."""
        a, v = split_ref(ref)
        array = self._volumes.array(a)
        row = array.volume(v)
        row.failed = False
        array.db.commit()
        self._hosts.follow_failure(array, row)
        pair = array.pair_of(row)
        if pair is not None:
            if pair.failed_reason.startswith("volume "):
                pair.failed_reason = ""
            array.db.commit()
            try:
                await self._peer.call(a, pair.group.remote_array, "pair.fail",
                                      {"volume": pair.remote_volume, "reason": ""})
            except MirrorError:
                pass
            g = pair.group
            if g.role == Role.PRIMARY.value:  # the group waits for Resume; a primary elsewhere learns it from pair.fail
                self._runner.state(a, g.name).waiting_for_user = True
        array.log(Severity.INFO, v, "volumeRepaired", f"Volume {ref} repaired; resume its group")
        self._publish("volume", a, v)

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
        a = self._volumes.array(array)
        controller = self._controller(a, ctrl)
        key = f"{array}/{ctrl}"
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
        for (an, gname), st in list(self._runner.states.items()):
            if an == array and st.running:  # the remote write is interrupted mid-way: it resumes from the log
                st.task.cancel()
                await asyncio.gather(st.task, return_exceptions=True)
        self._publish("array", array, key)

    async def controller_restore(self, array: str, ctrl: str) -> None:
        a = self._volumes.array(array)
        controller = self._controller(a, ctrl)
        key = f"{array}/{ctrl}"
        controller.status = "optimal"
        for row in a.volumes():
            if row.preferred_owner == ctrl:
                row.current_owner = ctrl
        a.db.commit()
        a.log(Severity.INFO, f"controller {ctrl}", "controllerRestored", f"Controller {key} back online")
        self._publish("array", array, key)
