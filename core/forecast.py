"""How much reserved capacity the next synchronization needs, from the group's change rate.

The trap this guards against (issue 12): with the default 20 % and a steady
workload, a sync stages more changed regions on the secondary than its reserved
capacity holds, and the pair fails with its recovery point image lost — with no
warning before. The sync history records what each attempt staged on the secondary
(region data that is not zeros; of a region sent as dirty blocks, only those), so
the rate at which a group fills a secondary's journal is known; this module turns it
into "the next sync needs about X of Y" and into the two fixes: a reserved capacity
of N % or a shorter interval. History recorded before staged bytes were counted gives
its unique changed bytes (whole regions), which overstates: a volume rewritten with
zeros stages nothing, and scattered 4 KiB writes stage a sixteenth of their regions.

Pure arithmetic on plain values and snapshots: no engine, no Qt. The Recovery Guru
(``core.guru``) and the pair wizard use it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

RECENT_SAMPLES = 6  # the rate follows the workload of the last few syncs, not of last week
HEADROOM = 1.5  # suggested sizes hold 1.5 x the forecast: workloads are not steady
WARN_FRACTION = 0.8  # a forecast above 80 % of what is available is a warning, at 100 % critical
MIN_INTERVAL_MINUTES = 1  # SPEC: scheduled every N minutes, minimum 1 in this software


@dataclass(frozen=True)
class ChangeRate:
    """A group's measured change rate: bytes staged on the secondary per second of elapsed time."""

    bytes_per_second: float
    interval_seconds: float  # the group's interval (scheduled) or the typical time between syncs (manual)
    samples: int  # how many syncs the figure comes from

    @property
    def per_interval(self) -> int:
        """Bytes one interval stages at this rate."""
        return int(self.bytes_per_second * self.interval_seconds)


