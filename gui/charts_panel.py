"""Live charts of one mirror consistency group (pyqtgraph).

Throughput, unsynchronized bytes, recovery point age against its alert threshold,
reserved capacity utilisation against its threshold. History comes from the
engine's ``sync_history``; live samples are taken from the console state at a fixed
10 Hz and drawn with ``setData`` on the GUI thread (``clipToView``/``autoDownsample``
on, so an hour of samples still draws in a few milliseconds).
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.selection import Selection

SAMPLE_HZ = 10
KEEP_SECONDS = 3600
MiB = 1 << 20
BLUE, ORANGE, RED = "#1f6fd1", "#e07a10", "#d13438"


class _Series:
    """A group's live samples: time, throughput MiB/s, unsynced MiB, RP age min, reserved %."""

    def __init__(self):
        n = SAMPLE_HZ * KEEP_SECONDS
        self.t, self.rate, self.unsynced, self.age, self.reserved = (deque(maxlen=n) for _ in range(5))
        self.history_t: np.ndarray = np.empty(0)
        self.history_rate: np.ndarray = np.empty(0)

    def add(self, now: float, g) -> None:
        self.t.append(now)
        self.rate.append((g.progress.rate if g.progress else 0.0) / MiB)
        self.unsynced.append(g.unsynchronized_bytes / MiB)
        age = g.recovery_point_age_seconds
        self.age.append(np.nan if age is None else age / 60)
        self.reserved.append(max((p.reserved_capacity.utilization_pct for p in g.pairs), default=0.0))


def _plot(title: str, units: str) -> pg.PlotWidget:
    w = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem()})
    w.setBackground("w")
    w.setTitle(title, color="#0b3d73", size="10pt")
    w.setLabel("left", units)
    w.showGrid(x=True, y=True, alpha=0.25)
    w.setClipToView(True)
    w.setDownsampling(auto=True, mode="peak")
    w.setMouseEnabled(x=True, y=False)
    w.setMinimumHeight(150)
    w.getAxis("left").enableAutoSIPrefix(False)
    w.getViewBox().setLimits(yMin=0)
    return w


