"""Widgets whose one line of text gives up width: cut with "…" rather than widening the window.

A QLabel or QPushButton asks for its whole text as its minimum width. In a dock or the
status bar a long line (a workload's errors and why its targets refuse writes, a
Guru fix named after a long volume) made the main window grow past the screen's edge
in the walk-through. These keep ``text()`` whole (tests and tooltips read it) and
only draw it cut when they are narrower than it.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QPushButton, QSizePolicy, QStyle, QStyleOptionButton, QStylePainter

MIN_TEXT_WIDTH = 160  # px a cut line keeps at the least


class ElidedLabel(QLabel):
    """A one-line label drawn cut at its width."""

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), MIN_TEXT_WIDTH), hint.height())

    def paintEvent(self, _event) -> None:
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.ElideRight, rect.width())
        QPainter(self).drawText(rect, int(self.alignment() | Qt.AlignVCenter), text)


class ElidedButton(QPushButton):
    """A push button whose label is drawn cut at its width (the style draws the rest as usual)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A push button's policy takes its whole label as its least width; this one may shrink.
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), MIN_TEXT_WIDTH), hint.height())

    def paintEvent(self, _event) -> None:
        option = QStyleOptionButton()
        self.initStyleOption(option)
        room = self.style().subElementRect(QStyle.SE_PushButtonContents, option, self).width() - 8
        option.text = self.fontMetrics().elidedText(self.text(), Qt.ElideRight, max(room, 0))
        QStylePainter(self).drawControl(QStyle.CE_PushButton, option)
