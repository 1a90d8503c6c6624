"""The volume part of the engine's service API: create, resize, delete, list."""
from __future__ import annotations

from core.channel.auth import new_salt, password_hash
from core.domain import Severity
from core.errors import InvalidInput
from core.refs import split_ref
from core.snapshots import VolumeSnapshot
from core.units import parse_size


class VolumeService:
    """Mixed into :class:`core.engine.Engine`."""

    def volume_snapshot(self, array, row, pairs: dict | None = None) -> VolumeSnapshot:
        return array.volume_snapshot(row, host_writable=self.host_writable(array, row),
                                     nbd_uri=self.nbd_uri(array.name, row.name), pairs=pairs)

    def host_writable(self, array, row) -> bool | None:
        return self.hosts.writable(array.name, row.name)

    async def volumes(self, array: str | None = None) -> list[VolumeSnapshot]:
        names = [array] if array else sorted(self.arrays)
        out = []
        for n in names:
            a = self.get_array(n)
            pairs = a.pairs_by_volume()
            out.extend(self.volume_snapshot(a, v, pairs) for v in a.volumes())
        return out

    async def volume(self, ref: str) -> VolumeSnapshot:
        a, v = split_ref(ref)
        array = self.get_array(a)
        return self.volume_snapshot(array, array.volume(v))

    async def create_volume(self, ref: str, capacity, pool: str | None = None, drive_type: str | None = None,
                            security: str = "none", drive_security: bool = False, data_assurance: bool = False,
                            resource_partitioning: bool = False, raid_level: str = "6",
                            segment_size="128KiB", owner: str | None = None) -> VolumeSnapshot:
        a, v = split_ref(ref)
        array = self.get_array(a)
        row = array.create_volume(v, parse_size(capacity), pool=pool, drive_type=drive_type, raid_level=raid_level,
                                  segment_size=parse_size(segment_size, "segment size"), security=security,
                                  drive_security=drive_security, data_assurance=data_assurance,
                                  resource_partitioning=resource_partitioning, owner=owner)
        self.hosts.open(array, row)
        self.publish("volume", a, v)
        return self.volume_snapshot(array, row)

    async def resize_volume(self, ref: str, capacity) -> VolumeSnapshot:
        a, v = split_ref(ref)
        array = self.get_array(a)
        new = parse_size(capacity)
        pair = array.pair_of(array.volume(v))
        if pair is not None and pair.group.role == "primary" and new > array.volume(v).capacity:
            remote = {x.name: x for x in await self.remote_volumes(a, pair.group.remote_array)}
            sec = remote.get(pair.remote_volume)
            if sec is not None and sec.capacity < new:
                raise InvalidInput(f"{ref} is mirrored to {sec.array}/{sec.name} ({sec.capacity} bytes); grow the "
                                   "secondary first, then the primary", code="arvmSecondaryCapacityTooSmall")
        row = array.resize_volume(v, new)
        self.hosts.resized(a, row)
        self.publish("volume", a, v)
        return self.volume_snapshot(array, row)

    async def delete_volume(self, ref: str) -> None:
        a, v = split_ref(ref)
        array = self.get_array(a)
        row = array.volume(v)
        if array.pair_of(row) is None:
            self.hosts.close(a, v)
        array.delete_volume(v)
        self.publish("volume", a, v)

    async def change_password(self, array: str, current: str, new: str) -> None:
        """Set the array's administrator password (REST ``POST .../passwords``).

        The current password must be given even over an authenticated session, so an
        unattended logged-in client cannot lock the administrator out. Remote arrays
        keep the old password until they are told the new one: the event says so.
        """
        a = self.get_array(array)
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
        self.publish("array", array, array)
