"""Event log view: time, severity, array, object, message — loaded once, then appended live."""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QTableView, QVBoxLayout, QWidget

from gui import formatting as fmt
from gui.bridge import EngineBridge
from gui.theme import status_icon

HEADERS = ("Time", "Severity", "Array", "Object", "Code", "Message")
MAX_ROWS = 5000


class EventModel(QAbstractTableModel):
    """Append-only list of :class:`core.snapshots.EventRecord` (deduplicated by array and id)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.records: list = []
        self._seen: set[tuple[str, int]] = set()

    def rowCount(self, parent=QModelIndex()):
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent=QModelIndex()):
        return len(HEADERS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation == Qt.Horizontal and role == Qt.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index, role=Qt.DisplayRole):
        e = self.records[index.row()]
        col = index.column()
        if role == Qt.DisplayRole:
            return (fmt.timestamp(e.time), str(e.severity).capitalize(), e.array, e.object, e.code, e.message)[col]
        if role == Qt.DecorationRole and col == 1:
            return status_icon(str(e.severity))
        if role == Qt.ToolTipRole and col == 5:
            return e.message
        return None

    def add(self, records) -> None:
        new = [r for r in records if (r.array, r.id) not in self._seen]
        if not new:
            return
        self.beginInsertRows(QModelIndex(), len(self.records), len(self.records) + len(new) - 1)
        self.records.extend(new)
        self._seen.update((r.array, r.id) for r in new)
        self.endInsertRows()
        if len(self.records) > MAX_ROWS:
            drop = len(self.records) - MAX_ROWS
            self.beginRemoveRows(QModelIndex(), 0, drop - 1)
            del self.records[:drop]
            self.endRemoveRows()


class EventLogPanel(QWidget):
    """The persistent event log of every array, newest at the bottom, with a filter."""

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.model = EventModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.verticalHeader().setVisible(False)
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QTableView.SelectRows)
        self.view.horizontalHeader().setStretchLastSection(True)
        for col, width in enumerate((150, 90, 70, 140, 200)):
            self.view.horizontalHeader().resizeSection(col, width)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.Interactive)
        self.filter = QLineEdit(placeholderText="Filter events\u2026", clearButtonEnabled=True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.severity = QComboBox()
        self.severity.addItems(["All severities", "Critical", "Warning", "Info"])
        self.severity.currentTextChanged.connect(self._on_severity)
        top = QHBoxLayout()
        top.addWidget(QLabel("Events"))
        top.addWidget(self.filter, 1)
        top.addWidget(self.severity)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.view)
        bridge.sig_ready.connect(lambda: bridge.call("events", limit=500, on_done=self._loaded))
        bridge.sig_engine_event.connect(self._on_event)

    def _loaded(self, records) -> None:
        self.model.add(records)
        self.view.scrollToBottom()

    def _on_event(self, ev) -> None:
        if ev.kind == "event" and ev.event is not None:
            at_bottom = self.view.verticalScrollBar().value() >= self.view.verticalScrollBar().maximum() - 2
            self.model.add([ev.event])
            if at_bottom:
                self.view.scrollToBottom()

    def _on_severity(self, text: str) -> None:
        if text.startswith("All"):
            self.proxy.setFilterKeyColumn(-1)
            self.proxy.setFilterFixedString(self.filter.text())
        else:
            self.proxy.setFilterKeyColumn(1)
            self.proxy.setFilterFixedString(text)

    def messages(self) -> list[str]:
        return [r.message for r in self.model.records]
