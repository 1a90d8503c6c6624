"""Increase the reserved capacity of one side of a mirrored pair, saying what it takes from which pool.

A capacity change is not undone (reserved capacity only grows), so the dialog is the
confirmation: it names the volume whose reserved capacity grows (which may be the
secondary, when the Recovery Guru's cause is the secondary's), the pool the growth
comes from and what that pool keeps free.
"""
from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox

from core.units import format_size
from gui.bridge import EngineBridge


class IncreaseReservedCapacityDialog(QDialog):
    """Calls ``increase_reserved_capacity(ref, percent)``; only growing is offered.

    ``pair``: the snapshot of the side whose reserved capacity grows; ``pool_free``:
    bytes free in its reserved capacity's pool (None: not known); ``suggested``: the
    percentage proposed (the Recovery Guru's forecast), with ``why`` it is proposed.
    """

    def __init__(self, bridge: EngineBridge, pair, volume_capacity: int, parent=None, pool_free: int | None = None,
                 suggested: int | None = None, why: str = ""):
        super().__init__(parent)
        self.bridge, self.pair = bridge, pair
        self.ref = f"{pair.array}/{pair.local_volume}"
        self.volume_capacity, self.pool_free = volume_capacity, pool_free
        rc = self.rc = pair.reserved_capacity
        current_pct = 100.0 * rc.capacity / volume_capacity if volume_capacity else 20.0
        self.setWindowTitle(f"Increase reserved capacity \u2014 {self.ref}")
        self.setMinimumWidth(480)
        side = "primary" if pair.role == "primary" else "secondary"
        self.what = QLabel(f"The reserved capacity of the <b>{side}</b> volume <b>{self.ref}</b> "
                           f"(pair {pair.primary_ref} \u2192 {pair.secondary_ref}).", wordWrap=True)
        self.why = QLabel(why, objectName="hint", wordWrap=True)
        self.why.setVisible(bool(why))
        low = min(100, int(current_pct) + 1)
        value = suggested if suggested and suggested >= low else min(100, int(current_pct) + 10)
        self.percent = QSpinBox(minimum=low, maximum=100, value=max(low, value), suffix=" % of the volume")
        self.size = QLabel("")
        self.takes = QLabel("", wordWrap=True)
        self.error = QLabel("", objectName="error", wordWrap=True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Increase")
        self.buttons.accepted.connect(self._apply)
        self.buttons.rejected.connect(self.reject)
        self.percent.valueChanged.connect(self._show_cost)
        form = QFormLayout(self)
        form.addRow(self.what)
        form.addRow(self.why)
        form.addRow("Now:", QLabel(f"{format_size(rc.capacity)} ({current_pct:.0f} %), "
                                   f"{rc.utilization_pct:.1f} % used"))
        form.addRow("New reserved capacity:", self.percent)
        form.addRow("", self.size)
        form.addRow("Takes:", self.takes)
        form.addRow(self.error)
        form.addRow(self.buttons)
        self._show_cost(self.percent.value())

    def growth(self, percent: int | None = None) -> int:
        """Bytes the pool gives for ``percent`` (the engine sizes it the same way: whole bytes of the volume)."""
        p = self.percent.value() if percent is None else percent
        return max(0, int(self.volume_capacity * p / 100) - self.rc.capacity)

    def _show_cost(self, percent: int) -> None:
        grow = self.growth(percent)
        self.size.setText(f"= {format_size(self.volume_capacity * percent / 100)}")
        free = self.pool_free
        pool = f"pool {self.rc.pool} of {self.pair.array}"
        if free is None:
            self.takes.setText(f"{format_size(grow)} from {pool}")
        else:
            self.takes.setText(f"{format_size(grow)} from {pool} ({format_size(free)} free now, "
                               f"{format_size(max(0, free - grow))} after)")
        short = free is not None and grow > free
        self.error.setText(f"{pool} has only {format_size(free)} free: choose less, or free capacity in the pool "
                           "first." if short else "")
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(not short)

    def _apply(self) -> None:
        self.buttons.setEnabled(False)
        self.bridge.call("increase_reserved_capacity", self.ref, self.percent.value(),
                         on_done=lambda _r: self.accept(), on_error=self._refused)

    def _refused(self, err) -> None:
        self.buttons.setEnabled(True)
        self.error.setText(err.message)
