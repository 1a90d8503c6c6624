"""Increase the reserved capacity of one side of a mirrored pair."""
from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox

from core.units import format_size
from gui.bridge import EngineBridge


class IncreaseReservedCapacityDialog(QDialog):
    """Calls ``increase_reserved_capacity(ref, percent)``; only growing is offered."""

    def __init__(self, bridge: EngineBridge, pair, volume_capacity: int, parent=None):
        super().__init__(parent)
        self.bridge, self.pair = bridge, pair
        self.ref = f"{pair.array}/{pair.local_volume}"
        rc = pair.reserved_capacity
        current_pct = 100.0 * rc.capacity / volume_capacity if volume_capacity else 20.0
        self.setWindowTitle(f"Increase reserved capacity \u2014 {self.ref}")
        self.percent = QSpinBox(minimum=int(current_pct) + 1, maximum=100, value=min(100, int(current_pct) + 10),
                                suffix=" % of the volume")
        self.size = QLabel("")
        self.percent.valueChanged.connect(
            lambda v: self.size.setText(f"= {format_size(volume_capacity * v / 100)}"))
        self.percent.valueChanged.emit(self.percent.value())
        self.error = QLabel("", objectName="error", wordWrap=True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self._apply)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Now:", QLabel(f"{format_size(rc.capacity)} ({current_pct:.0f} %), "
                                   f"{rc.utilization_pct:.1f} % used"))
        form.addRow("New reserved capacity:", self.percent)
        form.addRow("", self.size)
        form.addRow(self.error)
        form.addRow(self.buttons)

    def _apply(self) -> None:
        self.buttons.setEnabled(False)
        self.bridge.call("increase_reserved_capacity", self.ref, self.percent.value(),
                         on_done=lambda _r: self.accept(), on_error=self._refused)

    def _refused(self, err) -> None:
        self.buttons.setEnabled(True)
        self.error.setText(err.message)
