"""``GET /metrics``: Prometheus gauges of this array's groups and pairs, from the snapshots of the moment."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from test_rest_support import make_mirror, rest  # noqa: F401  (fixture)


def samples(rest) -> dict[tuple, float]:
    r = rest.get("/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.body.decode()) for s in family.samples}


def test_metrics_follow_the_mirrors(rest, client):
    assert rest.get("/metrics", auth=None).status == 401
    assert samples(rest) == {}  # no group, no series
    stats = make_mirror(client, rest)
    rest.request("PUT", "volumes/v/data", raw=b"u" * 4096)  # one region not yet in a recovery point
    got = samples(rest)
    group = (("array", "SiteA"), ("group", "G"))
    snap = client.group("G")
    assert got[("mirror_group_unsynchronized_bytes", group)] == snap.unsynchronized_bytes > 0
    assert 0 <= got[("mirror_group_recovery_point_age_seconds", group)] < 60
    assert got[("mirror_group_last_sync_duration_seconds", group)] == stats["durationSeconds"]
    assert got[("mirror_group_last_sync_bytes", group)] == stats["bytesSent"]
    ratio = got[("mirror_pair_reserved_capacity_utilization_ratio", group + (("volume", "v"),))]
    assert 0 < ratio < 1 and abs(ratio - snap.pairs[0].reserved_capacity.utilization_pct / 100) < 1e-9
    rest.delete("async-mirrors/G/pairs/v")
    rest.delete("async-mirrors/G")
    assert samples(rest) == {}  # a fresh registry per scrape: nothing stale
