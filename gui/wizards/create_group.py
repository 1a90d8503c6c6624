"""Create mirror consistency group (QWizard).

The rules live in core (``check_group_name``, ``GroupSettings.updated``,
``array_refusals``): each page asks them as the administrator types and shows the
core's own message under the fields, so an invalid interval is caught on its page,
not after Finish. Finishing creates the group on both arrays through the bridge.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QFormLayout, QLabel, QLineEdit, QRadioButton,
                               QSpinBox, QVBoxLayout, QWizard, QWizardPage)

from core.domain import (DEFAULT_INTERVAL_MIN, DEFAULT_RECOVERY_POINT_ALERT_MIN, DEFAULT_RESERVED_ALERT_PCT,
                         DEFAULT_SYNC_ALERT_MIN, Channel, Priority, ResyncPolicy)
from core.eligibility import array_refusals
from core.errors import MirrorError
from core.groups import GroupSettings, check_group_name
from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.theme import icon


def _error_label() -> QLabel:
    label = QLabel("", objectName="error", wordWrap=True)
    label.setVisible(False)
    return label


def _show_error(label: QLabel, text: str) -> None:
    label.setText(text)
    label.setVisible(bool(text))


class ArraysPage(QWizardPage):
    """Local and remote array, group name, channel type."""

    def __init__(self, state: ConsoleState, local: str | None = None):
        super().__init__()
        self.state = state
        self.setTitle("Arrays and name")
        self.setSubTitle("The local array holds the primary volumes; the remote array receives their copies.")
        self.local = QComboBox()
        self.remote = QComboBox()
        self.name = QLineEdit(placeholderText="e.g. payroll_dr (up to 30 characters)")
        self.channel = QComboBox()
        for ch in Channel:
            self.channel.addItem(ch.label, ch.value)
        names = state.array_names()
        self.local.addItems(names)
        if local in names:
            self.local.setCurrentText(local)
        self.local.currentTextChanged.connect(self._fill_remote)
        self._fill_remote()
        self.error = _error_label()
        form = QFormLayout(self)
        form.addRow("Local array (primary):", self.local)
        form.addRow("Remote array (secondary):", self.remote)
        form.addRow("Group name:", self.name)
        form.addRow("Mirroring channel:", self.channel)
        form.addRow(self.error)
        for sig in (self.remote.currentTextChanged, self.name.textChanged, self.channel.currentIndexChanged):
            sig.connect(self.completeChanged)

    def _fill_remote(self, *_):
        self.remote.clear()
        self.remote.addItems([n for n in self.state.array_names() if n != self.local.currentText()])

    def problem(self) -> str:
        if not self.local.currentText() or not self.remote.currentText():
            return "Mirroring needs two arrays: add or start the remote array first."
        if not self.name.text().strip():
            return ""  # nothing typed yet: no error, just not complete
        try:
            check_group_name(self.name.text().strip())
        except MirrorError as e:
            return e.message
        if self.state.group(self.name.text().strip()) is not None:
            return f"A mirror consistency group named '{self.name.text().strip()}' already exists; pick another name."
        local = next((a for a in self.state.arrays if a.name == self.local.currentText()), None)
        remote = next((a for a in self.state.arrays if a.name == self.remote.currentText()), None)
        if local is not None and remote is not None:
            refusals = array_refusals(local, remote, self.channel.currentData())
            if refusals:
                return "; ".join(r.message for r in refusals)
        return ""

    def isComplete(self) -> bool:
        problem = self.problem()
        _show_error(self.error, problem)
        return not problem and bool(self.name.text().strip())


class SyncPage(QWizardPage):
    """Manual or scheduled synchronization, interval, priority, resync policy."""

    def __init__(self):
        super().__init__()
        self.setTitle("Synchronization")
        self.setSubTitle("All pairs of the group are synchronized together to one consistent recovery point.")
        self.scheduled = QRadioButton("Scheduled, every")
        self.manual = QRadioButton("Manual (synchronize on demand)")
        self.scheduled.setChecked(True)
        self._modes = QButtonGroup(self)
        self._modes.addButton(self.scheduled)
        self._modes.addButton(self.manual)
        # The spin box deliberately accepts out-of-range numbers: core says why they are wrong.
        self.interval = QSpinBox(minimum=0, maximum=99999, value=DEFAULT_INTERVAL_MIN, suffix=" min")
        self.priority = QComboBox()
        for p in Priority:
            self.priority.addItem(p.label, p.value)
        self.priority.setCurrentIndex(list(Priority).index(Priority.MEDIUM))
        self.resync = QComboBox()
        for r in ResyncPolicy:
            self.resync.addItem(r.label, r.value)
        self.error = _error_label()
        form = QFormLayout(self)
        form.addRow("Synchronization:", self.scheduled)
        form.addRow("Interval:", self.interval)
        form.addRow("", self.manual)
        form.addRow("Sync priority:", self.priority)
        form.addRow("Resync after a link interruption:", self.resync)
        form.addRow(self.error)
        for sig in (self.interval.valueChanged, self.scheduled.toggled, self.priority.currentIndexChanged,
                    self.resync.currentIndexChanged):
            sig.connect(self.completeChanged)
        self.scheduled.toggled.connect(self.interval.setEnabled)

    def words(self) -> dict:
        return dict(sync_mode="scheduled" if self.scheduled.isChecked() else "manual",
                    sync_interval_minutes=self.interval.value(), priority=self.priority.currentData(),
                    resync_policy=self.resync.currentData())

    def isComplete(self) -> bool:
        try:
            GroupSettings().updated(**self.words())
        except MirrorError as e:
            _show_error(self.error, e.message)
            self.interval.setProperty("invalid", True)
            self.interval.style().polish(self.interval)
            return False
        _show_error(self.error, "")
        self.interval.setProperty("invalid", False)
        self.interval.style().polish(self.interval)
        return True


class ThresholdsPage(QWizardPage):
    """The three alert thresholds; recovery point age must be >= 2x the sync completion time."""

    def __init__(self, sync_page: SyncPage):
        super().__init__()
        self.sync_page = sync_page
        self.setTitle("Alert thresholds")
        self.setSubTitle("Alerts are raised in the event log and the Recovery Guru when a threshold is crossed.")
        self.sync_alert = QSpinBox(minimum=0, maximum=99999, value=DEFAULT_SYNC_ALERT_MIN, suffix=" min")
        self.rp_alert = QSpinBox(minimum=0, maximum=99999, value=DEFAULT_RECOVERY_POINT_ALERT_MIN, suffix=" min")
        self.reserved_alert = QSpinBox(minimum=0, maximum=1000, value=DEFAULT_RESERVED_ALERT_PCT, suffix=" %")
        self.error = _error_label()
        form = QFormLayout(self)
        form.addRow("Sync completion time alert:", self.sync_alert)
        form.addRow("Recovery point age alert:", self.rp_alert)
        form.addRow("Reserved capacity utilisation alert:", self.reserved_alert)
        form.addRow(QLabel("The recovery point age threshold must be at least twice the sync completion "
                           "threshold.", objectName="hint", wordWrap=True))
        form.addRow(self.error)
        for w in (self.sync_alert, self.rp_alert, self.reserved_alert):
            w.valueChanged.connect(self.completeChanged)

    def words(self) -> dict:
        return dict(sync_alert_minutes=self.sync_alert.value(), recovery_point_alert_minutes=self.rp_alert.value(),
                    reserved_alert_percent=self.reserved_alert.value())

    def isComplete(self) -> bool:
        try:
            GroupSettings().updated(**self.sync_page.words(), **self.words())
        except MirrorError as e:
            _show_error(self.error, e.message)
            return False
        _show_error(self.error, "")
        return True


class CreateGroupWizard(QWizard):
    """Finish calls ``create_group`` through the bridge; the wizard stays open on an engine refusal."""

    sig_group_created = Signal(object)
    """The new group's :class:`GroupSnapshot` (primary side), once it exists on both arrays."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, local: str | None = None, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.setWindowTitle("Create Mirror Consistency Group")
        self.setWindowIcon(icon("group"))
        self.setWizardStyle(QWizard.ModernStyle)
        self.setOption(QWizard.NoBackButtonOnStartPage)
        self.setMinimumSize(640, 460)
        self.arrays_page = ArraysPage(state, local)
        self.sync_page = SyncPage()
        self.thresholds_page = ThresholdsPage(self.sync_page)
        for p in (self.arrays_page, self.sync_page, self.thresholds_page):
            self.addPage(p)
        self.setButtonText(QWizard.FinishButton, "Create")
        self._busy = False

    def settings_words(self) -> dict:
        return dict(channel=self.arrays_page.channel.currentData(), **self.sync_page.words(),
                    **self.thresholds_page.words())

    def accept(self) -> None:
        if self._busy:
            return
        self._busy = True
        self.button(QWizard.FinishButton).setEnabled(False)
        page = self.arrays_page
        self.bridge.call("create_group", page.name.text().strip(), page.local.currentText(),
                         page.remote.currentText(), **self.settings_words(),
                         on_done=self._created, on_error=self._refused)

    def _created(self, group) -> None:
        self._busy = False
        self.sig_group_created.emit(group)
        super().accept()

    def _refused(self, err) -> None:
        self._busy = False
        self.button(QWizard.FinishButton).setEnabled(True)
        _show_error(self.currentPage().error, f"The arrays refused: {err.message}")
