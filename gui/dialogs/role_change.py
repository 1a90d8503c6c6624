"""Change a group's role on one array: promote (normal or forced) or demote, with the rules explained.

Promote calls ``promote(group, array)``, demote ``demote(group, array)``: both the
engine and the fleet offer them, and each names the side that acts (calling
``role_change`` for a demotion asked the primary to become primary again, which the
engine rightly refused as arvmGroupAlreadyPrimary).

A forced promotion loses data: the dialog says how old the recovery point is and how
much the primary had not sent at last contact, before the administrator ticks
"force" (it never starts ticked).
"""
from __future__ import annotations

from datetime import datetime

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QVBoxLayout

from core.units import format_size
from gui import formatting as fmt
from gui.bridge import EngineBridge
from gui.messages import confirm
from gui.theme import status_label

FORCE_RULES = (
    "Forced promotion is allowed only when every pair has synchronized and has a consistent recovery point. "
    "It is refused when: a pair is still in its initial synchronization; a pair has no recovery point image "
    "(e.g. its reserved capacity filled up); the group has no pairs; the group is Failed, Role change pending or "
    "Role change in progress; a member volume or reserved capacity has failed. After a forced promotion the "
    "volumes are rolled back to the last recovery point and hosts can write.")

# The engine's refusal codes (core.service_roles.forced_promotion_refusal) -> the SPEC rule they apply.
RULE_OF_CODE = {
    "arvmGroupEmpty": "the group has no pairs",
    "arvmRoleConflict": "forced promotion is not allowed while a role conflict is being resolved",
    "arvmRoleChangePending": "the group is Role change pending",
    "arvmRoleChangeInProgress": "the group is Role change in progress",
    "arvmMemberVolumeFailed": "a member volume has failed",
    "arvmGroupFailed": "the group is Failed (a member or its reserved capacity failed)",
    "arvmInitialSyncInProgress": "a pair is still in its initial synchronization",
    "arvmRecoveryPointUnavailable": "a pair has no recovery point image",
    "arvmRemoteArrayUnreachable": "a normal role change needs both arrays talking",
}


def precheck_forced_promotion(group) -> str:
    """The forced-promotion rule the secondary side ``group`` (a GroupSnapshot) visibly breaks, or ''.

    Only what the snapshot shows; the engine checks every rule again and has the last word.
    """
    pairs = group.pairs
    if not pairs:
        return RULE_OF_CODE["arvmGroupEmpty"]
    if group.status == "role_conflict":
        return RULE_OF_CODE["arvmRoleConflict"]
    if group.status in ("role_change_pending", "role_change_in_progress"):
        return RULE_OF_CODE["arvmRoleChangePending" if group.status == "role_change_pending"
                            else "arvmRoleChangeInProgress"]
    if any(p.status == "failed" for p in pairs):
        return RULE_OF_CODE["arvmGroupFailed"]
    if any(not p.recovery_point_available for p in pairs):
        if group.last_recovery_point is None:
            return RULE_OF_CODE["arvmInitialSyncInProgress"]
        return RULE_OF_CODE["arvmRecoveryPointUnavailable"]
    return ""


def data_at_risk(group, primary, primary_seen: datetime | None) -> str:
    """What a forced promotion of the secondary side ``group`` gives up, in words.

    ``primary``: the primary side's snapshot as last received (None: never seen);
    ``primary_seen``: when it was received. Its unsynchronized bytes are the writes the
    secondary does not have.
    """
    age = group.recovery_point_age_seconds
    rp = (f"The recovery point on {group.array} is {fmt.age(age)} old (taken {fmt.timestamp(group.last_recovery_point)})"
          if age is not None else f"{group.array} holds no recovery point yet")
    if primary is None:
        lost = (f"How much {group.remote_array} wrote since is unknown: the console has not heard from "
                f"{group.remote_array}.")
    else:
        when = f" (reported {fmt.timestamp(primary_seen)})" if primary_seen is not None else ""
        lost = (f"At last contact{when} {primary.array} had {format_size(primary.unsynchronized_bytes)} "
                f"of writes not yet on {group.array}: the promoted volumes will not have them"
                + (", nor anything written since" if primary.status == "paused" else "") + ".")
    return f"{rp}. {lost}"


