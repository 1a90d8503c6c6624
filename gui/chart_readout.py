"""The value under the mouse on a pyqtgraph chart: a vertical line and one line per named curve.

Mouse moves are rate-limited (pyqtgraph's ``SignalProxy``, 30 Hz) and only read the curves'
arrays already drawn: nothing is fetched, so hovering never costs the UI thread more than a
binary search per curve.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pyqtgraph as pg

from gui import formatting as fmt

READOUT_HZ = 30


class Readout:
    """Shows, for the time under the mouse, each named curve's nearest sample."""

    def __init__(self, plot: pg.PlotWidget, units: str, decimals: int = 1):
        self.plot, self.units, self.decimals = plot, units, decimals
        self.line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#5a6b7d", width=1, style=pg.QtCore.Qt.DotLine))
        self.label = pg.TextItem("", color="#0b3d73", fill=pg.mkBrush(255, 255, 255, 220), anchor=(0, 0))
        self.label.setZValue(100)
        for item in (self.line, self.label):
            item.setVisible(False)
            plot.addItem(item, ignoreBounds=True)
        self.text = ""
        self._proxy = pg.SignalProxy(plot.scene().sigMouseMoved, rateLimit=READOUT_HZ, slot=self._moved)

    def _moved(self, args) -> None:
        pos = args[0]
        vb = self.plot.getViewBox()
        if not vb.sceneBoundingRect().contains(pos):
            self.hide()
            return
        self.show_at(vb.mapSceneToView(pos).x())

    def hide(self) -> None:
        self.line.setVisible(False)
        self.label.setVisible(False)
        self.text = ""

    def show_at(self, x: float) -> str:
        """Put the readout at time ``x`` (seconds since the epoch); returns its text ("" when no data)."""
        lines = []
        (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
        near = max((x1 - x0) * 0.03, 1.0)  # a completed sync far from the mouse is not "under" it
        for curve in self.plot.getPlotItem().listDataItems():
            name = curve.name()
            xs, ys = curve.getOriginalDataset()
            if not name or xs is None or len(xs) == 0:
                continue
            i = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
            if i > 0 and abs(xs[i - 1] - x) < abs(xs[i] - x):
                i -= 1
            if abs(xs[i] - x) > near:
                continue
            y = ys[i]
            value = "\u2014" if y is None or not np.isfinite(y) else f"{y:.{self.decimals}f} {self.units}"
            lines.append(f"{name}: {value}")
        if not lines:
            self.hide()
            return ""
        self.text = "\n".join([fmt.timestamp(datetime.fromtimestamp(x))] + lines)
        self.label.setText(self.text)
        # The label sits beside the line, on the side with room, at the top of the chart.
        self.label.setAnchor((1, 0) if x > (x0 + x1) / 2 else (0, 0))
        self.label.setPos(x, y1)
        self.line.setPos(x)
        self.line.setVisible(True)
        self.label.setVisible(True)
        return self.text
