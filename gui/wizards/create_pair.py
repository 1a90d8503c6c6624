"""Create mirrored pair (QWizard): group -> primary volume + reserved capacity -> secondary -> sync.

The secondary page lists *every* volume of the remote array from the engine's
``candidates`` (the rules are in ``core.eligibility``): ineligible ones stay in the
list, greyed out, with the reason in a column and a tooltip — an administrator
learns why, instead of wondering where a volume went. Warnings for rules the real
product does not enforce are shown under the list.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWizard, QWizardPage)

from core import forecast
from core.domain import DEFAULT_RESERVED_PERCENT
from core.units import format_size
from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.theme import icon
from gui.wizards.create_group import CreateGroupWizard, _error_label, _show_error

CANDIDATE_HEADERS = ["Volume", "Capacity", "Drive type", "Security", "Data Assurance", "Eligible", "Reason"]
GREY = QBrush(QColor("#8a96a3"))


def _brief(texts) -> str:
    """The first reason in the column (the tooltip holds them all)."""
    if not texts:
        return ""
    return texts[0] + (f"  (+{len(texts) - 1} more)" if len(texts) > 1 else "")


class GroupPage(QWizardPage):
    """An existing group (from its primary array), or a new one through the group wizard."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, group: str | None):
        super().__init__()
        self.bridge, self.state = bridge, state
        self.setTitle("Mirror consistency group")
        self.setSubTitle("The pair joins a group; all pairs of a group share its synchronization settings.")
        self.group = QComboBox()
        self.new_button = QPushButton("Create new group\u2026")
        self.new_button.clicked.connect(self._new_group)
        self.info = QLabel("", objectName="hint", wordWrap=True)
        self.error = _error_label()
        row = QHBoxLayout()
        row.addWidget(self.group, 1)
        row.addWidget(self.new_button)
        form = QFormLayout(self)
        form.addRow("Group:", row)
        form.addRow(self.info)
        form.addRow(self.error)
        self.group.currentIndexChanged.connect(self._on_group)
        self._want = group
        self._fill(group)
        state.sig_groups_changed.connect(self._on_groups_changed)

    def _fill(self, select: str | None = None) -> None:
        self.group.blockSignals(True)
        self.group.clear()
        for g in self.state.groups:
            if g.role == "primary":
                self.group.addItem(icon("group"), f"{g.name}  ({g.array} \u2192 {g.remote_array})", g.name)
        self.group.blockSignals(False)
        if select is not None and self.group.findData(select) >= 0:
            self.group.setCurrentIndex(self.group.findData(select))
        self._on_group()

    def snapshot(self):
        name = self.group.currentData()
        return self.state.group(name) if name else None

    def _on_group(self, *_):
        g = self.snapshot()
        if g is None:
            self.info.setText("No group yet: create one first.")
        else:
            mode = "manual" if g.sync_mode == "manual" else f"every {g.sync_interval_minutes} min"
            self.info.setText(f"Local array {g.array}, remote array {g.remote_array}, channel {g.channel.upper()}, "
                              f"synchronization {mode}, {len(g.pairs)} pair(s).")
        self.completeChanged.emit()

    def _new_group(self) -> None:
        wiz = CreateGroupWizard(self.bridge, self.state, parent=self)
        wiz.sig_group_created.connect(lambda g: self._after_new_group(g.name))
        wiz.open()
        self.group_wizard = wiz

    def _after_new_group(self, name: str) -> None:
        # The state learns about the new group from the engine's event; select it when it arrives.
        self._want = name
        self.state.refresh_all()

    def _on_groups_changed(self, groups) -> None:
        names = [g.name for g in groups if g.role == "primary"]
        shown = [self.group.itemData(i) for i in range(self.group.count())]
        if names != shown:
            self._fill(self._want if self._want in names else self.group.currentData())

    def isComplete(self) -> bool:
        return self.snapshot() is not None


SIZING = ("Reserved capacity holds the change log, the point-in-time copies of regions hosts rewrite while a sync "
          "runs and, on the secondary, the changes of one synchronization until they commit. Size it for the "
          "unique bytes one interval changes, with headroom: if the secondary's fills, the pair fails and its "
          "recovery point image is lost.")


