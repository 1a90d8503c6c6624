"""The threshold alerts of a primary group (SPEC §2 "Alerts and events").

Each alert is logged once when its threshold is crossed and armed again when the
value falls back (the recovery point age re-arms at the next commit). The caller
measures; this module decides and logs, so the rules stay in one place.
"""
from __future__ import annotations

from core.domain import Severity
from core.replication.state import GroupState


def check(array, g, st: GroupState, recovery_point_age: float | None, reserved_used: dict[str, int]) -> None:
    """``recovery_point_age`` in seconds; ``reserved_used``: bytes used per local volume of the group."""
    if recovery_point_age is not None and not st.rp_age_alerted \
            and recovery_point_age > g.recovery_point_alert_minutes * 60:
        st.rp_age_alerted = True
        array.log(Severity.WARNING, g.name, "arvmRecoveryPointAgeAlert",
                  f"The recovery point of {g.name} is {recovery_point_age / 60:.0f} min old, older than its "
                  f"{g.recovery_point_alert_minutes} min threshold; check the link and synchronize")
    for p in g.pairs:
        key = p.volume.name
        pct = 100.0 * reserved_used.get(key, 0) / p.reserved_capacity if p.reserved_capacity else 0
        if pct > g.reserved_alert_percent and key not in st.reserved_alerted:
            st.reserved_alerted.add(key)
            array.log(Severity.WARNING, f"{g.name}/{key}", "arvmRepositoryThresholdAlert",
                      f"Reserved capacity of {array.name}/{key} is {pct:.0f} % used, above the group's "
                      f"{g.reserved_alert_percent} % threshold; increase it")
        elif pct <= g.reserved_alert_percent:
            st.reserved_alerted.discard(key)
