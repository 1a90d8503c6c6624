"""A time axis that stays readable at every width: as many local-time labels as fit, never one.

pyqtgraph's ``DateAxisItem`` chooses among fixed zoom levels; in a chart 200-300 px wide
showing five minutes it skipped to 5-minute steps and drew a single "12:35". This
axis keeps DateAxisItem's drawing and picks the step itself: the finest "round" step
(1 s ... 1 day) whose labels fit side by side, aligned to the local clock, with seconds
shown only when the step is under a minute and the date when the span passes a day.
"""
from __future__ import annotations

import math
import time

import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QApplication

STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
         2 * 86400, 7 * 86400)
LABEL_PADDING = 18  # pixels between two labels


def _label_format(step: float, span: float) -> str:
    if span > 86400:
        return "%m-%d %H:%M" if step < 86400 else "%Y-%m-%d"
    return "%H:%M:%S" if step < 60 else "%H:%M"


class TimeAxis(pg.DateAxisItem):
    """Bottom axis of seconds since the epoch, labelled in local time."""

    def _text_width(self, text: str) -> int:
        font = self.style.get("tickFont") or QApplication.font()
        return QFontMetrics(font).horizontalAdvance(text) + LABEL_PADDING

    def step_for(self, span: float, size: float) -> float:
        """The finest step whose labels fit in ``size`` pixels (at least two ticks when the span allows)."""
        for step in STEPS:
            label = self._text_width(time.strftime(_label_format(step, span), time.localtime(0)))
            if span / step * label <= size:
                return step
        return STEPS[-1]

    def tickValues(self, minVal, maxVal, size):
        span = maxVal - minVal
        if size <= 0 or not math.isfinite(span) or span <= 0:
            return []
        step = self.step_for(span, size)
        # Round to the local clock: a 10-minute step falls on :00, :10, ... where the user lives.
        offset = time.localtime(minVal).tm_gmtoff if step >= 3600 else 0
        first = math.ceil((minVal + offset) / step) * step - offset
        ticks = [first + i * step for i in range(int((maxVal - first) // step) + 1)]
        return [(step, ticks)]

    def tickStrings(self, values, scale, spacing):
        if not values:
            return []
        view = self.linkedView()
        span = (view.viewRange()[0][1] - view.viewRange()[0][0]) if view is not None else spacing * len(values)
        form = _label_format(spacing, span)
        return [time.strftime(form, time.localtime(v)) for v in values]
