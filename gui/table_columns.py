"""Table columns sized to their contents, then fitted to the table's width.

Sized to contents alone, the details' tables needed horizontal scrolling even in a
1600 px window: one long group name or "Last recovery point" pushed the progress bars
out of sight. Here every column first gets its content's width; when they do not fit,
the widest columns give back space (never below ``READABLE`` px or their whole text when
shorter), their text and header are elided, and a cut cell shows its whole text as its
tooltip; the table scrolls only below that. Refitted when the
table is resized or its rows change, unless the administrator has dragged a column
(then their widths are theirs).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QHeaderView, QTableView, QToolTip

MIN_COLUMN = 48
READABLE = 110
MAX_ROWS_SCANNED = 200  # sizing to contents reads every cell: huge tables keep their widths


class ColumnFitter(QObject):
    """Keeps ``table``'s columns fitted to its viewport; ``minimums`` give columns such as a bar a floor."""

    def __init__(self, table: QTableView, minimums: dict[int, int] | None = None):
        super().__init__(table)
        self.table = table
        self.minimums = dict(minimums or {})
        self.user_sized = False
        self._fitting = False
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(True)
        header.setTextElideMode(Qt.ElideRight)
        table.setTextElideMode(Qt.ElideMiddle)
        header.sectionResized.connect(self._on_section_resized)
        table.viewport().installEventFilter(self)

    def _on_section_resized(self, *_):
        # A drag on the header (not our own fitting, not the stretched last section following the width).
        if not self._fitting and self.table.horizontalHeader().underMouse():
            self.user_sized = True

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Resize and not self.user_sized:
            self.fit()
        elif event.type() == QEvent.ToolTip:
            return self._tooltip(event)
        return False

    def _tooltip(self, event) -> bool:
        """A cell cut short shows its whole text (a cell's own tooltip, e.g. a failure reason, comes first)."""
        index = self.table.indexAt(event.pos())
        text = index.data() if index.isValid() else None
        if not text or index.data(Qt.ToolTipRole):
            return False
        if self.table.fontMetrics().horizontalAdvance(str(text)) + 12 <= self.table.columnWidth(index.column()):
            return False
        QToolTip.showText(event.globalPos(), str(text), self.table.viewport())
        return True

    def fit(self, force: bool = False) -> None:
        """Size the columns to their contents and squeeze the widest until they fit the viewport."""
        t = self.table
        model = t.model()
        if model is None or (self.user_sized and not force) or model.rowCount() > MAX_ROWS_SCANNED:
            return
        header = t.horizontalHeader()
        self._fitting = True
        try:
            n = header.count()
            wanted, floors = [], []
            for c in range(n):
                if header.isSectionHidden(c):
                    wanted.append(0)
                    floors.append(0)
                    continue
                content = t.sizeHintForColumn(c)
                head = header.sectionSizeHint(c)
                wanted.append(max(content, head, MIN_COLUMN, self.minimums.get(c, 0)))
                # Squeezed, a column keeps up to READABLE px of its text or header; below that the
                # table scrolls sideways (a narrow window) rather than show "P\u2026d".
                floors.append(max(MIN_COLUMN, min(max(content, head), READABLE), self.minimums.get(c, 0)))
            widths = _squeeze(wanted, t.viewport().width() - t.frameWidth(), floors)
            for c, w in enumerate(widths):
                if not header.isSectionHidden(c):
                    header.resizeSection(c, w)
        finally:
            self._fitting = False


def _squeeze(wanted: list[int], available: int, floors: list[int]) -> list[int]:
    """Widths that sum to at most ``available`` where possible: every column wider than a common cap is
    cut to it (never below its floor); the cap is the largest that fits (found by bisection)."""
    if sum(wanted) <= available or available <= 0:
        return list(wanted)

    def total(cap: int) -> int:
        return sum(max(f, min(w, cap)) for w, f in zip(wanted, floors))
    lo, hi = 0, max(wanted)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if total(mid) <= available:
            lo = mid
        else:
            hi = mid - 1
    return [max(f, min(w, lo)) for w, f in zip(wanted, floors)]
