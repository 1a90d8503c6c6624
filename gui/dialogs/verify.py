"""Verify consistency: the secondary's recovery point against the primary's image, with its result.

The comparison runs on the engine (the array's daemon) while the dialog shows that it
is working; the result says what was compared and what could not be, per pair, and
never "identical" for what was skipped.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QProgressBar, QTableWidget,
                               QTableWidgetItem, QVBoxLayout)

from core.units import format_size
from gui import formatting as fmt
from gui.bridge import EngineBridge

OUTCOMES = {"identical": "Identical: the secondary holds the recovery point",
            "mismatch": "MISMATCH: the secondary differs from the recovery point",
            "notVerified": "Not verified: nothing could be compared for at least one pair"}
PAIR_HEADERS = ["Primary", "Secondary", "Result", "Compared", "Skipped (changed since)", "Why"]


class VerifyDialog(QDialog):
    """Runs ``verify(group)`` when opened, and again on request."""

    def __init__(self, bridge: EngineBridge, group: str, parent=None):
        super().__init__(parent)
        self.bridge, self.group = bridge, group
        self.setWindowTitle(f"Verify consistency \u2014 {group}")
        self.setObjectName("verifyDialog")
        self.status = QLabel("", wordWrap=True, objectName="verifyStatus")
        self.detail = QLabel("", wordWrap=True, objectName="hint")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # the comparison reports at its end: a busy bar meanwhile
        self.pairs = QTableWidget(0, len(PAIR_HEADERS))
        self.pairs.setHorizontalHeaderLabels(PAIR_HEADERS)
        self.pairs.verticalHeader().setVisible(False)
        self.pairs.setEditTriggers(QTableWidget.NoEditTriggers)
        self.pairs.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.pairs.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        self.again = buttons.addButton("Verify again", QDialogButtonBox.ActionRole)
        self.again.clicked.connect(self.run)
        layout = QVBoxLayout(self)
        for w in (self.status, self.busy, self.detail, self.pairs, buttons):
            layout.addWidget(w)
        self.resize(760, 300)
        self._started = 0.0
        self._ticker = QTimer(self, interval=500, timeout=self._tick)
        self.result: dict | None = None
        self.run()

    def run(self) -> None:
        self.result = None
        self._started = time.monotonic()
        self.status.setText(f"Comparing the secondary of {self.group} with the primary\u2026")
        self.detail.setText("")
        self.busy.show()
        self.again.setEnabled(False)
        self._ticker.start()
        self.bridge.call("verify", self.group, on_done=self._show, on_error=self._failed)

    def _tick(self) -> None:
        self.detail.setText(f"{time.monotonic() - self._started:.0f} s; the comparison runs on the primary's array "
                            "and reads both sides' volumes")

    def _finish(self) -> None:
        self._ticker.stop()
        self.busy.hide()
        self.again.setEnabled(True)

    def _show(self, r: dict) -> None:
        self._finish()
        self.result = r
        self.status.setText(OUTCOMES.get(r["outcome"], r["outcome"]))
        self.status.setStyleSheet("" if r["outcome"] == "identical" else "color:#b3261e; font-weight:bold")
        self.detail.setText(
            f"Recovery point {r.get('recoveryPointId')} of {fmt.when(r.get('recoveryPoint'))} "
            f"({fmt.age(r.get('recoveryPointAgeSeconds'))} old): {r['compared']['regions']} region(s), "
            f"{format_size(r['compared']['bytes'])} compared; {r['skipped']['regions']} region(s), "
            f"{format_size(r['skipped']['bytes'])} skipped because they changed on the primary since "
            "(the next synchronization sends them).")
        self.pairs.setRowCount(len(r["pairs"]))
        for row, p in enumerate(r["pairs"]):
            result = {"identical": "Identical", "mismatch": f"Differs ({p['mismatchedBlocks']} block(s))",
                      "notVerified": "Not verified"}.get(p["outcome"], p["outcome"])
            cells = [p["primary"], p["secondary"], result, format_size(p["bytesCompared"]),
                     format_size(p["bytesSkipped"]), p.get("reason") or ""]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.pairs.setItem(row, col, item)

    def _failed(self, err) -> None:
        self._finish()
        self.status.setText(f"Verification could not run: {getattr(err, 'message', None) or err}")
        self.status.setStyleSheet("color:#b3261e; font-weight:bold")
