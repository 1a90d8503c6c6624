"""An event logged without fsync after an autoflush is still logged (SQLite refuses to change its safety level
inside a transaction; that made a sync's progress event raise)."""
from __future__ import annotations

from core.domain import Severity
from core.array import StorageArray


def test_a_non_durable_event_after_an_autoflush_is_logged(lab_home):
    a = StorageArray.open(lab_home / "arrays" / "SiteA", "pytest")
    try:
        a.volumes()[0].preferred_owner = "B"  # a pending change...
        a.volumes()  # ...flushed by a query: the database is inside a transaction now
        record = a.log(Severity.INFO, "x", "testEvent", "logged after an autoflush", durable=False)
        assert a.events(5)[-1].id == record.id and a.volumes()[0].preferred_owner == "B"
    finally:
        a.close()
