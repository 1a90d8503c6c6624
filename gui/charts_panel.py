"""Live charts of one mirror consistency group (pyqtgraph).

Throughput (sync, and host writes beside it), unsynchronized bytes, recovery point age
against its alert threshold, reserved capacity used on both sides against its
threshold. History comes from the engine's ``sync_history`` (fetched again whenever the
group's last sync changes); live samples are taken from the console state at a fixed
10 Hz and drawn with ``setData`` on the GUI thread (``clipToView``/``autoDownsample``
on, so an hour of samples still draws in a few milliseconds).

Time axes are ``DateAxisItem`` (tick spacing follows the width); each chart has a legend
and a readout of the values under the mouse; y-axes fit what is in view, so a burst an
hour ago does not flatten the last five minutes.

Host write throughput: every volume snapshot carries the bytes hosts wrote to it (NBD
clients, the Python API, the lab workload alike); the console state reads ``volumes()``
each second, and the chart shows the rate summed over the group's primary volumes.

The samples are taken from the start; the charts themselves are built the first time
the panel is shown: pyqtgraph and numpy cost the first window about half a second of
imports, for a tab that is not in view when it opens.
"""
from __future__ import annotations

import math
import time
from collections import deque

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from gui import formatting as fmt
from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.selection import Selection

SAMPLE_HZ = 10
HOST_RATE_SECONDS = 0.9  # host write rates are taken over at least this long (the state reads volumes each second)
KEEP_SECONDS = 3600
MiB = 1 << 20
BLUE, ORANGE, RED, GREEN, PURPLE = "#1f6fd1", "#e07a10", "#d13438", "#2e7d32", "#7b3fa0"
HOST_WRITES = "Host writes"


class _Series:
    """A group's live samples: time, sync and host write MiB/s, unsynced MiB, RP age min, reserved % per side."""

    def __init__(self):
        n = SAMPLE_HZ * KEEP_SECONDS
        (self.t, self.rate, self.host, self.unsynced, self.age, self.reserved,
         self.reserved_secondary) = (deque(maxlen=n) for _ in range(7))
        self.history_t: tuple[float, ...] = ()  # completed syncs: end time, average MiB/s
        self.history_rate: tuple[float, ...] = ()
        self.history_key = None  # the group's last sync when the history was fetched

    def add(self, now: float, g, values: tuple[float, float, float, float, float]) -> None:
        """One sample: ``values`` from :func:`_values` (what changes only with the snapshots), the age now."""
        rate, host, unsynced, reserved, reserved_secondary = values
        self.t.append(now)
        self.rate.append(rate)
        self.host.append(host)
        self.unsynced.append(unsynced)
        age = g.recovery_point_age_seconds
        self.age.append(math.nan if age is None else age / 60)
        self.reserved.append(reserved)
        self.reserved_secondary.append(reserved_secondary)


# An alert line's label sits above it at the plot's right end, clear of the legend at the top left
# (centred at 70 %, "alert 80 %" covered the legend's second entry at 1280 px).
ALERT_LABEL = {"color": RED, "position": 1.0, "anchors": [(1, 1), (1, 1)]}

def _values(g, secondary, host_rates: dict[str, float]) -> tuple[float, float, float, float, float]:
    """Sync MiB/s, host write MiB/s, unsynced MiB and reserved % of each side of primary side ``g``."""
    host = sum(host_rates.get(f"{g.array}/{p.local_volume}", 0.0) for p in g.pairs)
    return ((g.progress.rate if g.progress else 0.0) / MiB, host / MiB, g.unsynchronized_bytes / MiB,
            max((p.reserved_capacity.utilization_pct for p in g.pairs), default=0.0),
            math.nan if secondary is None else max((p.reserved_capacity.utilization_pct for p in secondary.pairs),
                                                   default=0.0))


def _plot(title: str, units: str):
    """A pg.PlotWidget with a time axis, a legend, and a y-axis that fits what is in view."""
    import pyqtgraph as pg

    from gui.time_axis import TimeAxis

    w = pg.PlotWidget(axisItems={"bottom": TimeAxis(orientation="bottom")})
    w.setBackground("w")
    w.setTitle(title, color="#0b3d73", size="10pt")
    w.setLabel("left", units)
    w.showGrid(x=True, y=True, alpha=0.25)
    w.setClipToView(True)
    w.setDownsampling(auto=True, mode="peak")
    w.setMouseEnabled(x=True, y=False)
    # Narrow enough for two side by side in the centre of a 1280 px window (a wider minimum
    # squeezed the tree's names to "\u2026" when the Performance tab was opened).
    w.setMinimumSize(200, 120)
    w.getAxis("left").enableAutoSIPrefix(False)
    w.getAxis("left").setWidth(44)
    vb = w.getViewBox()
    vb.setLimits(yMin=0)
    # The y-axis fits what is in view, so it comes down again when the values fall.
    vb.setAutoVisible(y=True)
    vb.enableAutoRange(axis=pg.ViewBox.YAxis, enable=True)
    legend = w.addLegend(offset=(6, 4),  # top left: the newest samples are on the right
                          labelTextSize="8pt", brush=pg.mkBrush(255, 255, 255, 200))
    legend.setZValue(50)
    return w