class PrimaryPage(QWizardPage):
    """Primary volume (not yet mirrored) on the group's local array, and its reserved capacity.

    The page explains the sizing; when the group already has a sync history its measured
    change rate (``core.forecast``) gives a figure, offered with one click.
    """

    sig_sizing_known = Signal(object)
    """The group's measured ``core.forecast.ChangeRate`` (None: no history yet), once it is fetched."""

    def __init__(self, state: ConsoleState, group_page: GroupPage, volume: str | None):
        super().__init__()
        self.state, self.group_page, self.preselect = state, group_page, volume
        self.rate = None
        self.setTitle("Primary volume")
        self.setSubTitle("Each volume of a pair gets its own reserved capacity (change log, point-in-time data).")
        self.volume = QComboBox()
        self.reserved = QSpinBox(minimum=1, maximum=100, value=DEFAULT_RESERVED_PERCENT, suffix=" % of the volume")
        self.reserved_size = QLabel("", objectName="hint")
        self.sizing = QLabel(SIZING, objectName="hint", wordWrap=True)
        self.advice = QLabel("", wordWrap=True)
        self.use_advice = QPushButton("")
        self.use_advice.setVisible(False)
        self.use_advice.clicked.connect(lambda: self.reserved.setValue(self.suggested() or self.reserved.value()))
        form = QFormLayout(self)
        form.addRow("Primary volume:", self.volume)
        form.addRow("Reserved capacity:", self.reserved)
        form.addRow("", self.reserved_size)
        form.addRow(self.sizing)
        form.addRow(self.advice)
        form.addRow("", self.use_advice)
        self.volume.currentIndexChanged.connect(self._update_size)
        self.reserved.valueChanged.connect(self._update_size)
        self.volume.currentIndexChanged.connect(self.completeChanged)

    def initializePage(self) -> None:
        g = self.group_page.snapshot()
        self.volume.clear()
        for v in self.state.volumes:
            if g is not None and v.array == g.array and not v.mirror_group and not v.failed:
                self.volume.addItem(icon("volume"), f"{v.name}  ({format_size(v.capacity)}, {v.drive_type.upper()})",
                                    v)
        if self.preselect:
            for i in range(self.volume.count()):
                if self.volume.itemData(i).name == self.preselect:
                    self.volume.setCurrentIndex(i)
        self.rate = None
        if g is not None:
            interval = g.sync_interval_minutes * 60 if g.sync_mode == "scheduled" else None
            self.group_page.bridge.call("sync_history", g.name,
                                        on_done=lambda h, i=interval: self._set_history(h, i),
                                        on_error=lambda _e: self._set_history([], None))
        self._update_size()

    def _set_history(self, history, interval) -> None:
        self.rate = forecast.change_rate(history, interval)
        self._update_size()
        self.sig_sizing_known.emit(self.rate)

    def suggested(self) -> int | None:
        """The reserved capacity the group's change history calls for (None without a history)."""
        v = self.primary()
        return forecast.initial_percent(self.rate, v.capacity, DEFAULT_RESERVED_PERCENT) if v is not None else None

    def primary(self):
        return self.volume.currentData()

    def _update_size(self, *_):
        v = self.primary()
        self.reserved_size.setText(f"= {format_size(v.capacity * self.reserved.value() / 100)}" if v else "")
        g, pct, rate = self.group_page.snapshot(), self.suggested(), self.rate
        if v is None or rate is None or pct is None:
            self.advice.setText("No change history yet for this group: the default is a start; the Recovery Guru "
                                "warns when a sync is forecast not to fit." if v is not None else "")
            self.use_advice.setVisible(False)
            return
        every = (f"every {g.sync_interval_minutes} min" if g is not None and g.sync_mode == "scheduled"
                 else f"per manual sync (typically {rate.interval_seconds / 60:.1f} min apart)")
        self.advice.setText(f"Group {g.name if g else ''} changes about {format_size(rate.per_interval)} of unique "
                            f"data {every} (measured over {rate.samples} synchronization(s)). To hold that with "
                            f"headroom on {v.name} ({format_size(v.capacity)}), reserve {pct} %.")
        self.use_advice.setText(f"Use {pct} %")
        self.use_advice.setVisible(pct != self.reserved.value())

    def isComplete(self) -> bool:
        return self.primary() is not None


