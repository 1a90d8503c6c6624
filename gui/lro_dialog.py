"""Long Running Operations: every initial/interval sync (and role change) with its progress."""
from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout

from core.units import format_size
from gui import formatting as fmt
from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.details_panel import _row, _table

HEADERS = ["Group", "Pair", "Operation", "Done", "Total", "Rate", "ETA", "Progress"]


class LongRunningOperationsDialog(QDialog):
    """Refreshes twice a second while open; falls back to the polled snapshots' progress."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Long Running Operations")
        self.resize(900, 360)
        self.bridge, self.state = bridge, state
        self.table = _table(HEADERS)
        self.hint = QLabel("", objectName="hint")
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Operations in progress on the arrays (initial and interval synchronizations)."))
        lay.addWidget(self.table, 1)
        lay.addWidget(self.hint)
        lay.addWidget(buttons)
        self.timer = QTimer(self, interval=500)
        self.timer.timeout.connect(self.refresh)
        self._in_flight = False

    def showEvent(self, e):
        super().showEvent(e)
        self.refresh()
        self.timer.start()

    def hideEvent(self, e):
        self.timer.stop()
        super().hideEvent(e)

    def refresh(self) -> None:
        if self._in_flight:
            return
        self._in_flight = True
        self.bridge.call("long_running_operations", on_done=self._from_engine, on_error=self._from_snapshots)

    def _from_engine(self, ops) -> None:
        self._in_flight = False
        self._fill([(o.group, o.pair or "(all pairs)", o.kind, o.progress) for o in ops])

    def _from_snapshots(self, _err) -> None:
        self._in_flight = False
        rows = []
        for g in self.state.groups:
            if g.role != "primary":
                continue
            for p in g.pairs:
                if p.progress is not None:
                    rows.append((g.name, f"{p.primary_ref} \u2192 {p.secondary_ref}",
                                 f"{p.progress.kind.capitalize()} synchronization", p.progress))
        self._fill(rows)

    def _fill(self, rows) -> None:
        self.table.setRowCount(len(rows))
        for r, (group, pair, kind, prog) in enumerate(rows):
            _row(self.table, r, [group, pair, str(kind), format_size(prog.bytes_done) if prog else "\u2014",
                                 format_size(prog.bytes_total) if prog else "\u2014",
                                 fmt.rate(prog.rate if prog else None),
                                 fmt.eta(prog.eta_seconds if prog else None), None],
                 prog.percent if prog else None)
        self.hint.setText(f"{len(rows)} operation(s) running" if rows else "No long running operations")
        self.table.resizeColumnsToContents()
