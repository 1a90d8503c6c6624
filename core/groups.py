"""Mirror consistency group settings and their rules (SPEC §2).

``GroupSettings`` is what the Create-group wizard, ``group create``/``group set``
and the REST API all fill in; :func:`validate` refuses bad combinations with the
SANtricity codes before anything is written.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from core.names import check_name
from core.domain import (DEFAULT_INTERVAL_MIN, DEFAULT_RECOVERY_POINT_ALERT_MIN, DEFAULT_RESERVED_ALERT_PCT,
                         DEFAULT_SYNC_ALERT_MIN, MAX_INTERVAL_MIN, MIN_INTERVAL_MIN, Channel, Priority,
                         ResyncPolicy, SyncMode, parse_word)
from core.errors import InvalidInput


@dataclass(frozen=True)
class GroupSettings:
    channel: Channel = Channel.FC
    sync_mode: SyncMode = SyncMode.SCHEDULED
    sync_interval_minutes: int = DEFAULT_INTERVAL_MIN
    priority: Priority = Priority.MEDIUM
    resync_policy: ResyncPolicy = ResyncPolicy.AUTOMATIC
    sync_alert_minutes: int = DEFAULT_SYNC_ALERT_MIN
    recovery_point_alert_minutes: int = DEFAULT_RECOVERY_POINT_ALERT_MIN
    reserved_alert_percent: int = DEFAULT_RESERVED_ALERT_PCT

    @classmethod
    def from_row(cls, row) -> "GroupSettings":
        return cls(channel=Channel(row.channel), sync_mode=SyncMode(row.sync_mode),
                   sync_interval_minutes=row.sync_interval_minutes, priority=Priority(row.priority),
                   resync_policy=ResyncPolicy(row.resync_policy), sync_alert_minutes=row.sync_alert_minutes,
                   recovery_point_alert_minutes=row.recovery_point_alert_minutes,
                   reserved_alert_percent=row.reserved_alert_percent)

    def to_params(self) -> dict:
        return {k: (v.value if hasattr(v, "value") else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_params(cls, params: dict) -> "GroupSettings":
        return cls().updated(**params)

    def updated(self, **changes) -> "GroupSettings":
        """Apply changes given as CLI/REST words, parsing and validating them."""
        parsed = {}
        for key, value in changes.items():
            if value is None:
                continue
            if key == "channel":
                value = parse_word(Channel, value, "channel")
            elif key == "sync_mode":
                value = parse_word(SyncMode, value, "synchronization mode")
            elif key == "priority":
                value = parse_word(Priority, value, "sync priority")
            elif key == "resync_policy":
                value = parse_word(ResyncPolicy, value, "resync policy")
            elif key in ("sync_interval_minutes", "sync_alert_minutes", "recovery_point_alert_minutes",
                         "reserved_alert_percent"):
                value = _int(value, key)
            else:
                raise InvalidInput(f"unknown group setting '{key}'")
            parsed[key] = value
        return validate(replace(self, **parsed))

    def to_row_values(self) -> dict:
        return self.to_params()


def _int(value, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{key.replace('_', ' ')} '{value}' is not a whole number") from None


def validate(s: GroupSettings) -> GroupSettings:
    if s.sync_mode is SyncMode.SCHEDULED and not MIN_INTERVAL_MIN <= s.sync_interval_minutes <= MAX_INTERVAL_MIN:
        raise InvalidInput(
            f"synchronization interval {s.sync_interval_minutes} min is out of range; give {MIN_INTERVAL_MIN} to "
            f"{MAX_INTERVAL_MIN} minutes, or choose manual synchronization", code="arvmInvalidSyncInterval")
    if s.sync_alert_minutes < 1:
        raise InvalidInput("the sync completion alert threshold must be at least 1 minute",
                           code="arvmInvalidSyncCompletionThreshold")
    if s.recovery_point_alert_minutes < 2 * s.sync_alert_minutes:
        raise InvalidInput(
            f"the recovery point alert threshold ({s.recovery_point_alert_minutes} min) must be at least twice the "
            f"sync completion alert threshold ({s.sync_alert_minutes} min); raise it to "
            f"{2 * s.sync_alert_minutes} min or more", code="arvmInvalidRecoveryPointThreshold")
    if not 1 <= s.reserved_alert_percent <= 100:
        raise InvalidInput(f"the reserved capacity alert threshold {s.reserved_alert_percent} % must be 1 to 100",
                           code="arvmInvalidRepositoryThreshold")
    return s


def check_group_name(name: str) -> str:
    return check_name(name, "Mirror consistency group", code="arvmInvalidGroupLabel")
