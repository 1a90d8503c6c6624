"""Group and pair statuses (SPEC §2), derived from real conditions.

Nothing stores "the status": it is computed each time from the persisted flags of
this array's side (suspended, failed, orphan, role change...) and the live state
of the data path (a sync running, the remote unreachable).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from core.domain import GroupStatus, PairStatus
from core.snapshots import SyncProgress


class PairRuntime(NamedTuple):
    """Live facts about one pair side from the data path.

    A named tuple, not a frozen dataclass: a listing makes one per pair (512 at issue 14's
    scale) and a frozen dataclass's ``__init__`` cost about 4 us each; it also compares
    by value, which lets a pair's snapshot be reused while its inputs are unchanged.
    """

    syncing: bool = False
    progress: SyncProgress | None = None
    unsynchronized_bytes: int = 0
    pit_bytes: int = 0
    log_bytes: int = 0
    staging_bytes: int = 0
    unsynchronized_block_bytes: int = 0  # of unsynchronized_bytes, those in blocks written (ChangeLog)


@dataclass(frozen=True)
class GroupRuntime:
    syncing: bool = False
    progress: SyncProgress | None = None
    next_sync: datetime | None = None
    paused: bool = False  # the remote array cannot be reached
    failing: str = ""  # the last error, once syncs failed several times in a row


def pair_status(pair, group_system_suspended: bool, rt: PairRuntime) -> PairStatus:
    if pair.orphan:
        return PairStatus.ORPHAN
    if pair.incomplete:
        return PairStatus.INCOMPLETE
    if pair.failed_reason or pair.volume.failed:
        return PairStatus.FAILED
    if group_system_suspended:
        return PairStatus.STOPPED
    if rt.syncing or not pair.initial_sync_done:
        return PairStatus.SYNCHRONIZING
    return PairStatus.OPTIMAL


def group_status(group, rt: GroupRuntime) -> GroupStatus:
    if group.orphan:
        return GroupStatus.ORPHAN
    if group.role_conflict:
        return GroupStatus.ROLE_CONFLICT
    if group.role_change == "pending":
        return GroupStatus.ROLE_CHANGE_PENDING
    if group.role_change == "in_progress":
        return GroupStatus.ROLE_CHANGE_IN_PROGRESS
    if group.user_suspended:
        return GroupStatus.USER_SUSPENDED
    if system_suspended(group):
        return GroupStatus.SYSTEM_SUSPENDED
    if rt.paused or group.paused_reason:
        return GroupStatus.PAUSED
    if rt.failing:
        return GroupStatus.SYNC_FAILING
    if any(not p.initial_sync_done for p in group.pairs if not p.incomplete):
        return GroupStatus.INITIAL_SYNC
    if rt.syncing:
        return GroupStatus.SYNCHRONIZING
    return GroupStatus.OPTIMAL


def system_suspended(group) -> bool:
    """At least one pair failed: the group stops syncing until it is repaired."""
    return any(p.failed_reason or p.volume.failed for p in group.pairs)
