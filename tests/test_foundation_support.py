"""Helpers shared by the test_foundation_* files (no tests here).

``world(client)`` is everything a user can see on both arrays; a refused
operation must leave it unchanged.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from core.array import ArraySpec, PoolSpec, StorageArray
from core.domain import DriveType, Model
from core.errors import MirrorError
from core.units import GiB, TiB

ALL_EVENTS = 1_000_000


# Events the background data path may log at any time (syncs, alerts, link state); a refusal
# must add none of the others.
BACKGROUND_CODES = {"arvmSyncStarted", "arvmSyncCompleted", "arvmSyncTimeAlert", "arvmRecoveryPointAgeAlert",
                    "arvmRepositoryThresholdAlert", "arvmRepositoryFull", "arvmCommunicationLost",
                    "arvmCommunicationRestored", "arvmResyncWaitingForUser"}


def config_events(client) -> list:
    return [e for e in client.events(limit=ALL_EVENTS)
            if e.code not in BACKGROUND_CODES and not e.code.startswith("arvmSync")]


def world(client) -> dict:
    """What a user sees configured on every array: groups, pairs, volumes, pool free capacity, events count.

    Live data-path figures (progress, unsynchronized bytes, statuses) are left out: the
    background synchronization may change them while a refused call runs.
    """
    groups = sorted((g.array, g.name, g.remote_array, g.role, g.channel, g.sync_mode, g.sync_interval_minutes,
                     g.priority, g.resync_policy, g.sync_alert_minutes, g.recovery_point_alert_minutes,
                     g.reserved_alert_percent, tuple(sorted(p.local_volume for p in g.pairs)))
                    for g in client.groups())
    pairs = sorted((p.array, p.group, p.local_volume, p.remote_array, p.remote_volume, p.role,
                    p.reserved_capacity.pool, p.reserved_capacity.capacity) for p in client.pairs())
    volumes = sorted((v.array, v.name, v.capacity, v.pool, v.drive_type, v.raid_level, v.segment_size, v.security,
                      v.drive_security, v.data_assurance, v.resource_partitioning, v.preferred_owner, v.path,
                      v.mirror_group, v.role) for v in client.volumes())
    return {
        "groups": groups,
        "pairs": pairs,
        "volumes": volumes,
        "pool_free": {(a.name, p.name): p.free for a in client.arrays_list() for p in a.pools},
        "events": len(config_events(client)),
    }


def assert_unchanged(before: dict, after: dict) -> None:
    for key in before:
        assert after[key] == before[key], f"a refused operation changed {key}"


def refused(client, code: str, fn, *args, **kwargs) -> MirrorError:
    """Run ``fn``, expect a MirrorError with ``code``, and that nothing changed on either array."""
    before = world(client)
    with pytest.raises(MirrorError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value.message}"
    assert info.value.message and "Traceback" not in info.value.message
    assert_unchanged(before, world(client))
    return info.value


def pool_free(client, array: str, pool: str) -> int:
    a = next(a for a in client.arrays_list() if a.name == array)
    return next(p.free for p in a.pools if p.name == pool)


def make_array(home: Path, name: str, volumes: tuple = (), **spec) -> None:
    """Create another array in the lab home (before the engine starts), with volumes.

    ``volumes`` is a sequence of (name, capacity, kwargs-for-create_volume).
    """
    pools = spec.pop("pools", (PoolSpec("nvme_pool", DriveType.NVME, 4 * TiB),
                               PoolSpec("sas_pool", DriveType.SAS, 16 * TiB)))
    array = StorageArray.create(Path(home) / "arrays" / name, ArraySpec(name=name, pools=pools, **spec))
    try:
        for vname, cap, kw in volumes:
            array.create_volume(vname, cap, **kw)
    finally:
        array.close()


__all__ = ["world", "assert_unchanged", "refused", "pool_free", "make_array", "GiB", "TiB", "Model"]


def remove_pair(client, ref: str, timeout: float = 20.0) -> None:
    """``pair remove`` as a user does it: refused while a sync runs (arvmSyncInProgress), so retry until idle."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            client.remove_pair(ref)
            return
        except MirrorError as e:
            if e.code != "arvmSyncInProgress" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
