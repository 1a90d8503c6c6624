"""The vocabulary of asynchronous mirroring (SPEC §2), as enums and limits.

Values are the lowercase words the CLI accepts and ``--json`` prints, so scripts
can rely on them.
"""
from __future__ import annotations

import os
from enum import Enum


class _Word(str, Enum):
    def __str__(self) -> str:  # prints as the CLI spells it
        return self.value

    @property
    def label(self) -> str:
        """How the console shows it."""
        return _LABELS.get(self, self.value.replace("_", " ").capitalize())


class Model(_Word):
    E2800 = "E2800"
    E2700 = "E2700"
    E5700 = "E5700"
    E5600 = "E5600"
    EF570 = "EF570"
    EF600 = "EF600"
    EF300 = "EF300"
    E4000 = "E4000"

    @property
    def strict_matching(self) -> bool:
        """EF600/EF300 mirror only between volumes of the same layout (SPEC §2)."""
        return self in (Model.EF600, Model.EF300)


class DriveType(_Word):
    NVME = "nvme"
    SAS = "sas"


class Security(_Word):
    NONE = "none"
    FDE = "fde"
    FIPS = "fips"


class Channel(_Word):
    FC = "fc"
    ISCSI = "iscsi"


class Role(_Word):
    PRIMARY = "primary"
    SECONDARY = "secondary"

    @property
    def other(self) -> "Role":
        return Role.SECONDARY if self is Role.PRIMARY else Role.PRIMARY


class SyncMode(_Word):
    MANUAL = "manual"
    SCHEDULED = "scheduled"


class Priority(_Word):
    LOWEST = "lowest"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    HIGHEST = "highest"

    @property
    def weight(self) -> int:
        """Share of channel bandwidth relative to the other running syncs."""
        return {"lowest": 1, "low": 2, "medium": 4, "high": 8, "highest": 16}[self.value]


class ResyncPolicy(_Word):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


class ControllerStatus(_Word):
    OPTIMAL = "optimal"
    OFFLINE = "offline"


class GroupStatus(_Word):
    INITIAL_SYNC = "initial_sync"
    SYNCHRONIZING = "synchronizing"
    OPTIMAL = "optimal"
    SYSTEM_SUSPENDED = "system_suspended"
    USER_SUSPENDED = "user_suspended"
    PAUSED = "paused"
    ORPHAN = "orphan"
    ROLE_CHANGE_PENDING = "role_change_pending"
    ROLE_CHANGE_IN_PROGRESS = "role_change_in_progress"
    ROLE_CONFLICT = "role_conflict"
    # Beyond SANtricity's statuses: every recent sync failed (e.g. ENOSPC on the secondary)
    # while the group still looks healthy otherwise; never shown as Optimal.
    SYNC_FAILING = "sync_failing"


class PairStatus(_Word):
    SYNCHRONIZING = "synchronizing"
    OPTIMAL = "optimal"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    ORPHAN = "orphan"
    STOPPED = "stopped"


class Severity(_Word):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


_LABELS = {
    GroupStatus.INITIAL_SYNC: "Synchronizing (initial sync)",
    GroupStatus.SYNCHRONIZING: "Synchronizing (interval sync)",
    GroupStatus.OPTIMAL: "Optimal",
    GroupStatus.SYSTEM_SUSPENDED: "System suspended",
    GroupStatus.USER_SUSPENDED: "User suspended",
    GroupStatus.PAUSED: "Paused",
    GroupStatus.ROLE_CHANGE_PENDING: "Role change pending",
    GroupStatus.ROLE_CHANGE_IN_PROGRESS: "Role change in progress",
    GroupStatus.ROLE_CONFLICT: "Role conflict",
    GroupStatus.SYNC_FAILING: "Synchronization failing",
    DriveType.NVME: "NVMe",
    DriveType.SAS: "SAS",
    Security.NONE: "None",
    Security.FDE: "FDE-capable",
    Security.FIPS: "FIPS-capable",
    Channel.FC: "Fibre Channel",
    Channel.ISCSI: "iSCSI",
}

# Limits (SPEC §2). Minimum interval is 1 minute in this software.
MIN_FIRMWARE = (7, 84)
NAME_MAX = 30
DEFAULT_INTERVAL_MIN = 10
MIN_INTERVAL_MIN = 1
MAX_INTERVAL_MIN = 1440
DEFAULT_RESERVED_PERCENT = 20
DEFAULT_SYNC_ALERT_MIN = 10
DEFAULT_RECOVERY_POINT_ALERT_MIN = 30
DEFAULT_RESERVED_ALERT_PCT = 80
DEFAULT_REGION_SIZE = 64 * 1024
# The region size this process uses (tests and benchmarks may choose another).
REGION_SIZE = int(os.environ.get("MIRROR_REGION_SIZE", DEFAULT_REGION_SIZE))
RAID_LEVELS = ("0", "1", "5", "6", "10")


def firmware_tuple(version: str) -> tuple[int, ...]:
    """``08.74.00.01`` -> (8, 74, 0, 1); unparsable parts count as 0."""
    out = []
    for part in version.split("."):
        out.append(int(part) if part.isdigit() else 0)
    return tuple(out)


def parse_word(enum: type[Enum], text, what: str):
    """Parse a CLI word into ``enum`` with an error listing what is accepted."""
    from core.errors import InvalidInput

    if isinstance(text, enum):
        return text
    try:
        return enum(str(text).lower() if enum is not Model else str(text).upper())
    except ValueError:
        choices = ", ".join(e.value for e in enum)
        raise InvalidInput(f"{what} '{text}' is not valid; use one of: {choices}") from None
