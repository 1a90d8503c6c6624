"""A synchronization's figures as the snapshots and the sync history show them.

One place turns a transfer into its progress (rate, ETA) and into its history row,
whatever its outcome (committed, failed, interrupted, abandoned): the history
tells the truth about every attempt, with the same fields.
"""
from __future__ import annotations

import time
from datetime import datetime

import numpy as np

from core.snapshots import SyncProgress, SyncStats
from core.store.schema import SyncStatRow, utcnow


def sync_kind(kind: str, t) -> str:
    """What a sync is called: "initial", "manual" (asked for by a person: Synchronize now, Resume) or "interval".

    A transfer asked for by a person carries ``manual = True`` (set when it is captured);
    labelling it "interval" told the administrator a schedule ran that never did.
    """
    if kind != "initial" and getattr(t, "manual", False):
        return "manual"
    return kind


def unsynchronized_bytes(pending: np.ndarray, written_since_capture: np.ndarray, transfer_pair, region_size: int,
                         size: int) -> int:
    """Bytes the secondary does not hold yet, seen from the primary; falls as a sync sends.

    ``pending``: the change log's regions not in the committed recovery point (dirty or
    in flight); ``transfer_pair``: the running transfer's ``PairTransfer`` of this volume
    (None between syncs). Regions it has sent and no host rewrote since the capture are
    on the secondary already: counting them kept the primary's figure at its start value
    while the secondary's (bytes total - bytes done) fell, for the same pair at the same moment.
    """
    pending = np.asarray(pending, dtype=np.int64)
    if transfer_pair is not None and len(pending):
        # pending - (sent - written since the capture), with a bitmap: np.setdiff1d sorts both
        # sides and took 18 ms per pair of an 8 GiB volume, at every listing during a sync.
        sent = transfer_pair.regions[np.asarray(transfer_pair.sent, dtype=bool)]
        if len(sent):
            held = np.zeros(max(int(pending.max()), int(sent.max())) + 1, dtype=bool)
            held[sent] = True
            rewritten = np.asarray(written_since_capture, dtype=np.int64)
            held[rewritten[rewritten < len(held)]] = False
            pending = pending[~held[pending]]
    if not len(pending):
        return 0
    ends = np.minimum((pending + 1) * region_size, size)
    return int(np.maximum(0, ends - pending * region_size).sum())


def progress(kind: str, done: int, total: int, t) -> SyncProgress:
    kind = sync_kind(kind, t)
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
    return SyncStatRow(group_name=group, kind=sync_kind(t.kind, t), started=t.started_at, ended=utcnow(),
                       bytes_sent=t.bytes_sent, bytes_payload=t.bytes_payload,
                       unique_changed_bytes=t.unique_changed_bytes, bytes_resent=t.bytes_resent,
                       duration_seconds=time.monotonic() - t.started, recovery_point_time=recovery_point_time,
                       outcome=outcome, staged_bytes=t.bytes_staged)


def stats(row) -> SyncStats:
    return SyncStats(group=row.group_name, kind=row.kind, started=row.started, ended=row.ended,
                     bytes_sent=row.bytes_sent, bytes_payload=row.bytes_payload,
                     unique_changed_bytes=row.unique_changed_bytes, bytes_resent=row.bytes_resent,
                     duration_seconds=row.duration_seconds, recovery_point_time=row.recovery_point_time,
                     outcome=row.outcome, staged_bytes=row.staged_bytes)
