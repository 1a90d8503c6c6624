"""What the engine knows, in memory, about a primary group's synchronization."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from core.replication.groupsync import Transfer


@dataclass
class GroupState:
    task: asyncio.Task | None = None
    transfer: Transfer | None = None  # the capture being sent, kept across a dropped link
    paused: bool = False  # the remote array cannot be reached
    waiting_for_user: bool = False  # link back, resync policy manual: Resume needed
    manual_requested: bool = False
    next_due: float | None = None  # monotonic deadline of the next scheduled sync (core.replication.clock)
    started_mono: float | None = None  # monotonic time the last sync started, in this process
    rp_mono: float | None = None  # monotonic time the last recovery point committed, in this process
    last_error: str = ""
    failures: int = 0  # syncs failed in a row (a commit resets it)
    verify_mismatched: int = 0  # regions the last online verify found different, until a commit resends them
    rp_age_alerted: bool = False
    sync_time_alerted: bool = False
    reserved_alerted: set[str] = field(default_factory=set)
    waiters: list[asyncio.Future] = field(default_factory=list)
    # Asked for a recovery point while an older capture was still to be sent: they wait
    # for the capture after it (a "sync --wait" answers with a point that has their writes).
    next_capture_waiters: list[asyncio.Future] = field(default_factory=list)
    # deleteRecoveryPointIfNecessary: a delta that does not fit a secondary's reserved
    # capacity is applied in place there (no recovery point until the next commit).
    delete_recovery_point_allowed: bool = False
    in_place: set[str] = field(default_factory=set)  # secondary volumes resynchronized in place
    # The secondary took regions as dirty-block pieces at the last begin: a capture's PIT
    # then preserves only the blocks it will send (groupsync.capture).
    secondary_takes_pieces: bool = False

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()
