"""Icons and the style sheet from the ``resources`` package (by path, via importlib.resources)."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from PySide6.QtGui import QBrush, QColor, QIcon

from core.domain import GroupStatus, PairStatus

_STATUS_ICON = {
    GroupStatus.OPTIMAL.value: "status_optimal",
    GroupStatus.INITIAL_SYNC.value: "status_synchronizing",
    GroupStatus.SYNCHRONIZING.value: "status_synchronizing",
    GroupStatus.SYSTEM_SUSPENDED.value: "status_suspended",
    GroupStatus.USER_SUSPENDED.value: "status_suspended",
    GroupStatus.PAUSED.value: "status_paused",
    GroupStatus.ORPHAN.value: "status_warning",
    GroupStatus.ROLE_CHANGE_PENDING.value: "status_synchronizing",
    GroupStatus.ROLE_CHANGE_IN_PROGRESS.value: "status_synchronizing",
    GroupStatus.ROLE_CONFLICT.value: "status_failed",
    GroupStatus.SYNC_FAILING.value: "status_failed",
    PairStatus.INCOMPLETE.value: "status_warning",
    PairStatus.FAILED.value: "status_failed",
    PairStatus.STOPPED.value: "status_suspended",
    "warning": "status_warning",
    "critical": "status_failed",
    "info": "status_optimal",
}


def _root():
    try:
        return resources.files("resources")
    except NotADirectoryError:
        # An editable install made before resources/ had an __init__.py maps it as a namespace
        # package with a path hook entry, which importlib.resources refuses; use its real directory.
        import importlib
        from pathlib import Path

        paths = [Path(p) for p in importlib.import_module("resources").__path__ if Path(p).is_dir()]
        return paths[0]


def resource_path(name: str) -> str:
    """Filesystem path of a file in the resources package (icons live in ``icons/``)."""
    return str(_root().joinpath(name))


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """``icon("array")`` -> resources/icons/array.svg (cached: the tree asks often)."""
    return QIcon(resource_path(f"icons/{name}.svg"))


STALE = "Last known state"  # what an array that does not answer last reported
STALE_BRUSH = QBrush(QColor("#8a8f98"))  # its rows are greyed, in the tree and the tables


LAST_KNOWN = " (last known)"  # what a stale status ends with; a cut one keeps it (gui.elided.KeepTailDelegate)


def last_known(text: str, stale: bool) -> str:
    """A status an array that does not answer reported last says so: never a plain, current-looking "Optimal"."""
    return text + LAST_KNOWN if stale else text


def stale_tip(array: str) -> str:
    return f"{STALE}: {array} does not answer"


def status_icon(status: str, stale: bool = False) -> QIcon:
    """A status's icon; ``stale``: what an array that does not answer reported last, greyed."""
    return _stale_status_icon(status) if stale else icon(_STATUS_ICON.get(status, "status_optimal"))


def status_icon_of(key: str) -> QIcon:
    """The icon of a key from :func:`status_key`, which says both the status and whether it is stale."""
    status, _, stale = key.partition(":")
    return status_icon(status, stale == "stale")


def status_key(status: str, stale: bool) -> str:
    """``optimal`` or ``optimal:stale``: one value to compare, so a cell's icon is set again only when it changes."""
    return f"{status}:stale" if stale else status


@lru_cache(maxsize=None)
def _stale_status_icon(status: str) -> QIcon:
    base = status_icon(status)
    out = QIcon()
    for size in (16, 24, 32):  # drawn as Qt draws a disabled icon: a green mark must not look current
        out.addPixmap(base.pixmap(size, size, QIcon.Mode.Disabled))
    return out


def role_icon(role: str | None) -> QIcon:
    return icon("role_primary") if role == "primary" else icon("role_secondary")


def style_sheet() -> str:
    return _root().joinpath("style.qss").read_text(encoding="utf-8")


@lru_cache(maxsize=None)  # a bounded set of values; asked per row of every table at each update
def status_label(status: str) -> str:
    """How a status value is shown: ``initial_sync`` -> "Synchronizing (initial sync)"."""
    for enum in (GroupStatus, PairStatus):
        try:
            return enum(status).label
        except ValueError:
            continue
    return status.replace("_", " ").capitalize()