def host_write_rates(previous: dict, volumes, now: float) -> tuple[dict, dict[str, float]]:
    """(new memory, bytes/s per "ARRAY/VOLUME") from ``volumes()``' byte counters and what was seen last time."""
    memory, rates = {}, {}
    for v in volumes or ():
        ref = f"{v.array}/{v.name}"
        written = int(getattr(v, "host_bytes_written", 0) or 0)
        memory[ref] = (now, written)
        seen = previous.get(ref)
        if seen is None or now <= seen[0] or written < seen[1]:
            continue  # first sight, or the array restarted (its counter too): a rate needs two readings
        rates[ref] = (written - seen[1]) / (now - seen[0])
    return memory, rates


class ChartsPanel(QWidget):
    """Four charts for the group chosen in its combo box (follows the tree's selection)."""

    def __init__(self, state: ConsoleState, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.state, self.bridge = state, bridge
        self.series: dict[str, _Series] = {}
        self.group_box = QComboBox(minimumWidth=120)
        self.group_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.group_box.setMinimumContentsLength(12)
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
        top.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.hint)
        self._grid = QGridLayout()  # the charts, built when first shown (see _build_charts)
        lay.addLayout(self._grid, 1)
        self.plots: tuple = ()
        self.readouts: dict = {}
        self.host_rates: dict[str, float] = {}  # volume ref -> bytes/s
        self._volumes_seen: dict = {}
        self._volumes_read_at = 0.0
        self._sampled: tuple = (None, None)  # the groups and host rates self._samples were worked out from
        self._samples: list = []  # (primary side, its values) for each group
        self.timer = QTimer(self, interval=1000 // SAMPLE_HZ)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        state.sig_groups_changed.connect(self._update_group_list)
        state.sig_volumes_read.connect(self._host_writes)

    # -- the charts (built when first shown) ------------------------------------------
    def showEvent(self, event) -> None:
        if not self.plots:
            self._build_charts()
        super().showEvent(event)
        self._redraw()

    def _build_charts(self) -> None:
        import pyqtgraph as pg

        from gui.chart_readout import Readout

        pen = pg.mkPen(BLUE, width=2)
        self.p_rate = _plot("Throughput", "MiB/s")
        self.c_rate = self.p_rate.plot(pen=pen, fillLevel=0, brush=(31, 111, 209, 50), name="Synchronization")
        self.c_host = self.p_rate.plot(pen=pg.mkPen(GREEN, width=2), name=HOST_WRITES)
        self.c_hist = self.p_rate.plot(pen=None, symbol="o", symbolSize=6, symbolBrush=ORANGE,
                                       name="Completed syncs (average)")
        self.p_unsynced = _plot("Unsynchronized data", "MiB")
        self.c_unsynced = self.p_unsynced.plot(pen=pen, fillLevel=0, brush=(31, 111, 209, 50), name="Unsynchronized")
        self.p_age = _plot("Recovery point age", "minutes")
        self.c_age = self.p_age.plot(pen=pen, name="Recovery point age")
        self.l_age = pg.InfiniteLine(angle=0, pen=pg.mkPen(RED, width=1.5, style=Qt.DashLine),
                                     label="alert {value:.0f} min", labelOpts=ALERT_LABEL)
        self.p_age.addItem(self.l_age)
        self.p_reserved = _plot("Reserved capacity used", "%")
        self.p_reserved.getViewBox().enableAutoRange(axis=pg.ViewBox.YAxis, enable=False)
        self.p_reserved.setYRange(0, 100)  # a share of the capacity: the whole scale, the threshold always in view
        self.c_reserved = self.p_reserved.plot(pen=pen, name="Primary side")
        self.c_reserved_secondary = self.p_reserved.plot(pen=pg.mkPen(PURPLE, width=2), name="Secondary side")
        self.l_reserved = pg.InfiniteLine(angle=0, pen=pg.mkPen(RED, width=1.5, style=Qt.DashLine),
                                          label="alert {value:.0f} %", labelOpts=ALERT_LABEL)
        self.p_reserved.addItem(self.l_reserved)
        # Not setXLink: with PySide6 6.12 linked views crash the interpreter at exit (bool refcount).
        self.plots = (self.p_rate, self.p_unsynced, self.p_age, self.p_reserved)
        self.readouts = {self.p_rate: Readout(self.p_rate, "MiB/s", 2), self.p_unsynced: Readout(self.p_unsynced, "MiB"),
                         self.p_age: Readout(self.p_age, "min"), self.p_reserved: Readout(self.p_reserved, "%")}
        self._grid.addWidget(self.p_rate, 0, 0)
        self._grid.addWidget(self.p_unsynced, 0, 1)
        self._grid.addWidget(self.p_age, 1, 0)
        self._grid.addWidget(self.p_reserved, 1, 1)

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
        self._fetch_history(name)
        self._redraw()

    def _fetch_history(self, name: str) -> None:
        g = self.state.group(name)
        key = _history_key(g)
        self.series.setdefault(name, _Series()).history_key = key
        self.bridge.call("sync_history", name, on_done=lambda h, n=name: self._set_history(n, h),
                         on_error=lambda e: self.hint.setText(f"No sync history: {e.message}"))

    def _set_history(self, name: str, history) -> None:
        s = self.series.setdefault(name, _Series())
        done = [h for h in history if h.duration_seconds > 0 and h.outcome == "committed"]
        s.history_t = tuple(h.ended.timestamp() for h in done)
        s.history_rate = tuple(h.bytes_payload / h.duration_seconds / MiB for h in done)
        if name == self.group_box.currentText():
            last = fmt.timestamp(done[-1].ended) if done else None
            self.hint.setText(f"{len(done)} completed synchronization(s) in history"
                              + (f", the last at {last}" if last else ""))
        self._redraw()

    # -- sampling -----------------------------------------------------------------------
    def _host_writes(self, volumes, when: float) -> None:
        # A reading that an event brought a moment after the last one would make one 2 MiB write a 9 MiB/s spike.
        if 0 <= when - self._volumes_read_at < HOST_RATE_SECONDS:
            return
        self._volumes_read_at = when
        self._volumes_seen, self.host_rates = host_write_rates(self._volumes_seen, volumes, when)

    def _tick(self) -> None:
        now = time.time()
        current = self.group_box.currentText()
        groups, rates = self.state.groups, self.host_rates
        if self._sampled[0] is not groups or self._sampled[1] is not rates:
            # Worked out when the snapshots or the rates change (5 times a second), not at every sample (10).
            self._sampled = (groups, rates)
            secondaries: dict = {}
            for g in groups:
                if g.role == "secondary":
                    secondaries.setdefault(g.name, g)
            self._samples = [(g, _values(g, secondaries.get(g.name), rates)) for g in groups if g.role == "primary"]
        for g, values in self._samples:
            s = self.series.setdefault(g.name, _Series())
            s.add(now, g, values)
            if g.name == current and s.history_key != _history_key(g):
                self._fetch_history(g.name)  # a sync ended since the history was read
        if self.isVisible():
            self._redraw()

    def _redraw(self) -> None:
        if not self.plots:
            return  # not shown yet: the samples wait in the series
        import numpy as np

        name = self.group_box.currentText()
        s = self.series.get(name)
        g = self.state.group(name) if name else None
        if g is not None:
            self.l_age.setValue(g.recovery_point_alert_minutes)
            self.l_reserved.setValue(g.reserved_alert_percent)
        if s is None or not s.t:
            for c in (self.c_rate, self.c_host, self.c_unsynced, self.c_age, self.c_reserved,
                      self.c_reserved_secondary):
                c.setData([], [])
            self.c_hist.setData(np.array(s.history_t if s else (), float),
                                np.array(s.history_rate if s else (), float))
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
        self.c_host.setData(t, np.fromiter(s.host, float, len(t)), connect="finite")
        self.c_hist.setData(np.array(s.history_t, float), np.array(s.history_rate, float))
        self.c_unsynced.setData(t, np.fromiter(s.unsynced, float, len(t)))
        self.c_age.setData(t, np.fromiter(s.age, float, len(t)), connect="finite")
        self.c_reserved.setData(t, np.fromiter(s.reserved, float, len(t)))
        self.c_reserved_secondary.setData(t, np.fromiter(s.reserved_secondary, float, len(t)), connect="finite")


def _history_key(g):
    """What changes when a sync of the group ends (its last sync's end and outcome)."""
    last = g.last_sync if g is not None else None
    return None if last is None else (last.ended, last.outcome)
