"""Left panel: arrays -> mirror consistency groups -> mirrored pairs, plus each array's volumes.

The model is updated incrementally: every row has a stable key, and an update only
touches the cells whose text or icon changed, adds new rows and removes vanished
ones — never a reset (a reset loses selection and expansion, and costs seconds at
1,000 pairs; SPEC §5 asks <= 100 ms). What each row shows is remembered, so a row
that did not change costs a tuple comparison, and the rows that did are written with
the model's signals held and announced with one ``dataChanged`` per parent: a signal
per cell made the filter proxy and the view work once per cell (3,000 times when
1,000 pairs change status).
"""
from __future__ import annotations

import functools

from PySide6.QtCore import QModelIndex, QPoint, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLineEdit, QTreeView, QVBoxLayout, QWidget

from core.units import format_size
from gui.console_state import ConsoleState
from gui.elided import KeepTailDelegate
from gui.selection import Selection
from gui.theme import (LAST_KNOWN, STALE_BRUSH, icon, last_known, role_icon, stale_tip, status_icon_of, status_key,
                       status_label)

KEY_ROLE = Qt.UserRole + 1
SELECTION_ROLE = Qt.UserRole + 2
COLUMNS = ("Name", "Status", "Role")
DRILL_MARK = "[DR drill]"
NAME_MIN_WIDTH = 150  # what "payroll \u2192 SiteB/payroll_dr" needs three levels deep, elided in the middle


# Looked up once: an enum member lookup costs about a microsecond, and an update does several per row.
DISPLAY, TOOLTIP, FOREGROUND = Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.ForegroundRole
_NOTHING = (None, None, None, None, False, None, None)  # what a new row shows before its first write


def _row_values(state: ConsoleState):
    """(key, parent key, name, icon name or None, status value, status text, role, tooltip)."""
    rows = []
    for a in state.arrays:
        rows.append((("array", a.name), None, a.name, "array", None, "Online" if a.online else "Offline", None,
                     f"{a.model}, firmware {a.firmware}, WWN {a.wwn}"))
        rows.append((("groups", a.name), ("array", a.name), "Mirror consistency groups", "folder", None, "", None,
                     ""))
        rows.append((("volumes", a.name), ("array", a.name), "Volumes", "folder", None, "", None, ""))
    known = {a.name for a in state.arrays}
    offline = state.offline_arrays()
    drills = {name: state.drill(name) or {} for name in state.drills}
    for g in state.groups:
        if g.array not in known:
            continue
        tip = _stale_first(f"{g.name}: {g.role} on {g.array}, mirrors to {g.remote_array}; {status_label(g.status)}",
                           g.array, offline)
        name = g.name
        drill = drills.get(g.name)
        # The drill runs where its exports are (the secondary side): mark that side's row only.
        if drill is not None and drill.get("array", g.array if g.role == "secondary" else None) == g.array:
            name = f"{g.name} {DRILL_MARK}"
            tip += "\nDR drill running: " + (", ".join(sorted(drill.get("exports") or {})) or "exports on this array")
        status_text = _short(status_label(g.status)) + (f" {g.progress.percent:.0f}%" if g.progress else "")
        rows.append((("group", g.array, g.name), ("groups", g.array), name, None, g.status,
                     last_known(status_text, g.array in offline),
                     g.role, tip))
        for p in g.pairs:
            text = f"{p.local_volume} \u2192 {p.remote_array}/{p.remote_volume}"
            tip = _stale_first(f"{p.primary_ref} \u2192 {p.secondary_ref}" + (f"\n{p.reason}" if p.reason else ""),
                               g.array, offline)
            # The kind of sync is in the details; the tree keeps it short. A transfer held while the
            # pair failed or stopped is not "Synchronizing": the status says what the pair is.
            if p.progress is not None and p.status == "synchronizing":
                status_text = f"Synchronizing {p.progress.percent:.0f}%"
            else:
                status_text = _short(status_label(p.status))
            rows.append((("pair", g.array, p.local_volume), ("group", g.array, g.name), text, None, p.status,
                         last_known(status_text, g.array in offline), p.role, tip))
    for v in state.volumes:
        if v.array not in known:
            continue
        status = "failed" if v.failed else "optimal"
        rows.append((("volume", v.array, v.name), ("volumes", v.array), v.name, "volume", status,
                     last_known("Failed" if v.failed else "Optimal", v.array in offline), v.role,
                     _stale_first(_volume_tip(v.capacity, v.drive_type, v.raid_level, v.pool, v.mirror_group),
                                  v.array, offline)))
    return rows


