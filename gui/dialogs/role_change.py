"""Change a group's role on one array: promote (normal or forced) or demote, with the rules explained."""
from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout

from gui.bridge import EngineBridge
from gui.messages import confirm
from gui.theme import status_label

FORCE_RULES = (
    "Forced promotion is allowed only when every pair has synchronized and has a consistent recovery point. "
    "It is refused when: a pair is still in its initial synchronization; a pair has no recovery point image "
    "(e.g. its reserved capacity filled up); the group has no pairs; the group is Failed, Role change pending or "
    "Role change in progress; a member volume or reserved capacity has failed. After a forced promotion the "
    "volumes are rolled back to the last recovery point and hosts can write.")


class RoleChangeDialog(QDialog):
    """Calls ``role_change(group, array, force)``; a refusal is shown with the forced-promotion rules."""

    def __init__(self, bridge: EngineBridge, group, parent=None):
        super().__init__(parent)
        self.bridge, self.group = bridge, group
        promote = group.role == "secondary"
        verb = "Promote" if promote else "Demote"
        self.setWindowTitle(f"{verb} {group.name} on {group.array}")
        self.resize(560, 300)
        paused = group.status == "paused"
        text = (f"<p><b>{verb}</b> the side of mirror consistency group <b>{group.name}</b> on <b>{group.array}</b> "
                f"to <b>{'primary' if promote else 'secondary'}</b>. The change acts on all "
                f"{len(group.pairs)} pair(s) of the group.</p>"
                f"<p>Status now: {status_label(group.status)}.</p>")
        if not paused:
            text += ("<p>Both arrays are talking: the change is lossless — the final changes are synchronized "
                     "before the roles are swapped. While <i>pending</i> it can still be cancelled.</p>")
        self.text = QLabel(text, wordWrap=True)
        self.force = QCheckBox("Force the change (the arrays cannot communicate)")
        self.force.setVisible(promote)
        self.force.setChecked(promote and paused)
        self.rules = QLabel(FORCE_RULES, objectName="hint", wordWrap=True)
        self.rules.setVisible(promote)
        self.error = QLabel("", objectName="error", wordWrap=True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText(verb)
        self.buttons.accepted.connect(self._apply)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        for w in (self.text, self.force, self.rules, self.error, self.buttons):
            lay.addWidget(w)

    def _apply(self) -> None:
        if self.force.isVisible() and self.force.isChecked() and not confirm(
                self, "Force the promotion",
                f"Force-promote {self.group.name} on {self.group.array}? Its volumes are rolled back to the last "
                "recovery point and become writable by hosts; the other side's later writes are not mirrored "
                "here. When the arrays talk again one side must be chosen to stay primary.", destructive=True):
            return
        self.buttons.setEnabled(False)
        self.error.setText("")
        self.bridge.call("role_change", self.group.name, self.group.array, force=self.force.isChecked(),
                         on_done=lambda _r: self.accept(), on_error=self._refused)

    def _refused(self, err) -> None:
        self.buttons.setEnabled(True)
        code = getattr(err, "code", "")
        self.error.setText(f"Refused: {err.message}" + (f" ({code})" if code else ""))
        if self.force.isChecked():
            self.rules.setVisible(True)  # the refusal names one rule; show them all beside it
