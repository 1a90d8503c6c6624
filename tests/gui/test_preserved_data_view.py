"""The Preserved data view: a role-conflict loser's writes listed, restored into a new volume, deleted."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog, QMessageBox

pytestmark = pytest.mark.timeout(120)
RS = 65536


def _conflict_resolved(qtbot, window, engine):
    """G: SiteA -> SiteB; apart, SiteB is force-promoted and SiteA writes; SiteB is kept."""
    engine("create_group", "G", "SiteA", "SiteB", sync_mode="manual")
    engine("add_pair", "G", "SiteA/db", "SiteB/db_dr")
    engine("sync_now", "G", wait=True, after_running=True)
    engine("lab_link", True)
    engine("promote", "G", "SiteB", force=True)
    engine("host_write", "SiteA/db", 7 * RS, b"apart" * 800)
    engine("lab_link", False)
    qtbot.waitUntil(lambda: any(p.id == "role-conflict:G" for p in engine("guru")), timeout=30000)
    engine("guru_fix", "role-conflict:G", "keep-SiteB")


def test_preserved_data_view_lists_restores_and_deletes(qtbot, console, engine, monkeypatch):
    bridge, window = console
    _conflict_resolved(qtbot, window, engine)
    view = window.open_preserved_data()
    qtbot.waitUntil(lambda: view.table.rowCount() == 1, timeout=10000)
    cells = [view.table.item(0, c).text() for c in range(view.table.columnCount())]
    assert cells[:3] == ["SiteA", "G", "db"] and cells[4] == "64.00 KiB" and cells[6] == "kept"
    assert "T" not in cells[3]  # a time spelled like the rest of the console, not raw ISO
    assert not view.restore_button.isEnabled()  # nothing selected yet, and the button says why
    assert view.restore_button.toolTip() == "Select a preserved set first"
    view.table.selectRow(0)
    assert view.restore_button.isEnabled() and view.export_button.isEnabled()

    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("db_rescued", True))
    qtbot.mouseClick(view.restore_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: view.status.text() == "Restored into SiteA/db_rescued", timeout=10000)
    assert engine("host_read", "SiteA/db_rescued", 7 * RS, 4000) == b"apart" * 800
    qtbot.waitUntil(lambda: window.tree.has(("volume", "SiteA", "db_rescued")), timeout=10000)

    monkeypatch.setattr(QMessageBox, "exec", lambda self: QMessageBox.Yes)
    view.table.selectRow(0)
    qtbot.mouseClick(view.delete_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: view.table.rowCount() == 0 and view.empty.isVisible(), timeout=10000)
    assert engine("preserved_data") == []
