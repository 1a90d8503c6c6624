"""Closing the console while a synchronization runs: say what happens to it, then close or not.

The arrays are daemons (SPEC §1): the mirroring goes on without the console. When this
console started the lab's daemons, the same question decides whether they keep running,
so ``mirror-console`` does not ask twice (see :func:`gui.app.main`). The question is a
non-modal box: no nested event loop.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from gui.bridge import EngineBridge
from gui.console_state import ConsoleState


class CloseGuard(QObject):
    """Decides whether a close may go ahead; asks first while a synchronization runs."""

    sig_question = Signal(QMessageBox)
    """The question shown before closing (tests answer it)."""

    def __init__(self, bridge: EngineBridge, state: ConsoleState, window: QWidget):
        super().__init__(window)
        self.bridge, self.state, self.window = bridge, state, window
        self.answered = False
        self.stop_arrays: bool | None = None
        """After the question: True = stop the lab's arrays, False = leave them, None = not asked."""
        self.box: QMessageBox | None = None

    def syncing(self) -> list[str]:
        """ "payroll (42 %)" for every group whose primary side is synchronizing now."""
        out = []
        for g in self.state.groups:
            if g.role == "primary" and g.progress is not None:
                out.append(f"{g.name} ({g.progress.percent:.0f} %)")
        return out

    def lab_started_here(self) -> bool:
        # Set once when the engine starts and never changed: safe to read from the GUI thread.
        lab = getattr(self.bridge.engine, "lab", None)
        return bool(getattr(lab, "started_here", False))

    def may_close(self) -> bool:
        """True: close now. False: a question is shown; its answer closes the window again."""
        if self.answered or not (self.bridge.ready and self.bridge.running):
            return True
        running = self.syncing()
        if not running:
            return True
        if self.box is not None and self.box.isVisible():
            return False
        self._ask(running)
        return False

    def _ask(self, running: list[str]) -> None:
        what = ", ".join(running)
        noun = "Synchronization" if len(running) == 1 else "Synchronizations"
        box = QMessageBox(QMessageBox.Question, "A synchronization is running", "", QMessageBox.NoButton,
                          self.window)
        box.setObjectName("closeDuringSyncBox")
        if self.lab_started_here():
            box.setText(f"{noun} of {what} run on the array daemons this console started.")
            box.setInformativeText(
                "Leave the arrays running and mirroring continues without the console; 'mirrorctl' and a later "
                "console show its progress.\n\nStop the arrays and the synchronization stops with them; it resumes "
                "where it stopped (only the changed regions, not a full copy) when they start again.")
            keep = box.addButton("Close, keep mirroring", QMessageBox.AcceptRole)
            stop = box.addButton("Close and stop the arrays", QMessageBox.DestructiveRole)
            box.setDefaultButton(keep)
            answers = {keep: False, stop: True}
        else:
            box.setText(f"{noun} of {what} run on the array daemons.")
            box.setInformativeText("Mirroring continues after the console closes; 'mirrorctl' and a later console "
                                   "show its progress.")
            close = box.addButton("Close", QMessageBox.AcceptRole)
            box.setDefaultButton(close)
            answers = {close: None}
        cancel = box.addButton(QMessageBox.Cancel)
        box.setEscapeButton(cancel)
        if box.defaultButton() is None:
            box.setDefaultButton(cancel)

        def answered(button) -> None:
            if button in answers:
                self.answered, self.stop_arrays = True, answers[button]
                self.window.close()
        box.buttonClicked.connect(answered)
        self.box = box
        box.open()
        self.sig_question.emit(box)
