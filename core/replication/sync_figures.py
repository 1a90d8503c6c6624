"""A synchronization's figures as the snapshots and the sync history show them.

One place turns a transfer into its progress (rate, ETA) and into its history row,
whatever its outcome (committed, failed, interrupted, abandoned): the history
tells the truth about every attempt, with the same fields.
"""
from __future__ import annotations

import time
from datetime import datetime

from core.snapshots import SyncProgress, SyncStats
from core.store.schema import SyncStatRow, utcnow


def progress(kind: str, done: int, total: int, t) -> SyncProgress:
    elapsed = max(1e-6, time.monotonic() - t.started)
    rate = done / elapsed if done else 0.0
    eta = (total - done) / rate if rate > 0 else None
    return SyncProgress(kind=kind, bytes_done=done, bytes_total=total, rate=rate, eta_seconds=eta,
                        started=t.started_at)


def history_row(group: str, t, outcome: str, recovery_point_time: datetime | None = None) -> SyncStatRow:
    """The history row of transfer ``t`` (None: a sync that failed before it captured anything)."""
    if t is None:
        return SyncStatRow(group_name=group, kind="interval", started=utcnow(), ended=utcnow(), bytes_sent=0,
                           duration_seconds=0.0, outcome=outcome)
    return SyncStatRow(group_name=group, kind=t.kind, started=t.started_at, ended=utcnow(),
                       bytes_sent=t.bytes_sent, bytes_payload=t.bytes_payload,
                       unique_changed_bytes=t.unique_changed_bytes, bytes_resent=t.bytes_resent,
                       duration_seconds=time.monotonic() - t.started, recovery_point_time=recovery_point_time,
                       outcome=outcome)


def stats(row) -> SyncStats:
    return SyncStats(group=row.group_name, kind=row.kind, started=row.started, ended=row.ended,
                     bytes_sent=row.bytes_sent, bytes_payload=row.bytes_payload,
                     unique_changed_bytes=row.unique_changed_bytes, bytes_resent=row.bytes_resent,
                     duration_seconds=row.duration_seconds, recovery_point_time=row.recovery_point_time,
                     outcome=row.outcome)
