"""The event log dock as an administrator reads it: rows, details, copy, CSV, one row per empty sync."""
from __future__ import annotations

import csv
import os
import re

import pytest
from PySide6.QtCore import QItemSelectionModel
from PySide6.QtGui import QGuiApplication


pytestmark = pytest.mark.timeout(60)
MIB = 1 << 20
TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def _erp_synced(qtbot, window, engine):
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    engine("host_write", "SiteA/db", 0, os.urandom(MIB))
    engine("add_pair", "erp", "SiteA/db", "SiteB/db_dr")
    qtbot.waitUntil(lambda: (p := window.state.pair("SiteB", "db_dr")) is not None and p.recovery_point_available,
                    timeout=20000)


NOTHING_CHANGED = "nothing had changed since the last recovery point"  # the engine's words


def _select(view, rows):
    sm = view.selectionModel()
    sm.clearSelection()
    for r in rows:
        sm.select(view.model().index(r, 0), QItemSelectionModel.Select | QItemSelectionModel.Rows)


def test_event_log_shows_one_row_per_sync_that_sent_nothing(qtbot, console, engine):
    bridge, window = console
    _erp_synced(qtbot, window, engine)
    log = window.events
    qtbot.waitUntil(lambda: any(r.code == "arvmSyncCompleted" for r in log.model.records), timeout=5000)
    before = log.model.rowCount()
    engine("sync_now", "erp", wait=True)  # nothing written since: one event, its commit
    engine("sync_now", "erp", wait=True)
    qtbot.waitUntil(lambda: sum(r.code == "arvmSyncCompleted" for r in log.model.records) >= 3, timeout=5000)
    qtbot.wait(100)
    new = [log.model.cells(r) for r in range(before, log.model.rowCount())]
    syncs = [c for c in new if c[4] in ("arvmSyncStarted", "arvmSyncCompleted")]
    assert len(syncs) == 2, syncs  # two syncs, one row each (were four)
    assert all(c[4] == "arvmSyncCompleted" and c[5].endswith(NOTHING_CHANGED) for c in syncs)
    row = before + new.index(syncs[-1])
    _select(log.view, [log.proxy.mapFromSource(log.model.index(row, 0)).row()])
    assert NOTHING_CHANGED in log.details.toPlainText()
    assert sum(e.code == "arvmSyncStarted" for e in engine("events", "SiteA")[-2:]) == 0  # mirrorctl events too


def test_event_log_has_room_for_more_rows_and_formats_every_time(qtbot, console, engine):
    bridge, window = console
    window.resize(1280, 800)
    _erp_synced(qtbot, window, engine)
    log = window.events
    qtbot.waitUntil(lambda: log.model.rowCount() >= 6, timeout=5000)
    qtbot.wait(50)
    assert log.view.viewport().height() // log.view.rowHeight(0) >= 6  # was 4 in the 170 px dock
    for r in range(log.model.rowCount()):
        cells = log.model.cells(r)
        assert TIME.match(cells[0]), cells[0]
        assert not any(ISO.search(c) for c in cells), cells
    _select(log.view, [0])
    assert not ISO.search(log.details.toPlainText())


def test_event_log_copies_selected_rows_and_exports_csv(qtbot, console, engine, tmp_path, monkeypatch):
    bridge, window = console
    _erp_synced(qtbot, window, engine)
    log = window.events
    qtbot.waitUntil(lambda: log.model.rowCount() >= 3, timeout=5000)
    _select(log.view, [0, 1])
    log.view.setFocus()
    log.copy_button.click()
    lines = QGuiApplication.clipboard().text().splitlines()
    assert len(lines) == 2
    assert lines[0].split("\t") == list(log.model.cells(log.proxy.mapToSource(log.proxy.index(0, 0)).row()))
    # Export what the filter shows, through the button and its file dialog, written off the UI thread.
    log.filter.setText("erp")
    shown = log.proxy.rowCount()
    assert 0 < shown < log.model.rowCount()
    target = tmp_path / "events.csv"
    monkeypatch.setattr("gui.event_log.QFileDialog.getSaveFileName", lambda *a, **k: (str(target), "CSV files"))
    with qtbot.waitSignal(log.sig_exported, timeout=5000) as done:
        log.export_button.click()
    assert done.args == [str(target), ""]
    with open(target, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Time", "Severity", "Array", "Object", "Code", "Message"]
    assert len(rows) == shown + 1 and all("erp" in ",".join(r) for r in rows[1:])
    assert log.status.text() == f"Events exported to {target}"
    # A place that cannot be written says so.
    with qtbot.waitSignal(log.sig_exported, timeout=5000) as failed:
        log.export_csv(str(tmp_path / "missing" / "events.csv"))
    assert failed.args[1] and "Could not write" in log.status.text()
