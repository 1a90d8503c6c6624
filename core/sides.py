"""One array's side of every mirror: the configuration messages an array accepts.

Creating a group or a pair writes a record on *both* arrays, each its own side.
The engine applies the local side directly and the remote side by sending the same
message over the mirroring channel; the remote array handles it here. Every
handler checks before it writes, so a refusal leaves nothing behind.
"""
from __future__ import annotations

from pathlib import Path

from core.array import StorageArray
from core.domain import Role, Severity
from core.eligibility import reserved_bytes
from core.errors import InvalidInput, MirrorError, NotFound
from core.groups import GroupSettings, check_group_name
from core.store.schema import GroupRow, PairRow
from core.units import exact_size


def create_group_side(array: StorageArray, name: str, remote_array: str, role: str, settings: dict,
                      check_only: bool = False) -> None:
    check_group_name(name)
    if array.find_group(name) is not None:
        raise MirrorError(f"a mirror consistency group named '{name}' already exists on {array.name}; "
                          "choose another name", code="arvmGroupUserLabelExists")
    s = GroupSettings.from_params(settings)
    if check_only:
        return
    array.db.add(GroupRow(name=name, remote_array=remote_array, role=Role(role).value, **s.to_row_values()))
    array.db.commit()
    array.log(Severity.INFO, name, "arvmGroupCreated",
              f"Mirror consistency group {name} created ({role} side, remote array {remote_array})")


def update_group_side(array: StorageArray, name: str, settings: dict) -> None:
    row = array.group(name)
    s = GroupSettings.from_params(settings)
    for key, value in s.to_row_values().items():
        setattr(row, key, value)
    array.db.commit()
    array.log(Severity.INFO, name, "arvmGroupSettingsChanged", f"Synchronization settings of {name} changed")


def delete_group_side(array: StorageArray, name: str, check_only: bool = False, force: bool = False) -> None:
    row = array.group(name)
    if row.pairs and not force:
        raise MirrorError(f"mirror consistency group {name} still has {len(row.pairs)} mirrored pair(s); "
                          "remove them first", code="arvmGroupNotEmpty")
    if check_only:
        return
    array.db.delete(row)
    array.db.commit()
    array.log(Severity.INFO, name, "arvmGroupDeleted", f"Mirror consistency group {name} deleted")


def reserved_pool_for(array: StorageArray, volume_name: str, percent: float) -> tuple[str, int]:
    """The pool that will hold a volume's reserved capacity: same drive type, enough room."""
    vol = array.volume(volume_name)
    need = reserved_bytes(vol.capacity, percent)
    dtype = array.pool(vol.pool).drive_type
    pool = array.pick_pool(dtype, need)
    if pool is None:
        raise MirrorError(f"no {dtype.upper()} pool on {array.name} has {exact_size(need)} free for the reserved capacity "
                          f"of {volume_name} ({percent:g} %); free capacity or lower the percentage",
                          code="arvmInsufficientReservedCapacity")
    return pool.name, need


def create_pair_side(array: StorageArray, group: str, volume: str, remote_volume: str, reserved_percent: float,
                     incomplete: bool = False, check_only: bool = False) -> None:
    grow = array.group(group)
    vol = array.volume(volume)
    existing = array.pair_of(vol)
    if existing is not None:
        raise MirrorError(f"volume {array.name}/{volume} is already in mirror group {existing.group.name}; "
                          "a volume can be in only one mirror relationship",
                          code="arvmVolumeAlreadyInMirrorRelationship")
    if vol.failed:
        raise MirrorError(f"volume {array.name}/{volume} has failed; repair it first", code="volumeFailed")
    if not 0 < reserved_percent <= 100:
        raise InvalidInput(f"reserved capacity {reserved_percent} % must be more than 0 and at most 100 % "
                           "of the volume", code="arvmInvalidRepositoryCapacity")
    pool, size = reserved_pool_for(array, volume, reserved_percent)
    if check_only:
        return
    rel = f"reserved/{volume}"
    (array.data_dir / rel).mkdir(parents=True, exist_ok=True)
    grow.pairs.append(PairRow(volume=vol, remote_volume=remote_volume, incomplete=incomplete,
                              reserved_pool=pool, reserved_capacity=size, reserved_dir=rel))
    array.db.commit()
    array.log(Severity.INFO, f"{group}/{volume}", "arvmPairCreated",
              f"Mirrored pair {array.name}/{volume} <-> {grow.remote_array}/{remote_volume} added to {group} "
              f"({grow.role}); reserved capacity {exact_size(size)} in {pool}")


def find_pair(array: StorageArray, volume: str) -> PairRow:
    pair = array.pair_of(array.volume(volume))
    if pair is None:
        raise NotFound(f"volume {array.name}/{volume} is not in a mirrored pair", code="arvmPairNotFound")
    return pair


def remove_pair_side(array: StorageArray, volume: str) -> None:
    pair = find_pair(array, volume)
    group = pair.group.name
    rc_dir: Path = array.reserved_dir(pair)
    pair.group.pairs.remove(pair)  # delete-orphan: the group's list and the table agree
    array.db.commit()
    from core.array import remove_tree

    remove_tree(rc_dir)
    array.log(Severity.INFO, f"{group}/{volume}", "arvmPairRemoved",
              f"Mirrored pair of {array.name}/{volume} removed from {group}")


def increase_reserved_capacity(array: StorageArray, volume: str, new_percent: float) -> int:
    pair = find_pair(array, volume)
    vol = pair.volume
    size = reserved_bytes(vol.capacity, new_percent)
    if size <= pair.reserved_capacity:
        raise InvalidInput(f"reserved capacity of {volume} is already {pair.reserved_capacity} bytes; "
                           "give a larger percentage (it can only be increased)", code="arvmInvalidRepositoryCapacity")
    grow = size - pair.reserved_capacity
    if array.pool_free(pair.reserved_pool) < grow:
        raise MirrorError(f"pool {pair.reserved_pool} has only {exact_size(array.pool_free(pair.reserved_pool))} free; "
                          "free capacity first", code="arvmInsufficientReservedCapacity")
    pair.reserved_capacity = size
    array.db.commit()
    array.log(Severity.INFO, f"{pair.group.name}/{volume}", "arvmRepositoryIncreased",
              f"Reserved capacity of {array.name}/{volume} increased to {exact_size(size)}")
    return size
