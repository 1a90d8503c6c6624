"""Message boxes for engine answers: the engine's own words, never a traceback."""
from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


def error_handler(parent: QWidget | None, title: str):
    """An ``on_error`` callback for :meth:`EngineBridge.call` that shows the engine's message."""
    def show(err) -> None:
        code = getattr(err, "code", "")
        text = getattr(err, "message", None) or str(err)
        box = QMessageBox(QMessageBox.Warning, title, text, QMessageBox.Ok, parent)
        if code:
            box.setInformativeText(f"Error code: {code}")
        box.setObjectName("engineErrorBox")
        box.open()  # not exec(): never spin a nested event loop from an engine callback
    return show


def confirm(parent: QWidget | None, title: str, text: str, destructive: bool = False) -> bool:
    icon = QMessageBox.Warning if destructive else QMessageBox.Question
    box = QMessageBox(icon, title, text, QMessageBox.Yes | QMessageBox.Cancel, parent)
    box.setDefaultButton(QMessageBox.Cancel if destructive else QMessageBox.Yes)
    return box.exec() == QMessageBox.Yes