def change_rate(history: Sequence, interval_seconds: float | None = None) -> ChangeRate | None:
    """The change rate from sync statistics (``core.snapshots.SyncStats``, oldest first or not).

    Each non-initial attempt captured every region changed since the last *committed*
    capture (a failed or interrupted attempt gives its regions back), so its staged bytes
    (its unique changed bytes when not recorded) over the time since that commit's start is one sample. The
    rate is their total bytes over their total time (long intervals weigh more).
    ``interval_seconds``: the group's schedule; None (manual) takes the median time
    between the syncs measured. None when there is nothing to measure yet.
    """
    rows = sorted(history, key=lambda h: h.started)
    samples: list[tuple[int, float]] = []
    base: datetime | None = None  # start of the last committed capture
    for h in rows:
        if base is not None and h.kind != "initial":
            elapsed = (h.started - base).total_seconds()
            if elapsed > 0:
                staged = h.unique_changed_bytes if h.staged_bytes is None else h.staged_bytes
                samples.append((int(staged), elapsed))
        if h.outcome == "committed":
            base = h.started
    samples = samples[-RECENT_SAMPLES:]
    if not samples:
        return None
    total_bytes = sum(b for b, _ in samples)
    total_time = sum(t for _, t in samples)
    if interval_seconds is None:
        times = sorted(t for _, t in samples)
        interval_seconds = times[len(times) // 2]
    return ChangeRate(bytes_per_second=total_bytes / total_time, interval_seconds=float(interval_seconds),
                      samples=len(samples))


@dataclass(frozen=True)
class ReservedForecast:
    """The next sync's need against one secondary volume's reserved capacity."""

    volume: str  # ARRAY/VOLUME of the reserved capacity that receives the sync
    needed: int  # bytes the next sync stages there, about
    capacity: int  # its reserved capacity now
    available: int  # what staging may use: the capacity minus change logs and PIT data
    volume_capacity: int
    suggested_percent: int  # a reserved capacity (of the volume) that holds the forecast with headroom
    suggested_interval_minutes: int | None  # an interval whose changes fit what is available now (None: none does)
    rate: ChangeRate

    @property
    def percent_now(self) -> float:
        return 100.0 * self.capacity / self.volume_capacity if self.volume_capacity else 0.0

    @property
    def fills(self) -> bool:
        """At this rate the next sync does not fit: the pair would fail."""
        return self.needed >= self.available

    @property
    def whole_volume(self) -> bool:
        """At this rate an interval changes all of the volume: the need is the volume's size."""
        return 0 < self.volume_capacity <= self.needed

    @property
    def at_risk(self) -> bool:
        return self.needed >= WARN_FRACTION * self.available


def suggested_percent(needed: int, overhead: int, volume_capacity: int, capacity_now: int) -> int:
    """A whole percentage of the volume that holds ``needed`` x HEADROOM plus ``overhead``; larger than now, <= 100."""
    if volume_capacity <= 0:
        return 100
    want = math.ceil(100.0 * (needed * HEADROOM + overhead) / volume_capacity)
    now = math.floor(100.0 * capacity_now / volume_capacity)
    return int(min(100, max(want, now + 1)))


def suggested_interval(rate: ChangeRate, available: int) -> int | None:
    """The longest whole-minute interval whose changes (with headroom) fit ``available``; None if not even 1 min."""
    if rate.bytes_per_second <= 0:
        return None
    minutes = math.floor(available / (rate.bytes_per_second * HEADROOM) / 60)
    return minutes if minutes >= MIN_INTERVAL_MINUTES else None


def forecast(volume: str, rate: ChangeRate, share: float, pending: int, capacity: int, used: int,
             volume_capacity: int) -> ReservedForecast:
    """The forecast for one secondary volume.

    ``share``: the part of the group's changes that goes to this volume (0..1);
    ``pending``: bytes its primary has not sent yet (the next sync needs at least these);
    ``used``: what its reserved capacity holds besides staging (change logs, PIT).
    """
    needed = max(int(rate.per_interval * share), int(pending))
    if volume_capacity > 0:  # a burst (a whole disk image copied in) extrapolates past the volume's size
        needed = min(needed, volume_capacity)
    available = max(0, capacity - used)
    return ReservedForecast(volume=volume, needed=needed, capacity=capacity, available=available,
                            volume_capacity=volume_capacity,
                            suggested_percent=suggested_percent(needed, used, volume_capacity, capacity),
                            suggested_interval_minutes=suggested_interval(
                                ChangeRate(rate.bytes_per_second * share, rate.interval_seconds, rate.samples),
                                available),
                            rate=rate)


def group_forecasts(primary, secondary, history: Sequence, volume_capacities: dict[str, int]) -> list[ReservedForecast]:
    """One forecast per pair of a group, from both sides' snapshots (``core.snapshots.GroupSnapshot``).

    ``primary``/``secondary``: the two sides; ``volume_capacities``: "ARRAY/VOLUME" ->
    bytes of the secondary volumes. The history is per group: its changes are split
    between pairs in proportion to what each primary has pending now, or, with
    nothing pending, each pair is assumed to take all of them (a warning too many
    rather than a pair failed without one).
    """
    interval = primary.sync_interval_minutes * 60 if primary.sync_mode == "scheduled" else None
    rate = change_rate(history, interval)
    if rate is None:
        return []
    # What each primary has not sent yet, in the blocks written (whole regions from an older daemon).
    pending = {p.remote_volume: p.unsynchronized_bytes if p.unsynchronized_block_bytes is None
               else p.unsynchronized_block_bytes for p in primary.pairs}
    total = sum(pending.values())
    out = []
    for p in secondary.pairs:
        ref = f"{secondary.array}/{p.local_volume}"
        vol_cap = volume_capacities.get(ref)
        if vol_cap is None:
            continue
        rc = p.reserved_capacity
        share = pending.get(p.local_volume, 0) / total if total else 1.0
        out.append(forecast(ref, rate, share, pending.get(p.local_volume, 0), rc.capacity,
                            rc.log_bytes + rc.pit_bytes, vol_cap))
    return out


def initial_percent(rate: ChangeRate | None, volume_capacity: int, default: float) -> int | None:
    """The reserved capacity the pair wizard offers for a new pair, or None without a change history.

    Sized like :func:`suggested_percent` for one interval of the group's measured
    changes, and never below the default.
    """
    if rate is None or volume_capacity <= 0:
        return None
    want = math.ceil(100.0 * rate.per_interval * HEADROOM / volume_capacity)
    return int(min(100, max(math.ceil(default), want)))