class SecondaryPage(QWizardPage):
    """Candidates from the remote array, eligible or not (with the reasons), and the secondary's reserve."""

    sig_candidates_loaded = Signal(int)
    """How many candidates the remote array returned (for tests and the status text)."""

    def __init__(self, bridge: EngineBridge, group_page: GroupPage, primary_page: PrimaryPage):
        super().__init__()
        self.bridge, self.group_page, self.primary_page = bridge, group_page, primary_page
        self.candidates: list = []
        self.setTitle("Secondary volume")
        self.setSubTitle("Volumes that cannot be the secondary are greyed out; hover one to see why.")
        self.table = QTableWidget(0, len(CANDIDATE_HEADERS))
        self.table.setHorizontalHeaderLabels(CANDIDATE_HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setSelectionMode(QTableWidget.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(len(CANDIDATE_HEADERS) - 1, QHeaderView.Stretch)
        self.table.setWordWrap(False)
        self.table.itemSelectionChanged.connect(self._on_pick)
        self.reserved = QSpinBox(minimum=1, maximum=100, value=DEFAULT_RESERVED_PERCENT, suffix=" % of the volume")
        self.reserved.valueChanged.connect(self._load)
        self.status = QLabel("", objectName="hint")
        self.warnings = QLabel("", objectName="warning", wordWrap=True)
        self.error = _error_label()
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addWidget(self.table, 1)
        form = QHBoxLayout()
        form.addWidget(QLabel("Secondary reserved capacity:"))
        form.addWidget(self.reserved)
        form.addStretch(1)
        lay.addLayout(form)
        lay.addWidget(self.warnings)
        lay.addWidget(self.error)

    def initializePage(self) -> None:
        self.reserved.setValue(self.primary_page.reserved.value())
        self._load()

    def _load(self, *_):
        g, v = self.group_page.snapshot(), self.primary_page.primary()
        if g is None or v is None:
            return
        self.status.setText(f"Asking {g.remote_array} for candidates\u2026")
        self.table.setRowCount(0)
        self.candidates = []
        self.completeChanged.emit()
        self.bridge.call("candidates", f"{v.array}/{v.name}", g.remote_array, channel=g.channel,
                         reserved_percent=self.reserved.value(), on_done=self._show,
                         on_error=lambda e: (self.status.setText(""), _show_error(self.error, e.message)))

    def _show(self, candidates) -> None:
        self.candidates = list(candidates)
        ok = sum(c.eligible for c in self.candidates)
        g = self.group_page.snapshot()
        self.status.setText(f"{len(self.candidates)} volume(s) on {g.remote_array if g else 'the remote array'}, "
                            f"{ok} eligible")
        self.table.setRowCount(len(self.candidates))
        for r, c in enumerate(self.candidates):
            v = c.volume
            reason = "; ".join(c.reasons)
            cells = [v.name, format_size(v.capacity), v.drive_type.upper(), v.security.upper() +
                     (" + Drive Security" if v.drive_security else ""), "on" if v.data_assurance else "off",
                     "Yes" if c.eligible else "No", _brief(c.reasons) or _brief(c.warnings)]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setIcon(icon("volume"))
                if not c.eligible:
                    item.setFlags(Qt.NoItemFlags)  # greyed out, not selectable
                    item.setForeground(GREY)
                    item.setToolTip("Not eligible: " + "\n".join(c.reasons))
                elif c.warnings:
                    item.setToolTip("Verify yourself: " + "; ".join(c.warnings))
                self.table.setItem(r, col, item)
        self.table.resizeRowsToContents()
        first = next((r for r, c in enumerate(self.candidates) if c.eligible), None)
        if first is not None:
            self.table.selectRow(first)
        self.sig_candidates_loaded.emit(len(self.candidates))
        self.completeChanged.emit()

    def chosen(self):
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.candidates):
            return None
        c = self.candidates[rows[0].row()]
        return c if c.eligible else None

    def choose(self, name: str) -> bool:
        for r, c in enumerate(self.candidates):
            if c.volume.name == name and c.eligible:
                self.table.selectRow(r)
                return True
        return False

    def _on_pick(self) -> None:
        c = self.chosen()
        self.warnings.setText("Verify yourself (not enforced by the arrays): " + "; ".join(c.warnings)
                              if c is not None and c.warnings else "")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.chosen() is not None


class SummaryPage(QWizardPage):
    """What will be created, and whether the initial synchronization starts now."""

    def __init__(self, wizard: "CreatePairWizard"):
        super().__init__()
        self.wiz = wizard
        self.setTitle("Summary")
        self.setSubTitle("Finishing creates the pair on both arrays.")
        self.text = QLabel("", wordWrap=True, textFormat=Qt.RichText)
        self.start_sync = QCheckBox("Start the initial synchronization now")
        self.start_sync.setChecked(True)
        self.start_sync.setToolTip("Unchecked: the group is suspended after the pair is added; resume it to "
                                   "start copying.")
        self.error = _error_label()
        lay = QVBoxLayout(self)
        lay.addWidget(self.text)
        lay.addWidget(self.start_sync)
        lay.addStretch(1)
        lay.addWidget(self.error)

    def initializePage(self) -> None:
        w = self.wiz
        g, p, c = w.group_page.snapshot(), w.primary_page.primary(), w.secondary_page.chosen()
        if g is None or p is None or c is None:
            return
        self.text.setText(
            f"<p>Group <b>{g.name}</b> ({g.array} \u2192 {g.remote_array})</p>"
            f"<p>Primary <b>{p.array}/{p.name}</b> ({format_size(p.capacity)}), reserved capacity "
            f"{w.primary_page.reserved.value()} %</p>"
            f"<p>Secondary <b>{c.volume.array}/{c.volume.name}</b> ({format_size(c.volume.capacity)}), reserved "
            f"capacity {w.secondary_page.reserved.value()} %</p>"
            "<p>The initial synchronization copies only the regions of the primary that were ever written.</p>")


class CreatePairWizard(QWizard):
    """Finish calls ``add_pair`` through the bridge; the real mirror exists on both arrays afterwards."""

    sig_pair_created = Signal(object)
    """The new pair's :class:`PairSnapshot` (primary side)."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, group: str | None = None,
                 volume: str | None = None, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.setWindowTitle("Create Mirrored Pair")
        self.setWindowIcon(icon("pair"))
        self.setWizardStyle(QWizard.ModernStyle)
        self.setMinimumSize(900, 540)
        self.group_page = GroupPage(bridge, state, group)
        self.primary_page = PrimaryPage(state, self.group_page, volume)
        self.secondary_page = SecondaryPage(bridge, self.group_page, self.primary_page)
        self.summary_page = SummaryPage(self)
        for p in (self.group_page, self.primary_page, self.secondary_page, self.summary_page):
            self.addPage(p)
        self.setButtonText(QWizard.FinishButton, "Create")
        self._busy = False

    def accept(self) -> None:
        if self._busy:
            return
        g, p, c = self.group_page.snapshot(), self.primary_page.primary(), self.secondary_page.chosen()
        if g is None or p is None or c is None:
            return
        self._busy = True
        self.button(QWizard.FinishButton).setEnabled(False)
        self.bridge.call("add_pair", g.name, f"{p.array}/{p.name}", f"{c.volume.array}/{c.volume.name}",
                         reserved_percent=self.primary_page.reserved.value(),
                         secondary_reserved_percent=self.secondary_page.reserved.value(),
                         on_done=self._created, on_error=self._refused)

    def _created(self, pair) -> None:
        self._busy = False
        if not self.summary_page.start_sync.isChecked():
            self.bridge.call("suspend", pair.group, on_error=lambda e: None)
        self.sig_pair_created.emit(pair)
        super().accept()

    def _refused(self, err) -> None:
        self._busy = False
        self.button(QWizard.FinishButton).setEnabled(True)
        _show_error(self.summary_page.error, f"The arrays refused: {err.message}")
