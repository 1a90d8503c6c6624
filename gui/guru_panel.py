"""Recovery Guru: current problems, their cause, affected objects, steps, and fix buttons."""
from __future__ import annotations

from html import escape

from PySide6.QtCore import QTimer, Qt, Signal
from PySide6.QtWidgets import (QLabel, QListWidget, QListWidgetItem, QPushButton, QSplitter,
                               QTextBrowser, QVBoxLayout, QWidget)

from gui.bridge import EngineBridge
from gui.elided import ElidedButton
from gui.messages import confirm, error_handler
from gui.theme import status_icon

REFRESH_MS = 3000


class GuruPanel(QWidget):
    """Lists ``engine.guru()`` problems; a fix button runs ``guru_fix(problem, action)``.

    Two kinds of fix act on an object the cause names, which may be on the other array
    of the pair: "Repair volume" calls ``volume_repair(target)`` and a reserved-capacity
    increase is handed to the console (``sig_console_action``), which shows what it
    takes from which pool and asks first. An action that cannot act now is shown
    disabled, with the reason beside it.
    """

    sig_problem_count = Signal(int)
    """How many problems the Recovery Guru currently lists (-1 when it cannot tell)."""
    sig_problems_changed = Signal(tuple)
    """tuple[core.guru.Problem]: the problems now listed (the Mirroring actions follow them)."""
    sig_console_action = Signal(object, object)
    """(Problem, GuruAction) the console carries out itself after asking: a reserved-capacity increase."""

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.problems: tuple = ()
        self.list = QListWidget()
        # Long titles wrap inside the dock: unwrapped they widened the dock, the window, and squeezed the tree.
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListWidget.Adjust)
        self.list.currentRowChanged.connect(self._show)
        self.details = QTextBrowser()
        self.details.setOpenExternalLinks(False)
        self.buttons = QVBoxLayout()  # one fix per line: side by side, three long labels widened the window
        self.status = QLabel("Checking for problems\u2026", objectName="hint", wordWrap=True)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.details, 1)
        rl.addLayout(self.buttons)
        self.blocked_note = QLabel("", objectName="hint", wordWrap=True)
        self.blocked_note.setVisible(False)
        rl.addWidget(self.blocked_note)
        split = QSplitter(Qt.Vertical)  # the dock is narrow: problems above, details below
        split.addWidget(self.list)
        split.addWidget(right)
        split.setSizes([140, 200])
        self.list.setMinimumWidth(110)
        self.details.setMinimumWidth(150)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.status)
        lay.addWidget(split, 1)
        self._in_flight = False
        self._show(-1)
        self.timer = QTimer(self, interval=REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        bridge.sig_ready.connect(self.refresh)
        bridge.sig_ready.connect(self.timer.start)
        bridge.sig_engine_event.connect(self._on_event)

    def _on_event(self, ev) -> None:
        if ev.kind in ("guru", "group", "pair", "link", "array", "volume"):
            self.refresh()

    def refresh(self) -> None:
        if self._in_flight:
            return
        self._in_flight = True
        self.bridge.call("guru", on_done=self._set_problems, on_error=self._unavailable)

    def _unavailable(self, err) -> None:
        self._in_flight = False
        self.status.setText(f"Recovery Guru unavailable: {err.message}")
        self.sig_problem_count.emit(-1)

    def _set_problems(self, problems) -> None:
        self._in_flight = False
        problems = tuple(problems)
        self.sig_problem_count.emit(len(problems))
        if problems != self.problems:
            self.sig_problems_changed.emit(problems)
        self.status.setText(f"{len(problems)} problem(s) need attention" if problems
                            else "No problems: the storage arrays are optimal")
        if problems == self.problems:
            return
        keep = self.problems[self.list.currentRow()].id if 0 <= self.list.currentRow() < len(self.problems) else None
        self.problems = problems
        self.list.blockSignals(True)
        self.list.clear()
        for p in problems:
            item = QListWidgetItem(status_icon(p.severity), p.title)
            item.setToolTip(", ".join(p.objects))
            self.list.addItem(item)
        self.list.blockSignals(False)
        ids = [p.id for p in problems]
        self.list.setCurrentRow(ids.index(keep) if keep in ids else (0 if problems else -1))
        self._show(self.list.currentRow())

    def _show(self, row: int) -> None:
        while self.buttons.count():
            w = self.buttons.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.blocked_note.setVisible(False)
        if not 0 <= row < len(self.problems):
            self.details.setHtml(
                "<p style='color:#5a6b7d'>Select a problem to see its cause and how to fix it.</p>" if self.problems
                else "<p style='color:#2e7d32'><b>No problems.</b></p><p style='color:#5a6b7d'>When something needs "
                     "attention (a lost link, a failed volume, an old recovery point, a full reserved capacity) it "
                     "is listed above with its cause, the recovery steps and buttons that carry out the fix.</p>")
            return
        p = self.problems[row]
        steps = "".join(f"<p style='margin:2px 0 2px 8px'>{escape(s)}</p>" for s in p.steps)  # numbered by core
        objects = "".join(f"<li>{escape(o)}</li>" for o in p.objects)
        self.details.setHtml(
            f"<h3>{escape(p.title)}</h3><p><b>Severity:</b> {escape(str(p.severity).capitalize())}</p>"
            f"<p><b>Affected objects:</b></p><ul>{objects}</ul>"
            f"<p><b>Cause:</b> {escape(p.cause)}</p><p><b>Recovery steps:</b></p>{steps}")
        self.buttons.addStretch(1)
        notes = []
        for action in p.actions:
            b = ElidedButton(action.label, objectName=f"guru-action-{action.id}")  # a long label never widens the dock
            b.setProperty("destructive", bool(action.destructive))
            b.setProperty("primary", not action.destructive)
            if getattr(action, "blocked", ""):
                b.setEnabled(False)
                b.setToolTip(f"Not now: {action.blocked}")
                notes.append(f"{action.label}: not now — {action.blocked}.")
            else:
                b.setToolTip(f"{action.label}\n{action.detail}" if action.detail else action.label)
            b.clicked.connect(lambda _=False, a=action, pid=p.id: self._fix(pid, a))
            self.buttons.addWidget(b)
        self.blocked_note.setText("\n".join(notes))
        self.blocked_note.setVisible(bool(notes))

    def button(self, label: str) -> QPushButton | None:
        """The fix button labelled ``label`` of the problem shown (tests and screenshots)."""
        for i in range(self.buttons.count()):
            w = self.buttons.itemAt(i).widget()
            if isinstance(w, QPushButton) and w.text() == label:
                return w
        return None

    def _fix(self, problem_id: str, action) -> None:
        label = action.label
        problem = next((p for p in self.problems if p.id == problem_id), None)
        if action.id == "increase-reserved-capacity" and problem is not None:
            self.sig_console_action.emit(problem, action)  # the console's dialog shows the cost and asks
            return
        if action.destructive and not confirm(self, label, f"{action.detail}\n\nThis cannot be undone. Continue?",
                                              True):
            return
        if action.id == "repair-volume" and getattr(action, "target", ""):
            # The failed volume may be on the other array: its own API repairs it (engine and fleet alike).
            self.bridge.call("volume_repair", action.target, on_done=lambda _r: self.refresh(),
                             on_error=error_handler(self, label))
            return
        self.bridge.call("guru_fix", problem_id, action.id, on_done=lambda _r: self.refresh(),
                         on_error=error_handler(self, label))
