"""Prometheus metrics of this array's mirrors, built fresh from snapshots at every scrape.

A new ``CollectorRegistry`` per scrape holds exactly what the snapshots say now: a
deleted group disappears from the next scrape instead of lingering as a stale
series in a process-wide registry, and nothing has to be kept in step with the
engine between scrapes. Labels are ``array``, ``group`` and (per pair) ``volume``;
a group without a recovery point yet has no age sample rather than a made-up one.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

GROUP_LABELS = ("array", "group")
PAIR_LABELS = ("array", "group", "volume")
CONTENT_TYPE = CONTENT_TYPE_LATEST


async def scrape(engine, array: str) -> bytes:
    """The Prometheus text exposition of ``array``'s groups and pairs."""
    registry = CollectorRegistry()
    age = Gauge("mirror_group_recovery_point_age_seconds",
                "Seconds since the group's last committed recovery point", GROUP_LABELS, registry=registry)
    unsynced = Gauge("mirror_group_unsynchronized_bytes",
                     "Bytes written on the primary and not yet in a recovery point", GROUP_LABELS, registry=registry)
    duration = Gauge("mirror_group_last_sync_duration_seconds",
                     "Duration of the group's last synchronization", GROUP_LABELS, registry=registry)
    sent = Gauge("mirror_group_last_sync_bytes",
                 "Bytes the group's last synchronization sent over the channel", GROUP_LABELS, registry=registry)
    reserved = Gauge("mirror_pair_reserved_capacity_utilization_ratio",
                     "Used share (0-1) of the pair's reserved capacity on this array", PAIR_LABELS, registry=registry)
    for g in await engine.groups(array):
        labels = (g.array, g.name)
        unsynced.labels(*labels).set(g.unsynchronized_bytes)
        if g.recovery_point_age_seconds is not None:
            age.labels(*labels).set(g.recovery_point_age_seconds)
        if g.last_sync is not None:
            duration.labels(*labels).set(g.last_sync.duration_seconds)
            sent.labels(*labels).set(g.last_sync.bytes_sent)
        for p in g.pairs:
            reserved.labels(g.array, g.name, p.local_volume).set(p.reserved_capacity.utilization_pct / 100.0)
    return generate_latest(registry)
