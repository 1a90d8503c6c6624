"""On-disk mechanisms of the replication data path (no networking, no database).

Primary side: :class:`ChangeLog` (which regions to send) and :class:`PitStore`
(the point-in-time image being sent). Secondary side: :class:`Staging` (the redo
journal that keeps the recovery point intact until the group commits). All live in
the pair's reserved capacity and report ``bytes_used`` against its budget.
"""
from core.datapath.changelog import ChangeLog
from core.datapath.extents import FormatMismatch, allocated_regions, punch_hole
from core.datapath.pit import PitStore
from core.datapath.staging import Recovery, Staging

__all__ = [
    "ChangeLog", "FormatMismatch", "PitStore", "Recovery", "Staging", "allocated_regions", "punch_hole",
]
