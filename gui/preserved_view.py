"""Preserved data: what the loser of a role conflict wrote while apart, kept before its resync.

A first-class object, not a path in the event log: one row per preserved set
(array, group, volume, time, size), with Export to a directory, Restore into a new
volume, and Delete. Everything goes through the engine (the bridge), never the files.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QFileDialog, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from core.units import format_size
from gui import formatting as fmt
from gui.bridge import EngineBridge
from gui.messages import confirm, error_handler

HEADERS = ["Array", "Group", "Volume", "Preserved", "Size", "Regions", "State"]


class PreservedDataView(QDialog):
    """A non-modal window listing every preserved set of the managed arrays."""

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Preserved data")
        self.setObjectName("preservedDataView")
        self.bridge = bridge
        self.entries: list[dict] = []
        self.intro = QLabel("When a role conflict is resolved, the writes the other side made while the arrays "
                            "were apart are kept here before its resynchronization. Nothing is deleted unless "
                            "you delete it.", wordWrap=True)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setObjectName("preservedTable")
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setSelectionMode(QTableWidget.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.empty = QLabel("No preserved data.", objectName="hint")
        self.status = QLabel("", objectName="hint", wordWrap=True)
        self.refresh_button = QPushButton("Refresh", clicked=self.refresh)
        self.export_button = QPushButton("Export…", clicked=self.export)
        self.restore_button = QPushButton("Restore into new volume…", clicked=self.restore)
        self.delete_button = QPushButton("Delete…", clicked=self.delete)
        buttons = QHBoxLayout()
        for b in (self.refresh_button, self.export_button, self.restore_button, self.delete_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        for w in (self.intro, self.table, self.empty):
            layout.addWidget(w)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.resize(760, 360)
        self._update_buttons()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    # -- the list -----------------------------------------------------------------------
    def refresh(self) -> None:
        self.bridge.call("preserved_data", on_done=self._show, on_error=error_handler(self, "Preserved data"))

    def _show(self, entries) -> None:
        self.entries = sorted(entries or [], key=lambda e: e["time"], reverse=True)
        self.table.setRowCount(len(self.entries))
        for r, e in enumerate(self.entries):
            cells = [e["array"], e["group"], e["volume"], fmt.when(e["time"]), format_size(e["bytes"]),
                     str(e["regions"]), f"damaged: {e['damaged']}" if e.get("damaged") else "kept"]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(e["dataFile"] if c < 3 else text)
                if c in (4, 5):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(r, c, item)
        self.empty.setVisible(not self.entries)
        self.table.setVisible(bool(self.entries))
        self._update_buttons()

    def selected(self) -> dict | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.entries[rows[0].row()] if rows else None

    def _update_buttons(self) -> None:
        e = self.selected()
        usable = e is not None and not e.get("damaged")
        for b in (self.export_button, self.restore_button):
            b.setEnabled(usable)
            b.setToolTip("" if usable else "Select a preserved set first" if e is None
                         else f"Damaged: {e['damaged']}")
        self.delete_button.setEnabled(e is not None)

    # -- actions --------------------------------------------------------------------------
    def export(self) -> None:
        e = self.selected()
        directory = QFileDialog.getExistingDirectory(self, "Export preserved data to")
        if e is None or not directory:
            return
        self.bridge.call("preserved_export", e["id"], directory,
                         on_done=lambda r: self.status.setText("Exported: " + ", ".join(r["files"])),
                         on_error=error_handler(self, "Export preserved data"))

    def restore(self) -> None:
        e = self.selected()
        if e is None:
            return
        name, ok = QInputDialog.getText(
            self, "Restore into a new volume",
            f"A new volume on {e['array']}: a copy of {e['volume']} as it is now, with the "
            f"{format_size(e['bytes'])} written while apart put back in place.\n\nName of the new volume:",
            text=f"{e['volume']}_preserved")
        if not ok or not name.strip():
            return
        self.bridge.call("preserved_restore", e["id"], name.strip(),
                         on_done=lambda r: (self.status.setText(f"Restored into {r['volume']}"), self.refresh()),
                         on_error=error_handler(self, "Restore preserved data"))

    def delete(self) -> None:
        e = self.selected()
        if e is None or not confirm(self, "Delete preserved data",
                                    f"Delete the {format_size(e['bytes'])} {e['array']}/{e['volume']} wrote while "
                                    f"apart ({fmt.when(e['time'])})? They cannot be recovered.", destructive=True):
            return
        self.bridge.call("preserved_delete", e["id"],
                         on_done=lambda _r: (self.status.setText("Deleted."), self.refresh()),
                         on_error=error_handler(self, "Delete preserved data"))
