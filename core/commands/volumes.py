"""Volumes: create, resize, delete, list, and the array's administrator password."""
from __future__ import annotations

from collections.abc import Mapping

from core import iscsi_settings
from core.array import StorageArray
from core.channel.auth import new_salt, password_hash
from core.domain import Severity
from core.errors import InvalidInput, NotFound
from core.nbd.exports import NbdExports
from core.publisher import Publish
from core.refs import split_ref
from core.replication.host_volumes import HostVolumes
from core.replication.links import Peer
from core.snapshots import IscsiSettingsSnapshot, VolumeSnapshot, from_json
from core.units import parse_size


class VolumeCommands:
    def __init__(self, arrays: Mapping[str, StorageArray], hosts: HostVolumes, nbd: NbdExports, peer: Peer,
                 publish: Publish):
        self._arrays = arrays
        self._hosts = hosts
        self._nbd = nbd
        self._peer = peer
        self._publish = publish

    def array(self, name: str) -> StorageArray:
        array = self._arrays.get(name)
        if array is None:
            known = ", ".join(sorted(self._arrays)) or "none"
            raise NotFound(f"no array named '{name}' here (arrays: {known})", code="arrayNotFound")
        return array

    def snapshot(self, array: StorageArray, row, pairs: dict | None = None) -> VolumeSnapshot:
        hv = self._hosts.get((array.name, row.name))
        return array.volume_snapshot(row, host_writable=self._hosts.writable(array.name, row.name),
                                     nbd_uri=self._nbd.uri(array.name, row.name), pairs=pairs,
                                     host_bytes_written=hv.bytes_written if hv is not None else 0)

    async def volumes(self, array: str | None = None) -> list[VolumeSnapshot]:
        out = []
        for n in [array] if array else sorted(self._arrays):
            a = self.array(n)
            pairs = a.pairs_by_volume()
            out.extend(self.snapshot(a, v, pairs) for v in a.volumes())
        return out

    async def volume(self, ref: str) -> VolumeSnapshot:
        a, v = split_ref(ref)
        array = self.array(a)
        return self.snapshot(array, array.volume(v))

    async def remote_volumes(self, local: str, remote: str) -> list[VolumeSnapshot]:
        data = await self._peer.call(local, remote, "volume.list", {})
        return [from_json(VolumeSnapshot, v) for v in data["volumes"]]

    async def create_volume(self, ref: str, capacity, pool: str | None = None, drive_type: str | None = None,
                            security: str = "none", drive_security: bool = False, data_assurance: bool = False,
                            resource_partitioning: bool = False, raid_level: str = "6",
                            segment_size="128KiB", owner: str | None = None) -> VolumeSnapshot:
        a, v = split_ref(ref)
        array = self.array(a)
        row = array.create_volume(v, parse_size(capacity), pool=pool, drive_type=drive_type, raid_level=raid_level,
                                  segment_size=parse_size(segment_size, "segment size"), security=security,
                                  drive_security=drive_security, data_assurance=data_assurance,
                                  resource_partitioning=resource_partitioning, owner=owner)
        self._hosts.open(array, row)
        self._publish("volume", a, v)
        return self.snapshot(array, row)

    async def resize_volume(self, ref: str, capacity) -> VolumeSnapshot:
        a, v = split_ref(ref)
        array = self.array(a)
        new = parse_size(capacity)
        pair = array.pair_of(array.volume(v))
        if pair is not None and pair.group.role == "primary" and new > array.volume(v).capacity:
            remote = {x.name: x for x in await self.remote_volumes(a, pair.group.remote_array)}
            sec = remote.get(pair.remote_volume)
            if sec is not None and sec.capacity < new:
                raise InvalidInput(f"{ref} is mirrored to {sec.array}/{sec.name} ({sec.capacity} bytes); grow the "
                                   "secondary first, then the primary", code="arvmSecondaryCapacityTooSmall")
        row = array.resize_volume(v, new)
        self._hosts.resized(a, row)
        self._publish("volume", a, v)
        return self.snapshot(array, row)

    async def delete_volume(self, ref: str) -> None:
        a, v = split_ref(ref)
        array = self.array(a)
        row = array.volume(v)
        if array.pair_of(row) is None:
            self._hosts.close(a, v)
        array.delete_volume(v)
        self._publish("volume", a, v)

    async def iscsi_settings(self, array: str) -> IscsiSettingsSnapshot:
        return self.array(array).iscsi_settings()

    async def set_iscsi_settings(self, array: str, **changes) -> IscsiSettingsSnapshot:
        """Change the array's iSCSI global settings; an iSCSI group's arrays must keep them alike.

        Not refused while iSCSI groups exist: the two arrays can only be set one at a
        time. The Recovery Guru, which sees both, says when an iSCSI group's arrays differ.
        """
        a = self.array(array)
        before = a.iscsi_settings()
        after = a.set_iscsi_settings(changes)
        changed = [f"{name} {old} -> {new}" for name, old, new in iscsi_settings.differences(before, after)]
        if changed:
            a.log(Severity.INFO, array, "iscsiSettingsChanged",
                  f"iSCSI global settings of {array} changed: {', '.join(changed)}; the arrays it mirrors with over "
                  "iSCSI must use the same ones")
            self._publish("array", array, array)
        return after

    async def change_password(self, array: str, current: str, new: str) -> None:
        """Set the array's administrator password (REST ``POST .../passwords``).

        The current password must be given even over an authenticated session, so an
        unattended logged-in client cannot lock the administrator out. Remote arrays
        keep the old password until they are told the new one: the event says so.
        """
        a = self.array(array)
        if not a.check_password(current):
            raise InvalidInput(f"the current password of array {array} is wrong; give the password in use now",
                               code="invalidPassword")
        if not new:
            raise InvalidInput("the new password is empty; give one", code="invalidPassword")
        row = a.row
        row.password_salt = new_salt()
        row.password_hash = password_hash(new, row.password_salt)
        a.db.commit()
        a.log(Severity.WARNING, array, "passwordChanged",
              f"Administrator password of {array} changed; remote arrays that mirror with {array} need the new "
              "password before their next connection")
        self._publish("array", array, array)
