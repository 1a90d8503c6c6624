"""Mirror consistency groups and mirrored pairs: create, change, delete, list, and their snapshots.

Each array changes only its own side: this array creates or removes its side and
asks the remote array, over the mirroring channel, to do the same with its own.
While the remote is unreachable a pair is created incomplete and a deletion leaves
an orphan there; reconciliation settles both when the arrays talk again.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Callable, NamedTuple

from core import sides
from core.array import StorageArray
from core.commands.volumes import VolumeCommands
from core.domain import Role, Severity
from core.eligibility import array_refusals, candidates
from core.errors import CommunicationError, InvalidInput, MirrorError, NotFound
from core.groups import GroupSettings, check_group_name
from core.mirror_records import GroupRecord, pair_record
from core.publisher import Publish
from core.refs import split_ref
from core.replication.host_volumes import HostVolumes
from core.replication.links import Peer
from core.replication.sync_runner import SyncRunner
from core.roles import hints
from core.snapshots import (ArraySnapshot, Candidate, GroupSnapshot, PairSnapshot, ReservedCapacitySnapshot,
                            from_json)
from core.status import PairRuntime, group_status, pair_status, system_suspended

Online = Callable[[StorageArray], ArraySnapshot]  # the array's own description, as its peers see it


class _Side(NamedTuple):
    """What every pair snapshot of a group repeats from its group's side."""

    array: str
    group: str
    remote_array: str
    role: str
    last_recovery_point: datetime | None


