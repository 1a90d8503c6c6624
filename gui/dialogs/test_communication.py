"""Test communication between two arrays: connectivity, latency, bandwidth."""
from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel

from core.units import format_size
from gui.bridge import EngineBridge


class TestCommunicationDialog(QDialog):
    """Runs ``test_communication(local, remote)`` when shown."""

    __test__ = False  # not a pytest test class

    def __init__(self, bridge: EngineBridge, local: str, remote: str, parent=None):
        super().__init__(parent)
        self.bridge, self.local, self.remote = bridge, local, remote
        self.setWindowTitle(f"Test communication \u2014 {local} \u2194 {remote}")
        self.connected = QLabel("testing\u2026")
        self.latency = QLabel("\u2014")
        self.bandwidth = QLabel("\u2014")
        self.error = QLabel("", objectName="error", wordWrap=True)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        self.retry = buttons.addButton("Test again", QDialogButtonBox.ActionRole)
        self.retry.clicked.connect(self.run_test)
        form = QFormLayout(self)
        form.addRow("Connectivity:", self.connected)
        form.addRow("Latency:", self.latency)
        form.addRow("Bandwidth:", self.bandwidth)
        form.addRow(self.error)
        form.addRow(buttons)
        self.run_test()

    def run_test(self) -> None:
        self.connected.setText("testing\u2026")
        self.error.setText("")
        self.bridge.call("test_communication", self.local, self.remote, on_done=self._show, on_error=self._failed)

    def _show(self, r: dict) -> None:
        self.connected.setText("Connected" if r.get("connected") else "Not connected")
        lat = r.get("latency_ms")
        self.latency.setText(f"{lat:.2f} ms" if lat is not None else "\u2014")
        bw = r.get("bandwidth_mib_s")
        self.bandwidth.setText(f"{format_size(bw * (1 << 20))}/s" if bw is not None else "\u2014")

    def _failed(self, err) -> None:
        self.connected.setText("Failed")
        self.error.setText(err.message)