class RoleChangeDialog(QDialog):
    """Promote or demote one side of ``group``; a refusal is shown with the rule it applies."""

    def __init__(self, bridge: EngineBridge, group, parent=None, primary=None, primary_seen: datetime | None = None):
        super().__init__(parent)
        self.bridge, self.group = bridge, group
        self.promoting = promote = group.role == "secondary"
        verb = "Promote" if promote else "Demote"
        self.setWindowTitle(f"{verb} {group.name} on {group.array}")
        self.setMinimumWidth(520)
        paused = group.status == "paused"
        text = (f"<p><b>{verb}</b> the side of mirror consistency group <b>{group.name}</b> on <b>{group.array}</b> "
                f"to <b>{'primary' if promote else 'secondary'}</b>. The change acts on all "
                f"{len(group.pairs)} pair(s) of the group.</p>"
                f"<p>Status now: {status_label(group.status)}.</p>")
        if not promote:
            text += (f"<p>Hosts lose write access to the group's volumes on {group.array}; "
                     f"{group.remote_array} becomes primary.</p>")
        if not paused:
            text += ("<p>Both arrays are talking: the change is lossless \u2014 the final changes are synchronized "
                     "before the roles are swapped. While <i>pending</i> it can still be cancelled.</p>")
        else:
            text += (f"<p>{group.array} cannot reach {group.remote_array}: only a <b>forced</b> change is "
                     "possible.</p>")
        self.text = QLabel(text, wordWrap=True)
        self.risk = QLabel(data_at_risk(group, primary, primary_seen) if promote else "", objectName="warning",
                           wordWrap=True)
        self.risk.setVisible(promote)
        self.force = QCheckBox("Force the promotion (the arrays cannot communicate; data may be lost)" if promote
                               else "Force the demotion (the arrays cannot communicate)")
        self.force.setChecked(False)  # never pre-ticked: forcing is a decision, not a default
        self.force.toggled.connect(self._on_force)
        blocked = precheck_forced_promotion(group) if promote else ""
        self.precheck = QLabel(f"A forced promotion would be refused now: {blocked}." if blocked else "",
                               objectName="error", wordWrap=True)
        self.precheck.setVisible(False)
        self._blocked = blocked
        self.rules = QLabel(FORCE_RULES, objectName="hint", wordWrap=True)
        self.rules.setVisible(promote)
        self.error = QLabel("", objectName="error", wordWrap=True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.verb = verb
        self.buttons.button(QDialogButtonBox.Ok).setText(verb)
        self.buttons.accepted.connect(self._apply)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        for w in (self.text, self.risk, self.force, self.precheck, self.rules, self.error, self.buttons):
            lay.addWidget(w)
        self.adjustSize()

    def _on_force(self, on: bool) -> None:
        self.buttons.button(QDialogButtonBox.Ok).setText(f"Force {self.verb.lower()}" if on else self.verb)
        self.precheck.setVisible(on and bool(self._blocked))

    def _apply(self) -> None:
        forced = self.force.isChecked()
        if forced and self.promoting and not confirm(
                self, "Force the promotion",
                f"Force-promote {self.group.name} on {self.group.array}? Its volumes are rolled back to the last "
                f"recovery point and become writable by hosts.\n\n{self.risk.text()}\n\nWhen the arrays talk again "
                "one side must be chosen to stay primary.", destructive=True):
            return
        self.buttons.setEnabled(False)
        self.error.setText("")
        method = "promote" if self.promoting else "demote"
        self.bridge.call(method, self.group.name, self.group.array, force=forced,
                         on_done=lambda _r: self.accept(), on_error=self._refused)

    def _refused(self, err) -> None:
        self.buttons.setEnabled(True)
        code = getattr(err, "code", "")
        rule = RULE_OF_CODE.get(code)
        text = f"Refused: {err.message}" + (f" ({code})" if code else "")
        if rule:
            text += f"\nRule: {rule}."
        self.error.setText(text)
        if self.force.isChecked():
            self.rules.setVisible(True)  # the refusal names one rule; show them all beside it
        self.adjustSize()
