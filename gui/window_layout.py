"""The window's layout as the administrator left it: geometry, docks, splitters, column widths.

Kept with QSettings in an INI file under the user's configuration directory
(organisation "AsyncMirror"), written when the window closes and read when it is
built. Splitters and item views are found by ``objectName`` so a panel only has to
name its splitter or view to have it remembered; a view's header is restored only
when it still has the same number of columns (a newer console may have added one).
Tests point QSettings elsewhere (``QSettings.setPath``) so they never touch the user's.
"""
from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QAbstractItemView, QMainWindow, QSplitter, QTableView, QTreeView

ORGANIZATION = "AsyncMirror"
APPLICATION = "Async Mirror Console"
VERSION = 1  # bump when the layout of docks changes so an old saved state is not applied to it


def settings() -> QSettings:
    """The console's settings file (INI, per user)."""
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORGANIZATION, APPLICATION)


def _header(view: QAbstractItemView):
    if isinstance(view, QTreeView):
        return view.header()
    if isinstance(view, QTableView):
        return view.horizontalHeader()
    return None


def _named(window: QMainWindow, cls):
    return [w for w in window.findChildren(cls) if w.objectName()]


def save(window: QMainWindow, store: QSettings | None = None) -> None:
    """Remember the window's geometry, dock state, splitter positions and column widths."""
    s = store or settings()
    s.beginGroup("mainWindow")
    s.setValue("version", VERSION)
    s.setValue("geometry", window.saveGeometry())
    s.setValue("state", window.saveState(VERSION))
    for split in _named(window, QSplitter):
        s.setValue(f"splitter/{split.objectName()}", split.saveState())
    for view in _named(window, QAbstractItemView):
        header = _header(view)
        if header is not None:
            s.setValue(f"columns/{view.objectName()}", header.saveState())
            s.setValue(f"columnCount/{view.objectName()}", header.count())
    s.endGroup()
    s.sync()


def restore(window: QMainWindow, store: QSettings | None = None) -> bool:
    """Apply what :func:`save` kept; False when there is nothing (first start) or it is from another layout."""
    s = store or settings()
    s.beginGroup("mainWindow")
    try:
        if int(s.value("version", 0) or 0) != VERSION:
            return False
        geometry = s.value("geometry")
        if isinstance(geometry, QByteArray):
            window.restoreGeometry(geometry)
        state = s.value("state")
        if isinstance(state, QByteArray):
            window.restoreState(state, VERSION)
        for split in _named(window, QSplitter):
            value = s.value(f"splitter/{split.objectName()}")
            if isinstance(value, QByteArray):
                split.restoreState(value)
        for view in _named(window, QAbstractItemView):
            header = _header(view)
            value = s.value(f"columns/{view.objectName()}")
            count = int(s.value(f"columnCount/{view.objectName()}", -1) or -1)
            if header is not None and isinstance(value, QByteArray) and count == header.count():
                header.restoreState(value)
        return True
    finally:
        s.endGroup()