def _stale_first(tip: str, array: str, offline: set[str]) -> str:
    """A row of an array that does not answer says so first in its tooltip."""
    return f"{stale_tip(array)}\n{tip}" if array in offline else tip


@functools.lru_cache(maxsize=4096)  # a volume's tooltip changes only with its settings: spelled once
def _volume_tip(capacity: int, drive_type: str, raid_level: str, pool: str, mirror_group: str | None) -> str:
    return (f"{format_size(capacity)} {drive_type.upper()}, RAID {raid_level}, pool {pool}"
            + (f", mirrored in {mirror_group}" if mirror_group else ""))


class TreePanel(QWidget):
    """Filterable tree of the lab; emits what is selected."""

    sig_selection_changed = Signal(object)
    """The new :class:`gui.selection.Selection`, or None when nothing is selected."""
    sig_context_menu = Signal(QPoint)
    """Right-click at this global position (the main window shows its Mirror menu there)."""

    def __init__(self, state: ConsoleState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(COLUMNS)
        self._items: dict[tuple, list[QStandardItem]] = {}
        self._shown: dict[tuple, tuple] = {}  # key -> the cells its row shows (see refresh)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setFilterCaseSensitivity(Qt.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.filter = QLineEdit(placeholderText="Filter arrays, groups, pairs, volumes\u2026", clearButtonEnabled=True)
        self.filter.textChanged.connect(self._on_filter)
        self.view = QTreeView(objectName="arrayTree")  # named: its column widths are remembered
        self.view.setModel(self.proxy)
        self.view.setUniformRowHeights(True)  # keeps layout O(visible rows) at 1,000 pairs
        self.view.setSelectionMode(QAbstractItemView.SingleSelection)
        self.view.setAlternatingRowColors(True)
        self.view.setContextMenuPolicy(Qt.CustomContextMenu)
        self.view.customContextMenuRequested.connect(
            lambda pos: self.sig_context_menu.emit(self.view.viewport().mapToGlobal(pos)))
        # The name takes what the status and role leave: "db \u2192 SiteB/db_dr" three levels deep must
        # not be cut to "db \u2192 Sit\u2026" (seen under Xvfb at the default width).
        header = self.view.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(40)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setSectionResizeMode(1, QHeaderView.Interactive)
        header.setSectionResizeMode(2, QHeaderView.Interactive)
        metrics = self.view.fontMetrics()
        status_w = metrics.horizontalAdvance("Synchronizing 40%") + 22  # text + padding
        role_w = metrics.horizontalAdvance("Secondary") + 16 + 24  # badge + text + padding
        header.resizeSection(1, status_w)
        header.resizeSection(2, role_w)
        # A long name keeps its head and its tail ("payroll_2\u2026_dr"), the tooltip has it whole.
        self.view.setTextElideMode(Qt.ElideMiddle)
        self.view.setItemDelegateForColumn(1, KeepTailDelegate(LAST_KNOWN, self.view))  # "Opt\u2026 (last known)"
        self.view.setIndentation(14)
        # The folder rows' "Mirror consistency groups", two levels deep, is read whole (it was "Mirror co…cy groups").
        name_w = max(NAME_MIN_WIDTH, metrics.horizontalAdvance("Mirror consistency groups") + 2 * 14 + 16 + 24)
        self.setMinimumWidth(name_w + status_w + role_w + 30)
        self.view.selectionModel().currentChanged.connect(self._on_current)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.filter)
        lay.addWidget(self.view)
        self._expanded_once = False
        state.sig_arrays_changed.connect(self.refresh)
        state.sig_groups_changed.connect(self.refresh)
        state.sig_volumes_changed.connect(self.refresh)
        state.sig_drills_changed.connect(self.refresh)

    def sizeHint(self):  # the splitter's first layout gives the tree room for names, status and role
        hint = super().sizeHint()
        hint.setWidth(max(hint.width(), 450))
        return hint

    # -- model updates ----------------------------------------------------------
    def refresh(self, *_):
        """Bring the tree in line with the state; touches only the rows whose cells changed."""
        rows = _row_values(self.state)
        offline = self.state.offline_arrays()
        wanted = {r[0] for r in rows}
        for key in [k for k in self._items if k not in wanted]:
            self._remove(key)
        changed = []
        for key, parent, name, icon_name, status, status_text, role, tip in rows:
            # (name, its tooltip, its icon, status text, greyed, status icon, role). A name elided in the
            # middle is read whole in its tooltip (first line: the full name).
            stale = key[0] in ("group", "pair", "volume") and key[1] in offline
            cells = (name, name if not tip or tip.startswith(name) else f"{name}\n{tip}",
                     icon_name or f"status:{status_key(status, stale)}", status_text, stale,
                     status_key(status, stale) if (icon_name and status) else None, role)
            if key not in self._items:
                self._add(key, parent, cells)
            elif self._shown[key] != cells:
                changed.append((key, parent, cells))
        if changed:
            spans: dict = {}  # parent key -> [first, last] row written
            self.model.blockSignals(True)
            try:
                for key, parent, cells in changed:
                    items = self._items[key]
                    _write(items, self._shown[key], cells)
                    self._shown[key] = cells
                    row = items[0].row()
                    span = spans.setdefault(parent, [row, row])
                    span[0], span[1] = min(span[0], row), max(span[1], row)
            finally:
                self.model.blockSignals(False)
            last = len(COLUMNS) - 1
            for parent, (first, end) in spans.items():
                index = self._items[parent][0].index() if parent is not None else QModelIndex()
                self.model.dataChanged.emit(self.model.index(first, 0, index), self.model.index(end, last, index))
        if not self._expanded_once and self.state.arrays:
            self._expanded_once = True
            self.view.expandAll()

    def _add(self, key, parent_key, cells) -> list[QStandardItem]:
        sel = Selection(*key) if key[0] in ("array", "group", "pair", "volume") else None  # folders: nothing
        items = [QStandardItem() for _ in COLUMNS]
        for it in items:
            it.setEditable(False)
            it.setData(key, KEY_ROLE)
            it.setData(sel, SELECTION_ROLE)
        _write(items, _NOTHING, cells)  # before it is in the model: no signals
        self._shown[key] = cells
        parent = self.model.invisibleRootItem() if parent_key is None else self._items[parent_key][0]
        parent.appendRow(items)
        self._items[key] = items
        if parent_key is not None and key[0] in ("group", "pair"):
            self.view.expand(self.proxy.mapFromSource(parent.index()))
        return items

    def _remove(self, key) -> None:
        items = self._items.pop(key, None)
        if items is None:
            return
        self._shown.pop(key, None)
        # children first, so their keys do not dangle
        for child in [k for k, v in self._items.items() if v[0].parent() is items[0]]:
            self._remove(child)
        parent = items[0].parent() or self.model.invisibleRootItem()
        parent.removeRow(items[0].row())

    # -- selection and filter ------------------------------------------------------
    def _on_filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text)
        if text:
            self.view.expandAll()

    def _on_current(self, current: QModelIndex, _prev=None) -> None:
        self.sig_selection_changed.emit(current.data(SELECTION_ROLE) if current.isValid() else None)

    def selected(self) -> Selection | None:
        idx = self.view.currentIndex()
        return idx.data(SELECTION_ROLE) if idx.isValid() else None

    def select(self, key: tuple) -> bool:
        """Select the row with this key (e.g. ("group", "SiteA", "g1")); False when it is not shown."""
        items = self._items.get(key)
        if items is None:
            return False
        idx = self.proxy.mapFromSource(items[0].index())
        if not idx.isValid():
            return False
        self.view.setCurrentIndex(idx)
        self.view.scrollTo(idx)
        return True

    def has(self, key: tuple) -> bool:
        return key in self._items

    def text_of(self, key: tuple, column: int = 0) -> str | None:
        items = self._items.get(key)
        return items[column].text() if items else None


