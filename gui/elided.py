"""Widgets whose one line of text gives up width: cut with "…" rather than widening the window.

A QLabel or QPushButton asks for its whole text as its minimum width. In a dock or the
status bar a long line (a workload's errors and why its targets refuse writes, a
Guru fix named after a long volume) made the main window grow past the screen's edge
in the walk-through. These keep ``text()`` whole (tests and tooltips read it) and
only draw it cut when they are narrower than it.
"""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSize, Qt
from PySide6.QtGui import QIcon, QPainter
from PySide6.QtWidgets import (QLabel, QPushButton, QSizePolicy, QStyle, QStyledItemDelegate, QStyleOptionButton,
                               QStyleOptionViewItem, QStylePainter)

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


class KeepTailDelegate(QStyledItemDelegate):
    """Cells whose text ends with ``tail`` are cut in their head, so the tail stays readable.

    The tree's narrow Status column cut "Optimal (last known)" in the middle, to
    "Optimal \u2026t known)": the row was greyed, but the words that say the status is not
    current were gone. Cut here it reads "Opt\u2026 (last known)".
    """

    PADDING = 8  # px the style keeps around a cell's text

    def __init__(self, tail: str, parent=None):
        super().__init__(parent)
        self.tail = tail

    def initStyleOption(self, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        text = option.text
        if not text.endswith(self.tail):
            return
        metrics = option.fontMetrics
        icon = 0 if option.icon.isNull() else option.decorationSize.width() + self.PADDING
        room = option.rect.width() - self.PADDING - icon
        if metrics.horizontalAdvance(text) <= room:
            return
        head = text[:-len(self.tail)]
        room -= metrics.horizontalAdvance(self.tail)
        if icon and room < metrics.horizontalAdvance(head[:3] + "\u2026"):
            # The mark gives its room to the words: "\u2026 (last known)" said nothing of the status.
            option.icon = QIcon()
            option.features &= ~QStyleOptionViewItem.ViewItemFeature.HasDecoration
            room += icon
        option.text = metrics.elidedText(head, Qt.ElideRight, max(0, room)) + self.tail