class MirrorCommands:
    def __init__(self, arrays: Mapping[str, StorageArray], volumes: VolumeCommands, hosts: HostVolumes,
                 runner: SyncRunner, peer: Peer, publish: Publish, online: Online):
        self._arrays = arrays
        self._volumes = volumes
        self._hosts = hosts
        self._runner = runner
        self._peer = peer
        self._publish = publish
        self._online = online
        # (array, local volume) -> (inputs, snapshot) of each pair's last snapshot (see _pair_snapshot),
        # and (array, group) -> the same of each group's (see group_snapshot).
        self._kept_pairs: dict[tuple[str, str], tuple[tuple, PairSnapshot]] = {}
        self._kept_groups: dict[tuple[str, str], tuple[tuple, GroupSnapshot]] = {}

    # -- remote views ------------------------------------------------------------
    async def remote_array(self, local: str, remote: str) -> ArraySnapshot:
        return from_json(ArraySnapshot, await self._peer.call(local, remote, "array.describe", {}))

    async def candidates(self, primary_ref: str, remote: str, channel: str | None = None,
                         reserved_percent: float = 20) -> list[Candidate]:
        """Every volume of ``remote``: eligible as the secondary of ``primary_ref``, or why not."""
        a, v = split_ref(primary_ref)
        local = self._volumes.array(a)
        primary = self._volumes.snapshot(local, local.volume(v))
        return candidates(primary, self._online(local), await self.remote_array(a, remote),
                          await self._volumes.remote_volumes(a, remote), channel, reserved_percent)

    # -- groups ------------------------------------------------------------------
    async def create_group(self, name: str, primary_array: str, secondary_array: str, **settings) -> GroupSnapshot:
        check_group_name(name)
        local = self._volumes.array(primary_array)
        if secondary_array == primary_array:
            raise InvalidInput("the secondary array must be another array than the primary; pick the remote array",
                               code="arvmInvalidRemoteArray")
        s = GroupSettings().updated(**settings)
        remote = await self.remote_array(primary_array, secondary_array)
        refusals = array_refusals(self._online(local), remote, s.channel.value)
        if refusals:
            raise MirrorError("; ".join(r.message for r in refusals), code=refusals[0].code)
        sides.create_group_side(local, name, secondary_array, Role.PRIMARY.value, s.to_params(), check_only=True)
        params = dict(name=name, remote_array=primary_array, role=Role.SECONDARY.value, settings=s.to_params())
        await self._peer.call(primary_array, secondary_array, "group.create", {**params, "check_only": True})
        await self._peer.call(primary_array, secondary_array, "group.create", params)
        try:
            sides.create_group_side(local, name, secondary_array, Role.PRIMARY.value, s.to_params())
        except BaseException:
            await self._peer.call(primary_array, secondary_array, "group.delete", {"name": name})
            raise
        self._publish("group", primary_array, name)
        self._publish("group", secondary_array, name)
        return await self.group(name, primary_array)

    async def update_group(self, name: str, **settings) -> GroupSnapshot:
        array = self.group_home(name)
        row = array.group(name)
        s = GroupSettings.from_row(row).updated(**settings)
        await self._peer.call(array.name, row.remote_array, "group.update",
                              {"name": name, "settings": s.to_params()})
        sides.update_group_side(array, name, s.to_params())
        self._publish("group", array.name, name)
        self._runner.settings_changed(array, row)
        return await self.group(name, array.name)

    async def delete_group(self, name: str) -> None:
        array = self.group_home(name)
        g = array.group(name)
        if g.orphan:  # its partner is gone: only this side is removed
            for p in list(g.pairs):
                self._hosts.detach_pair_volume(array.name, p.volume.name)
            sides.delete_group_side(array, name, force=True)
            self._runner.states.pop((array.name, name), None)
            self._hosts.refresh_access(array)
            self._publish("group", array.name, name)
            return
        remote = g.remote_array
        if not await self._peer.can_reach(array.name, remote):
            hints.set_hint(array, name, True)
        sides.delete_group_side(array, name, check_only=True)
        try:
            await self._peer.call(array.name, remote, "group.delete", {"name": name})
        except CommunicationError:
            array.log(Severity.WARNING, name, "arvmRemoteUnreachable",
                      f"Group {name} deleted while {remote} was unreachable; its side there will show as orphan")
        sides.delete_group_side(array, name)
        self._publish("group", array.name, name)
        self._publish("group", remote, name)

    def group_home(self, name: str) -> StorageArray:
        """The array from which a group is managed: its primary side, else any side."""
        found = [a for a in self._arrays.values() if a.find_group(name) is not None]
        if not found:
            raise NotFound(f"no mirror consistency group named '{name}'; see 'mirrorctl group list'",
                           code="arvmGroupNotFound")
        primary = [a for a in found if a.find_group(name).role == Role.PRIMARY.value]
        return (primary or found)[0]

    async def groups(self, array: str | None = None) -> list[GroupSnapshot]:
        out = []
        for n in [array] if array else sorted(self._arrays):
            a = self._volumes.array(n)
            out.extend(self.group_snapshot(a, g) for g in a.group_records())
        self._forget_gone(out, array)
        return out

    def _forget_gone(self, listed: list[GroupSnapshot], array: str | None) -> None:
        """Keep no snapshot of a group or pair that is gone (deleted, removed): the tables stay bounded."""
        pairs = sum(len(g.pairs) for g in listed)
        if len(self._kept_pairs) > pairs:
            seen = {(p.array, p.local_volume) for g in listed for p in g.pairs}
            for key in [k for k in self._kept_pairs if (array is None or k[0] == array) and k not in seen]:
                del self._kept_pairs[key]
        if len(self._kept_groups) > len(listed):
            seen = {(g.array, g.name) for g in listed}
            for key in [k for k in self._kept_groups if (array is None or k[0] == array) and k not in seen]:
                del self._kept_groups[key]

    async def group(self, name: str, array: str | None = None) -> GroupSnapshot:
        a = self._volumes.array(array) if array else self.group_home(name)
        return self.group_snapshot(a, a.group_record(name))

    def group_snapshot(self, array: StorageArray, g) -> GroupSnapshot:
        """The group's snapshot, the same object as last time while everything it is made from is equal.

        ``g`` is the group's record (a row is read as its record): its pairs' snapshots come from
        records too, so a group whose rows and live figures did not change since the last
        listing is found equal in a few comparisons (issue 14: 64 groups x 8 pairs per GET).
        """
        if not isinstance(g, GroupRecord):
            g = array.group_record(g.name)
        rt = self._runner.group_runtime(array, g)
        suspended = system_suspended(g)
        side = _Side(array.name, g.name, g.remote_array, g.role, g.last_recovery_point)
        pairs = tuple(self._pair_snapshot(array, side, p, suspended, prt)
                      for p, prt in self._runner.pair_runtimes(array, g))
        last_sync = self._runner.last_sync(array, g)
        inputs = (g, rt, pairs, last_sync)
        key = (array.name, g.name)
        kept = self._kept_groups.get(key)
        if kept is not None and kept[0] == inputs:
            return kept[1]
        snap = GroupSnapshot(
            array=array.name, name=g.name, remote_array=g.remote_array, role=g.role, channel=g.channel,
            sync_mode=g.sync_mode, sync_interval_minutes=g.sync_interval_minutes, priority=g.priority,
            resync_policy=g.resync_policy, sync_alert_minutes=g.sync_alert_minutes,
            recovery_point_alert_minutes=g.recovery_point_alert_minutes,
            reserved_alert_percent=g.reserved_alert_percent, status=group_status(g, rt).value, pairs=pairs,
            last_recovery_point=side.last_recovery_point, next_sync=rt.next_sync, progress=rt.progress,
            last_sync=last_sync, unsynchronized_bytes=sum(p.unsynchronized_bytes for p in pairs),
            host_writable=side.role == Role.PRIMARY.value and not g.role_change)
        self._kept_groups[key] = (inputs, snap)
        return snap

    def pair_snapshot(self, array: StorageArray, p, group_suspended: bool | None = None) -> PairSnapshot:
        g = p.group
        if group_suspended is None:
            group_suspended = system_suspended(g)
        side = _Side(array.name, g.name, g.remote_array, g.role, g.last_recovery_point)
        return self._pair_snapshot(array, side, pair_record(p), group_suspended, self._runner.pair_runtime(array, p))

    def _pair_snapshot(self, array: StorageArray, side: "_Side", p, group_suspended: bool,
                       rt: PairRuntime) -> PairSnapshot:
        """A pair's snapshot, the same object as last time while everything it is made from is equal.

        Building two frozen dataclasses per pair was most of a listing's cost at issue 14's
        scale (about 10 us of a pair's 22 us). The kept snapshot is returned only when all of
        its inputs - the group's side, the pair's record, its live figures - equal this call's:
        it is then exactly the snapshot this call would build, never an older state.
        """
        volume = p.volume
        name = volume.name
        inputs = (side, p, group_suspended, rt)
        kept = self._kept_pairs.get((side.array, name))
        if kept is not None and kept[0] == inputs:
            return kept[1]
        pool = p.reserved_pool
        snap = PairSnapshot(
            array=side.array, group=side.group, local_volume=name, remote_array=side.remote_array,
            remote_volume=p.remote_volume, role=side.role, status=pair_status(p, group_suspended, rt).value,
            recovery_point_available=p.recovery_point_available, last_recovery_point=side.last_recovery_point,
            unsynchronized_bytes=rt.unsynchronized_bytes, progress=rt.progress,
            reserved_capacity=ReservedCapacitySnapshot(
                array=side.array, volume=name, pool=pool, drive_type=array.drive_type_of(pool),
                capacity=p.reserved_capacity, pit_bytes=rt.pit_bytes, log_bytes=rt.log_bytes,
                staging_bytes=rt.staging_bytes),
            reason=p.failed_reason or ("created while the remote array was unreachable; complete it on the remote"
                                       if p.incomplete else ""),
            volume_capacity=volume.capacity, unsynchronized_block_bytes=rt.unsynchronized_block_bytes)
        self._kept_pairs[(side.array, name)] = (inputs, snap)
        return snap

    # -- pairs -------------------------------------------------------------------
    async def add_pair(self, group: str, primary: str, secondary: str, reserved_percent: float = 20,
                       secondary_reserved_percent: float | None = None) -> PairSnapshot:
        pa, pv = split_ref(primary)
        sa, sv = split_ref(secondary)
        local = self._volumes.array(pa)
        g = local.find_group(group)
        if g is None:
            raise NotFound(f"array {pa} has no mirror consistency group '{group}'; create it first or give the "
                           "group's primary array", code="arvmGroupNotFound")
        if g.role != Role.PRIMARY.value:
            raise MirrorError(f"group {group} is secondary on {pa}; add pairs from its primary array "
                              f"{g.remote_array}", code="arvmGroupNotPrimary")
        if g.remote_array != sa:
            raise InvalidInput(f"group {group} mirrors {pa} to {g.remote_array}, not {sa}; pick a secondary volume "
                               f"on {g.remote_array}", code="arvmInvalidRemoteArray")
        if not await self._peer.can_reach(pa, sa):
            return self._add_incomplete_pair(local, group, pv, primary, secondary, reserved_percent)
        if g.role_change or g.role_conflict:
            raise MirrorError(f"group {group} is changing roles; add the pair when the role change is finished",
                              code="arvmRoleChangeInProgress")
        sec_pct = reserved_percent if secondary_reserved_percent is None else secondary_reserved_percent
        sides.create_pair_side(local, group, pv, sv, reserved_percent, check_only=True)
        cands = await self.candidates(primary, sa, g.channel, sec_pct)
        match = [c for c in cands if c.volume.name == sv]
        if not match:
            raise NotFound(f"array {sa} has no volume '{sv}'; see 'mirrorctl candidates {primary} --remote {sa}'",
                           code="volumeNotFound")
        if not match[0].eligible:
            raise MirrorError(f"{secondary} cannot be the secondary of {primary}: " + "; ".join(match[0].reasons),
                              code=match[0].codes[0])
        params = dict(group=group, volume=sv, remote_volume=pv, reserved_percent=sec_pct)
        await self._peer.call(pa, sa, "pair.create", {**params, "check_only": True})
        await self._peer.call(pa, sa, "pair.create", params)
        try:
            sides.create_pair_side(local, group, pv, sv, reserved_percent)
        except BaseException:
            await self._peer.call(pa, sa, "pair.remove", {"volume": sv})
            raise
        row = local.pair_of(local.volume(pv))
        self._runner.pair_added(local, row)
        self._publish("pair", pa, f"{group}/{pv}")
        self._publish("pair", sa, f"{group}/{sv}")
        return self.pair_snapshot(local, row)

    def _add_incomplete_pair(self, local: StorageArray, group: str, pv: str, primary: str, secondary: str,
                             reserved_percent: float) -> PairSnapshot:
        """The remote is unreachable: this side only, completed there when the link returns (reconciliation)."""
        sa, sv = split_ref(secondary)
        sides.create_pair_side(local, group, pv, sv, reserved_percent, incomplete=True)
        row = local.pair_of(local.volume(pv))
        self._runner.pair_added(local, row)
        hints.set_hint(local, group, True)
        local.log(Severity.WARNING, f"{group}/{pv}", "arvmPairIncomplete",
                  f"Pair {primary} -> {secondary} created while {sa} is unreachable: incomplete until the link returns")
        self._publish("pair", local.name, f"{group}/{pv}")
        return self.pair_snapshot(local, row)

    async def remove_pair(self, ref: str) -> None:
        a, v = split_ref(ref)
        array = self._volumes.array(a)
        pair = sides.find_pair(array, v)
        group, remote, remote_vol = pair.group.name, pair.group.remote_array, pair.remote_volume
        if pair.orphan or pair.incomplete or pair.group.orphan:
            # An orphan's partner is gone (an incomplete pair never had one): remove only this side.
            self.remove_local_pair_side(array, v, group)
            return
        if not await self._peer.can_reach(a, remote):
            hints.set_hint(array, group, True)
        self._runner.pair_removing(array, pair)
        try:
            await self._peer.call(a, remote, "pair.remove", {"volume": remote_vol})
        except CommunicationError:
            array.log(Severity.WARNING, f"{group}/{v}", "arvmRemoteUnreachable",
                      f"Pair {a}/{v} removed while {remote} was unreachable; its side there will show as orphan")
        except NotFound:
            pass  # already gone there (an orphan being cleared)
        self.remove_local_pair_side(array, v, group)
        self._publish("pair", remote, f"{group}/{remote_vol}")

    def remove_local_pair_side(self, array: StorageArray, volume: str, group: str) -> None:
        """Close the volume's reserved capacity, drop this side's record, reapply host access."""
        self._hosts.detach_pair_volume(array.name, volume)
        sides.remove_pair_side(array, volume)
        self._hosts.refresh_access(array)
        self._publish("pair", array.name, f"{group}/{volume}")

    async def pairs(self, group: str | None = None, array: str | None = None) -> list[PairSnapshot]:
        out = []
        for g in await self.groups(array):
            if group is None or g.name == group:
                out.extend(g.pairs)
        return out

    async def pair(self, ref: str) -> PairSnapshot:
        a, v = split_ref(ref)
        array = self._volumes.array(a)
        return self.pair_snapshot(array, sides.find_pair(array, v))