def _short(label: str) -> str:
    """"Synchronizing (initial sync)" -> "Synchronizing": the tree's column is narrow, the tooltip says it all."""
    return label.split(" (", 1)[0]


def _write(items: list[QStandardItem], old: tuple, new: tuple) -> None:
    """Write the cells of ``new`` that differ from ``old`` (see TreePanel.refresh for their order)."""
    name_item, status_item, role_item = items
    name, tooltip, icon_key, status_text, stale, status_icon_key, role = new
    if name != old[0]:
        name_item.setData(name, DISPLAY)
    if tooltip != old[1]:
        name_item.setData(tooltip, TOOLTIP)
    if icon_key != old[2]:
        name_item.setIcon(status_icon_of(icon_key[7:]) if icon_key.startswith("status:") else icon(icon_key))
    if status_text != old[3]:
        status_item.setData(status_text, DISPLAY)
    if stale != old[4]:
        for it in items:
            it.setData(STALE_BRUSH if stale else None, FOREGROUND)
    if status_icon_key != old[5]:
        status_item.setIcon(status_icon_of(status_icon_key) if status_icon_key else _no_icon())
    if role != old[6]:
        role_item.setText(role.capitalize() if role else "")
        role_item.setIcon(role_icon(role) if role else _no_icon())


def _no_icon():
    from PySide6.QtGui import QIcon
    return QIcon()
