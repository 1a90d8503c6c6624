"""Event log view: time, severity, array, object, code, message — loaded once, then appended live.

A details pane shows the selected event whole; Copy (Ctrl+C) puts the selected rows on the
clipboard as tab-separated text and Export CSV writes the rows shown (filtered) to a
file, on a worker thread (the UI thread never does I/O).
"""
from __future__ import annotations

import csv
from html import escape

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QObject, QSortFilterProxyModel, Qt, QThreadPool, QTimer,
                            Signal)
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMenu,
                               QPushButton, QSplitter, QTableView, QTextBrowser, QVBoxLayout, QWidget)

from gui import formatting as fmt
from gui.bridge import EngineBridge
from gui.theme import status_icon

HEADERS = ("Time", "Severity", "Array", "Object", "Code", "Message")
DISPLAY, DECORATION, TOOLTIP = Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole
MAX_ROWS = 5000
LOAD_LIMIT = 2000  # events read per array when the console starts


class EventModel(QAbstractTableModel):
    """Rows of :class:`core.snapshots.EventRecord` (deduplicated by array and id), one record each."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.records: list = []  # one row each
        self._cells: list[tuple[str, ...]] = []  # their texts, spelled once: the view asks per cell and per role
        self._seen: set[tuple[str, int]] = set()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent=QModelIndex()):
        return len(HEADERS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return HEADERS[section]
        return None

    def cells(self, row: int) -> tuple[str, ...]:
        """What row ``row`` shows, as text (the copy and the CSV export write the same)."""
        return self._cells[row]

    def data(self, index, role=DISPLAY):
        row, col = index.row(), index.column()
        if role == DISPLAY:
            return self._cells[row][col]
        if role == DECORATION and col == 1:
            return status_icon(str(self.records[row].severity))
        if role == TOOLTIP and col in (3, 5):
            return self._cells[row][col]
        return None

    def add(self, records) -> None:
        new = [r for r in records if (r.array, r.id) not in self._seen]
        if not new:
            return
        self._seen.update((r.array, r.id) for r in new)
        self.beginInsertRows(QModelIndex(), len(self.records), len(self.records) + len(new) - 1)
        self.records.extend(new)
        self._cells.extend(_cells(e) for e in new)
        self.endInsertRows()
        if len(self.records) > MAX_ROWS:
            drop = len(self.records) - MAX_ROWS
            self.beginRemoveRows(QModelIndex(), 0, drop - 1)
            del self.records[:drop]
            del self._cells[:drop]
            self.endRemoveRows()


def _cells(e) -> tuple[str, ...]:
    return (fmt.timestamp(e.time), str(e.severity).capitalize(), e.array, e.object, e.code, e.message)


class _CsvWriter(QObject):
    """Writes rows to a CSV file on a pool thread; says how it went on the GUI thread."""

    sig_done = Signal(str, str)
    """(path, error message or "") once the file is written."""

    def write(self, path: str, rows: list[tuple[str, ...]]) -> None:
        def run():
            try:
                with open(path, "w", newline="", encoding="utf-8") as f:
                    out = csv.writer(f)
                    out.writerow(HEADERS)
                    out.writerows(rows)
            except OSError as e:
                self.sig_done.emit(path, e.strerror or str(e))
            else:
                self.sig_done.emit(path, "")
        QThreadPool.globalInstance().start(run)


class EventLogPanel(QWidget):
    """The persistent event log of every array, newest at the bottom, with a filter and a details pane."""

    sig_exported = Signal(str, str)
    """(path, error or "") after Export CSV."""

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.model = EventModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.view = QTableView(objectName="eventLogTable")  # named: its column widths are remembered
        self.view.setModel(self.proxy)
        self.view.verticalHeader().setVisible(False)
        # Compact rows: more events in the dock's height.
        self.view.verticalHeader().setDefaultSectionSize(self.view.fontMetrics().height() + 6)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QTableView.SelectRows)
        self.view.setWordWrap(False)
        self.view.horizontalHeader().setStretchLastSection(True)
        for col, width in enumerate((150, 90, 70, 140, 200)):
            self.view.horizontalHeader().resizeSection(col, width)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._show_details())
        self.details = QTextBrowser(objectName="eventDetails")
        self.details.setMinimumWidth(160)
        self.copy_action = QAction("Copy", self.view, shortcut=QKeySequence.Copy)
        self.copy_action.setShortcutContext(Qt.WidgetWithChildrenShortcut)
        self.copy_action.triggered.connect(self.copy_selected)
        self.view.addAction(self.copy_action)
        self.view.setContextMenuPolicy(Qt.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.filter = QLineEdit(placeholderText="Filter events\u2026", clearButtonEnabled=True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.severity = QComboBox()
        self.severity.addItems(["All severities", "Critical", "Warning", "Info"])
        self.severity.currentTextChanged.connect(self._on_severity)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the selected events (Ctrl+C), tab-separated")
        self.copy_button.clicked.connect(self.copy_selected)
        self.export_button = QPushButton("Export CSV\u2026")
        self.export_button.setToolTip("Write the events shown (as filtered) to a CSV file")
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.status = QLabel("", objectName="hint")
        top = QHBoxLayout()
        top.addWidget(QLabel("Events"))
        top.addWidget(self.filter, 1)
        top.addWidget(self.severity)
        top.addWidget(self.copy_button)
        top.addWidget(self.export_button)
        split = QSplitter(Qt.Horizontal, objectName="eventLogSplit")
        split.addWidget(self.view)
        split.addWidget(self.details)
        split.setStretchFactor(0, 1)
        split.setSizes([900, 300])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)
        self.status.setVisible(False)
        self._writer = _CsvWriter(self)
        self._writer.sig_done.connect(self._exported)
        self._show_details()
        bridge.sig_ready.connect(lambda: bridge.call("events", limit=LOAD_LIMIT, on_done=self._loaded))
        # The records of one flush of the bridge (a sync's start, progress and commit on both arrays) are
        # inserted together: one insertion, one scroll and one repaint instead of one each.
        self._arrived: list = []
        self._add_arrived = QTimer(self, singleShot=True, interval=0)
        self._add_arrived.timeout.connect(self._add_records)
        bridge.sig_engine_event.connect(self._on_event)

    def _loaded(self, records) -> None:
        self.model.add(records)
        self.view.scrollToBottom()

    def _on_event(self, ev) -> None:
        if ev.kind == "event" and ev.event is not None:
            self._arrived.append(ev.event)
            if not self._add_arrived.isActive():
                self._add_arrived.start()

    def _add_records(self) -> None:
        records, self._arrived = self._arrived, []
        at_bottom = self.view.verticalScrollBar().value() >= self.view.verticalScrollBar().maximum() - 2
        self.model.add(records)
        if at_bottom:
            self.view.scrollToBottom()

    def _on_severity(self, text: str) -> None:
        if text.startswith("All"):
            self.proxy.setFilterKeyColumn(-1)
            self.proxy.setFilterFixedString(self.filter.text())
        else:
            self.proxy.setFilterKeyColumn(1)
            self.proxy.setFilterFixedString(text)

    # -- details, copy, export -----------------------------------------------------------------
    def selected_rows(self) -> list[int]:
        """Model rows selected, in the order shown."""
        rows = {self.proxy.mapToSource(i).row() for i in self.view.selectionModel().selectedRows()}
        return sorted(rows, key=lambda r: self.proxy.mapFromSource(self.model.index(r, 0)).row())

    def _show_details(self) -> None:
        rows = self.selected_rows()
        if not rows:
            self.details.setHtml("<p style='color:#5a6b7d'>Select an event to read it whole.</p>")
            return
        record = self.model.records[rows[-1]]
        fields = (("Time", fmt.timestamp(record.time)), ("Severity", str(record.severity).capitalize()),
                  ("Array", record.array), ("Object", record.object), ("Code", record.code))
        self.details.setHtml("".join(f"<b>{k}:</b> {escape(str(v))}<br>" for k, v in fields)
                             + f"<p>{escape(record.message)}</p>")

    def copy_selected(self) -> str:
        """Put the selected rows on the clipboard, tab-separated (what a spreadsheet pastes as columns)."""
        text = "\n".join("\t".join(self.model.cells(r)) for r in self.selected_rows())
        if text:
            QGuiApplication.clipboard().setText(text)
        return text

    def shown_rows(self) -> list[tuple[str, ...]]:
        return [self.model.cells(self.proxy.mapToSource(self.proxy.index(r, 0)).row())
                for r in range(self.proxy.rowCount())]

    def export_csv(self, path: str | None = None) -> None:
        """Ask where (unless ``path``), then write the rows shown on a worker thread."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export events", "events.csv", "CSV files (*.csv)")
        if not path:
            return
        self.export_button.setEnabled(False)
        self._writer.write(path, self.shown_rows())

    def _exported(self, path: str, error: str) -> None:
        self.export_button.setEnabled(True)
        self.status.setVisible(True)
        self.status.setText(f"Could not write {path}: {error}" if error else f"Events exported to {path}")
        self.sig_exported.emit(path, error)

    def _context_menu(self, pos) -> None:
        menu = QMenu(self)
        menu.addAction(self.copy_action)
        menu.addAction("Export CSV\u2026", lambda: self.export_csv())
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def messages(self) -> list[str]:
        return [r.message for r in self.model.records]
