"""Lab menu (embedded lab): volumes, host workload, link, controllers, volume failures — for DR drills."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QInputDialog, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QMenu, QSpinBox, QWidget)
from PySide6.QtCore import Qt

from core.domain import DriveType, RAID_LEVELS, Security
from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.messages import error_handler


class CreateVolumeDialog(QDialog):
    """Create a volume on an array (``create_volume``)."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, array: str | None, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.setWindowTitle("Create volume")
        self.array = QComboBox()
        self.array.addItems(state.array_names())
        if array:
            self.array.setCurrentText(array)
        self.name = QLineEdit(placeholderText="e.g. erp")
        self.capacity = QLineEdit("4GiB")
        self.drive = QComboBox()
        for d in DriveType:
            self.drive.addItem(d.label, d.value)
        self.raid = QComboBox()
        self.raid.addItems(list(RAID_LEVELS))
        self.raid.setCurrentText("6")
        self.security = QComboBox()
        for s in Security:
            self.security.addItem(s.label, s.value)
        self.drive_security = QCheckBox("Drive Security on")
        self.data_assurance = QCheckBox("Data Assurance")
        self.partitioning = QCheckBox("Resource Partitioning")
        self.error = QLabel("", objectName="error", wordWrap=True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self._apply)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        for label, w in (("Array:", self.array), ("Name:", self.name), ("Capacity:", self.capacity),
                         ("Drive type:", self.drive), ("RAID level:", self.raid), ("Security:", self.security)):
            form.addRow(label, w)
        for w in (self.drive_security, self.data_assurance, self.partitioning, self.error, self.buttons):
            form.addRow(w)

    def _apply(self) -> None:
        self.buttons.setEnabled(False)
        self.bridge.call("create_volume", f"{self.array.currentText()}/{self.name.text().strip()}",
                         self.capacity.text().strip(), drive_type=self.drive.currentData(),
                         raid_level=self.raid.currentText(), security=self.security.currentData(),
                         drive_security=self.drive_security.isChecked(),
                         data_assurance=self.data_assurance.isChecked(),
                         resource_partitioning=self.partitioning.isChecked(),
                         on_done=lambda _v: self.accept(), on_error=self._refused)

    def _refused(self, err) -> None:
        self.buttons.setEnabled(True)
        self.error.setText(err.message)


class WorkloadDialog(QDialog):
    """Start a host workload on chosen (host-writable) volumes at a rate, random or sequential."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.setWindowTitle("Start host workload")
        self.volumes = QListWidget()
        for v in state.volumes:
            if v.role != "secondary" and not v.failed:
                item = QListWidgetItem(f"{v.array}/{v.name}" + (f"  (mirrored, {v.mirror_group})" if v.mirror_group
                                                                 else ""))
                item.setData(Qt.UserRole, f"{v.array}/{v.name}")
                item.setCheckState(Qt.Checked if v.role == "primary" else Qt.Unchecked)
                self.volumes.addItem(item)
        self.rate = QSpinBox(minimum=1, maximum=10000, value=20, suffix=" MiB/s")
        self.pattern = QComboBox()
        self.pattern.addItems(["random", "sequential"])
        self.error = QLabel("", objectName="error", wordWrap=True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Start")
        self.buttons.accepted.connect(self._apply)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Volumes:", self.volumes)
        form.addRow("Write rate:", self.rate)
        form.addRow("Pattern:", self.pattern)
        form.addRow(self.error)
        form.addRow(self.buttons)

    def refs(self) -> list[str]:
        return [self.volumes.item(i).data(Qt.UserRole) for i in range(self.volumes.count())
                if self.volumes.item(i).checkState() == Qt.Checked]

    def _apply(self) -> None:
        if not self.refs():
            self.error.setText("Choose at least one volume to write to.")
            return
        self.buttons.setEnabled(False)
        self.bridge.call("start_workload", self.refs(), self.rate.value(), pattern=self.pattern.currentText(),
                         on_done=lambda _r: self.accept(), on_error=self._refused)

    def _refused(self, err) -> None:
        self.buttons.setEnabled(True)
        self.error.setText(err.message)


class LabMenu(QMenu):
    """Fault injection and workload for the embedded lab; each item calls one engine operation."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, parent: QWidget):
        super().__init__("&Lab", parent)
        self.bridge, self.state, self.window = bridge, state, parent
        self.selected_array: str | None = None
        self.selected_volume: str | None = None  # ARRAY/VOLUME
        self.addAction("Create volume\u2026", self.create_volume)
        self.addSeparator()
        self.workload_start = self.addAction("Start host workload\u2026", self.start_workload)
        self.workload_stop = self.addAction("Stop host workload",
                                            lambda: self._call("stop_workload", "Stop host workload"))
        self.addSeparator()
        self.cut = self.addAction("Cut the link between the arrays", lambda: self._call("lab_link", "Cut link", True))
        self.restore = self.addAction("Restore the link", lambda: self._call("lab_link", "Restore link", False))
        self.addSeparator()
        self.addAction("Reset controller\u2026", lambda: self._controller("controller_reset", "Reset controller"))
        self.addAction("Restore controller\u2026", lambda: self._controller("controller_restore",
                                                                           "Restore controller"))
        self.addSeparator()
        self.addAction("Fail volume\u2026", lambda: self._volume("volume_fail", "Fail volume"))
        self.addAction("Repair volume\u2026", lambda: self._volume("volume_repair", "Repair volume"))
        self.aboutToShow.connect(self._refresh_faults)

    def _call(self, method: str, title: str, *args) -> None:
        self.bridge.call(method, *args, on_error=error_handler(self.window, title))

    def _refresh_faults(self) -> None:
        def show(faults: dict) -> None:
            cut = bool(faults.get("link_cut"))
            self.cut.setEnabled(not cut)
            self.restore.setEnabled(cut)
        self.bridge.call("lab_faults", on_done=show, on_error=lambda _e: None)

    def create_volume(self) -> CreateVolumeDialog:
        dialog = CreateVolumeDialog(self.bridge, self.state, self.selected_array, self.window)
        dialog.open()
        return dialog

    def start_workload(self) -> WorkloadDialog:
        dialog = WorkloadDialog(self.bridge, self.state, self.window)
        dialog.open()
        return dialog

    def _controller(self, method: str, title: str) -> None:
        choices = [f"{a.name}/{c.label}" for a in self.state.arrays for c in a.controllers]
        choice, ok = QInputDialog.getItem(self.window, title, "Controller:", choices, 0, False)
        if ok and choice:
            array, ctrl = choice.split("/")
            self._call(method, title, array, ctrl)

    def _volume(self, method: str, title: str) -> None:
        choices = [f"{v.array}/{v.name}" for v in self.state.volumes]
        current = choices.index(self.selected_volume) if self.selected_volume in choices else 0
        choice, ok = QInputDialog.getItem(self.window, title, "Volume:", choices, current, False)
        if ok and choice:
            self._call(method, title, choice)
