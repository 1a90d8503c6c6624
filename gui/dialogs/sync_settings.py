"""Change a group's synchronization settings and alert thresholds (validated by core as typed)."""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox

from core.domain import Priority, ResyncPolicy, SyncMode
from core.errors import MirrorError
from core.groups import GroupSettings
from gui.bridge import EngineBridge


class SyncSettingsDialog(QDialog):
    """OK sends ``update_group`` (both arrays); engine refusals are shown in the dialog."""

    def __init__(self, bridge: EngineBridge, group, parent=None):
        super().__init__(parent)
        self.bridge, self.group = bridge, group
        self.setWindowTitle(f"Synchronization settings \u2014 {group.name}")
        self.mode = QComboBox()
        for m in SyncMode:
            self.mode.addItem(m.label, m.value)
        self.mode.setCurrentIndex(self.mode.findData(group.sync_mode))
        self.interval = QSpinBox(minimum=0, maximum=99999, value=group.sync_interval_minutes, suffix=" min")
        self.priority = QComboBox()
        for p in Priority:
            self.priority.addItem(p.label, p.value)
        self.priority.setCurrentIndex(self.priority.findData(group.priority))
        self.resync = QComboBox()
        for r in ResyncPolicy:
            self.resync.addItem(r.label, r.value)
        self.resync.setCurrentIndex(self.resync.findData(group.resync_policy))
        self.sync_alert = QSpinBox(minimum=0, maximum=99999, value=group.sync_alert_minutes, suffix=" min")
        self.rp_alert = QSpinBox(minimum=0, maximum=99999, value=group.recovery_point_alert_minutes, suffix=" min")
        self.reserved_alert = QSpinBox(minimum=0, maximum=1000, value=group.reserved_alert_percent, suffix=" %")
        self.error = QLabel("", objectName="error", wordWrap=True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self._apply)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Synchronization:", self.mode)
        form.addRow("Interval:", self.interval)
        form.addRow("Sync priority:", self.priority)
        form.addRow("Resync policy:", self.resync)
        form.addRow("Sync completion alert:", self.sync_alert)
        form.addRow("Recovery point age alert:", self.rp_alert)
        form.addRow("Reserved capacity alert:", self.reserved_alert)
        form.addRow(self.error)
        form.addRow(self.buttons)
        for w in (self.interval, self.sync_alert, self.rp_alert, self.reserved_alert):
            w.valueChanged.connect(self._validate)
        self.mode.currentIndexChanged.connect(self._validate)
        self._validate()

    def words(self) -> dict:
        return dict(sync_mode=self.mode.currentData(), sync_interval_minutes=self.interval.value(),
                    priority=self.priority.currentData(), resync_policy=self.resync.currentData(),
                    sync_alert_minutes=self.sync_alert.value(), recovery_point_alert_minutes=self.rp_alert.value(),
                    reserved_alert_percent=self.reserved_alert.value())

    def _validate(self, *_) -> bool:
        self.interval.setEnabled(self.mode.currentData() == "scheduled")
        try:
            GroupSettings().updated(**self.words())
            self.error.setText("")
            ok = True
        except MirrorError as e:
            self.error.setText(e.message)
            ok = False
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(ok)
        return ok

    def _apply(self) -> None:
        if not self._validate():
            return
        self.buttons.setEnabled(False)
        self.bridge.call("update_group", self.group.name, **self.words(), on_done=lambda _g: self.accept(),
                         on_error=self._refused)

    def _refused(self, err) -> None:
        self.buttons.setEnabled(True)
        self.error.setText(err.message)