class ChartsPanel(QWidget):
    """Four charts for the group chosen in its combo box (follows the tree's selection)."""

    def __init__(self, state: ConsoleState, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.state, self.bridge = state, bridge
        self.series: dict[str, _Series] = {}
        self.group_box = QComboBox(minimumWidth=160)
        self.group_box.currentTextChanged.connect(self._on_group_chosen)
        self.hint = QLabel("", objectName="hint", wordWrap=True)
        top = QHBoxLayout()
        top.addWidget(QLabel("Mirror consistency group:"))
        top.addWidget(self.group_box)
        self.window_box = QComboBox()
        for label, seconds in (("Last 5 minutes", 300), ("Last hour", 3600), ("Everything", 0)):
            self.window_box.addItem(label, seconds)
        self.window_box.currentIndexChanged.connect(lambda _i: self._redraw())
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.window_box)
        top.addWidget(self.hint, 1)
        pen = pg.mkPen(BLUE, width=2)
        self.p_rate = _plot("Throughput", "MiB/s")
        self.c_rate = self.p_rate.plot(pen=pen, fillLevel=0, brush=(31, 111, 209, 50))
        self.c_hist = self.p_rate.plot(pen=None, symbol="o", symbolSize=6, symbolBrush=ORANGE, name="completed syncs")
        self.p_unsynced = _plot("Unsynchronized data", "MiB")
        self.c_unsynced = self.p_unsynced.plot(pen=pen, fillLevel=0, brush=(31, 111, 209, 50))
        self.p_age = _plot("Recovery point age", "minutes")
        self.c_age = self.p_age.plot(pen=pen)
        self.l_age = pg.InfiniteLine(angle=0, pen=pg.mkPen(RED, width=1.5, style=pg.QtCore.Qt.DashLine),
                                     label="alert {value:.0f} min", labelOpts={"color": RED, "position": 0.5})
        self.p_age.addItem(self.l_age)
        self.p_reserved = _plot("Reserved capacity utilisation", "%")
        self.p_reserved.setYRange(0, 100)
        self.c_reserved = self.p_reserved.plot(pen=pen)
        self.l_reserved = pg.InfiniteLine(angle=0, pen=pg.mkPen(RED, width=1.5, style=pg.QtCore.Qt.DashLine),
                                          label="alert {value:.0f} %", labelOpts={"color": RED, "position": 0.5})
        self.p_reserved.addItem(self.l_reserved)
        # Not setXLink: with PySide6 6.12 linked views crash the interpreter at exit (bool refcount).
        self.plots = (self.p_rate, self.p_unsynced, self.p_age, self.p_reserved)
        grid = QGridLayout()
        grid.addWidget(self.p_rate, 0, 0)
        grid.addWidget(self.p_unsynced, 0, 1)
        grid.addWidget(self.p_age, 1, 0)
        grid.addWidget(self.p_reserved, 1, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(grid, 1)
        self.timer = QTimer(self, interval=1000 // SAMPLE_HZ)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        state.sig_groups_changed.connect(self._update_group_list)

    # -- which group -----------------------------------------------------------------
    def set_selection(self, sel: Selection | None) -> None:
        name = None
        if sel is not None and sel.kind == "group":
            name = sel.name
        elif sel is not None and sel.kind == "pair":
            p = self.state.pair(sel.array, sel.name)
            name = p.group if p else None
        if name:
            self.group_box.setCurrentText(name)

    def _update_group_list(self, groups) -> None:
        names = sorted({g.name for g in groups})
        current = [self.group_box.itemText(i) for i in range(self.group_box.count())]
        if names != current:
            keep = self.group_box.currentText()
            self.group_box.blockSignals(True)
            self.group_box.clear()
            self.group_box.addItems(names)
            self.group_box.blockSignals(False)
            self.group_box.setCurrentText(keep if keep in names else (names[0] if names else ""))
            if self.group_box.currentText() != keep:
                self._on_group_chosen(self.group_box.currentText())

    def _on_group_chosen(self, name: str) -> None:
        if not name:
            return
        self.hint.setText("")
        self.bridge.call("sync_history", name, on_done=lambda h, n=name: self._set_history(n, h),
                         on_error=lambda e: self.hint.setText(f"No sync history: {e.message}"))
        self._redraw()

    def _set_history(self, name: str, history) -> None:
        s = self.series.setdefault(name, _Series())
        done = [h for h in history if h.duration_seconds > 0]
        s.history_t = np.array([h.ended.timestamp() for h in done], dtype=float)
        s.history_rate = np.array([h.bytes_payload / h.duration_seconds / MiB for h in done], dtype=float)
        self.hint.setText(f"{len(done)} completed synchronizations in history")
        self._redraw()

    # -- sampling -----------------------------------------------------------------------
    def _tick(self) -> None:
        now = time.time()
        for g in self.state.groups:
            if g.role == "primary":
                self.series.setdefault(g.name, _Series()).add(now, g)
        if self.isVisible():
            self._redraw()

    def _redraw(self) -> None:
        name = self.group_box.currentText()
        s = self.series.get(name)
        g = self.state.group(name) if name else None
        if g is not None:
            self.l_age.setValue(g.recovery_point_alert_minutes)
            self.l_reserved.setValue(g.reserved_alert_percent)
        if s is None or not s.t:
            for c in (self.c_rate, self.c_unsynced, self.c_age, self.c_reserved):
                c.setData([], [])
            self.c_hist.setData(s.history_t if s else [], s.history_rate if s else [])
            return
        t = np.fromiter(s.t, float, len(s.t))
        span = self.window_box.currentData()
        now = time.time()
        if span:
            lo, pad = now - span, 0.0
        else:
            lo, pad = min([t[0]] + ([s.history_t[0]] if len(s.history_t) else [])), 0.02
        for p in self.plots:
            p.setXRange(lo, now, padding=pad)
        self.c_rate.setData(t, np.fromiter(s.rate, float, len(t)))
        self.c_hist.setData(s.history_t, s.history_rate)
        self.c_unsynced.setData(t, np.fromiter(s.unsynced, float, len(t)))
        self.c_age.setData(t, np.fromiter(s.age, float, len(t)), connect="finite")
        self.c_reserved.setData(t, np.fromiter(s.reserved, float, len(t)))
