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
        """``long_running_operations()`` dicts: group, array, pair (ARRAY/VOL), kind, bytesDone/Total, running."""
        self._in_flight = False
        rows = []
        for o in ops:
            done, total = int(o.get("bytesDone") or 0), int(o.get("bytesTotal") or 0)
            array, _, volume = str(o.get("pair") or "").partition("/")
            live = self.state.pair(array, volume) if volume else None
            prog = live.progress if live is not None else None
            pair = f"{live.primary_ref} \u2192 {live.secondary_ref}" if live is not None else (o.get("pair") or
                                                                                          "(all pairs)")
            kind = f"{str(o.get('kind', '')).capitalize()} synchronization"
            if not o.get("running", True):
                kind += " (waiting)"
            pct = 100.0 * done / total if total else (100.0 if o.get("running") is False else 0.0)
            rows.append((o.get("group", ""), pair, kind, done, total, prog.rate if prog else None,
                         prog.eta_seconds if prog else None, pct))
        self._fill(rows)

    def _from_snapshots(self, _err) -> None:
        self._in_flight = False
        rows = []
        for g in self.state.groups:
            if g.role != "primary":
                continue
            for p in g.pairs:
                prog = p.progress
                if prog is not None:
                    rows.append((g.name, f"{p.primary_ref} \u2192 {p.secondary_ref}",
                                 f"{prog.kind.capitalize()} synchronization", prog.bytes_done, prog.bytes_total,
                                 prog.rate, prog.eta_seconds, prog.percent))
        self._fill(rows)

    def _fill(self, rows) -> None:
        """rows: (group, pair, operation, bytes done, bytes total, rate or None, ETA or None, percent)."""
        grew = self.table.rowCount() != len(rows)
        self.table.setRowCount(len(rows))
        for r, (group, pair, kind, done, total, rate, eta, pct) in enumerate(rows):
            _row(self.table, r, [group, pair, kind, format_size(done), format_size(total), fmt.rate(rate),
                                 fmt.eta(eta), None], pct)
        self.hint.setText(f"{len(rows)} operation(s) running" if rows else "No long running operations")
        if grew:
            self.table.resizeColumnsToContents()
