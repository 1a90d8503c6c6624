"""The resume hint of a primary group: which transfer a crash interrupted, so it resumes.

Written at each capture and removed at commit or abandon. It only saves resending:
a damaged hint is reported and removed, and the sync starts a fresh transfer (never a
guess at a transfer id). After a reboot the page cache, and with it the unsynced
since-capture log, is gone, so a hint from another boot is not trusted.
"""
from __future__ import annotations

from pathlib import Path

from core.domain import Severity
from core.replication import receiver


def _path(array, group: str) -> Path:
    d = array.data_dir / "reserved" / ".groups"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{group}.inflight"


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def interrupted_transfer(array, group: str) -> str | None:
    """The transfer to resume, or None (none recorded, another boot, or a damaged hint)."""
    path = _path(array, group)
    try:
        hint = receiver.read_record(path, receiver.INFLIGHT_MAGIC, ("transfer",))
    except receiver.DamagedRecord as e:
        path.unlink(missing_ok=True)
        array.log(Severity.WARNING, group, "arvmSyncHintDamaged",
                  f"{e.message}; removed: the synchronization of {group} starts a fresh transfer (nothing to "
                  "do; what the secondary had staged is sent again)")
        return None
    if hint is None:
        return None
    return hint.get("transfer") if hint.get("boot") == boot_id() else None


def record(array, group: str, transfer: str | None) -> None:
    """Note the transfer being sent (None: the group has none in flight)."""
    path = _path(array, group)
    if transfer is None:
        path.unlink(missing_ok=True)
    else:  # not fsynced: losing it only costs a fresh transfer
        receiver.write_record(path, receiver.INFLIGHT_MAGIC, {"transfer": transfer, "boot": boot_id()},
                              durable=False)
