"""Role changes, failures and the Recovery Guru's fixes, driven through the console's real widgets.

Issue 12, part A: each test drives what an administrator clicks and asserts what the
console shows and what the engine then reports.
"""
from __future__ import annotations

import os

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPushButton

pytestmark = pytest.mark.timeout(90)
MIB = 1 << 20


def _mirror(qtbot, window, engine, group="erp", data_mib=2, primary="SiteA/db", secondary="SiteB/db_dr",
            reserved_percent=20):
    """A manual group SiteA -> SiteB with one pair, written and initially synchronized (Optimal)."""
    engine("create_group", group, "SiteA", "SiteB", sync_mode="manual")
    if data_mib:
        engine("host_write", primary, 0, os.urandom(data_mib * MIB))
    engine("add_pair", group, primary, secondary, reserved_percent=reserved_percent)
    sa, sv = secondary.split("/")

    def synced():
        p = window.state.pair(sa, sv)
        g = window.state.group(group, "SiteA")
        return p is not None and p.recovery_point_available and g is not None and g.status == "optimal"
    qtbot.waitUntil(synced, timeout=30000)


def _open_dialog(qtbot, window, action):
    with qtbot.waitSignal(window.mirror_actions.sig_dialog_opened, timeout=5000) as opened:
        action.trigger()
    dialog = opened.args[0]
    qtbot.addWidget(dialog)
    return dialog


def test_demote_to_secondary_makes_the_other_side_primary(qtbot, console, engine):
    bridge, window = console
    _mirror(qtbot, window, engine)
    assert window.tree.select(("group", "SiteA", "erp"))
    acts = window.mirror_actions
    qtbot.waitUntil(acts.demote.isEnabled, timeout=5000)
    dialog = _open_dialog(qtbot, window, acts.demote)
    assert dialog.windowTitle() == "Demote erp on SiteA"
    assert not dialog.force.isChecked()
    assert "SiteB becomes primary" in dialog.text.text()
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible() or bool(dialog.error.text()), timeout=30000)
    assert dialog.error.text() == "" and dialog.result() == QDialog.Accepted
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteA", "erp"), 2) == "Secondary"
                    and window.tree.text_of(("group", "SiteB", "erp"), 2) == "Primary", timeout=30000)
    sides = {g.array: g.role for g in engine("groups") if g.name == "erp"}
    assert sides == {"SiteA": "secondary", "SiteB": "primary"}


def test_forced_promotion_dialog_states_the_data_at_risk(qtbot, monkeypatch, console, engine):
    bridge, window = console
    asked = []
    monkeypatch.setattr("gui.dialogs.role_change.confirm", lambda *a, **k: asked.append(a[2]) or True)
    _mirror(qtbot, window, engine)
    window.lab.cut.trigger()
    qtbot.waitUntil(lambda: window.state.group("erp", "SiteB").status == "paused", timeout=20000)
    engine("host_write", "SiteA/db", 8 * MIB, os.urandom(3 * MIB))  # written after the cut: never on SiteB
    qtbot.waitUntil(lambda: window.state.group("erp", "SiteA").unsynchronized_bytes >= 3 * MIB, timeout=10000)
    assert window.tree.select(("group", "SiteB", "erp"))
    qtbot.waitUntil(window.mirror_actions.promote.isEnabled, timeout=5000)
    dialog = _open_dialog(qtbot, window, window.mirror_actions.promote)
    assert not dialog.force.isChecked()  # forcing is a decision, never the default
    risk = dialog.risk.text()
    assert dialog.risk.isVisible()
    assert "The recovery point on SiteB is" in risk and "old" in risk
    assert "3.00 MiB of writes not yet on SiteB" in risk
    # Without force the paused group cannot change roles: the refusal names the rule.
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.text().startswith("Refused"), timeout=10000)
    assert "Rule: a normal role change needs both arrays talking" in dialog.error.text()
    dialog.force.setChecked(True)
    assert dialog.buttons.button(QDialogButtonBox.Ok).text() == "Force promote"
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10000)
    assert asked and "3.00 MiB" in asked[0]
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteB", "erp"), 2) == "Primary", timeout=10000)


def test_forced_promotion_dialog_names_the_rule_when_refused(qtbot, monkeypatch, console, engine):
    bridge, window = console
    monkeypatch.setattr("gui.dialogs.role_change.confirm", lambda *a, **k: True)
    engine("create_group", "spare", "SiteA", "SiteB", sync_mode="manual")  # no members
    window.lab.cut.trigger()
    qtbot.waitUntil(lambda: window.state.group("spare", "SiteB") is not None
                    and window.state.group("spare", "SiteB").status == "paused", timeout=20000)
    assert window.tree.select(("group", "SiteB", "spare"))
    qtbot.waitUntil(window.mirror_actions.promote.isEnabled, timeout=5000)
    dialog = _open_dialog(qtbot, window, window.mirror_actions.promote)
    assert not dialog.precheck.isVisible()
    dialog.force.setChecked(True)
    assert dialog.precheck.isVisible() and "the group has no pairs" in dialog.precheck.text()
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.text().startswith("Refused"), timeout=10000)
    assert "Rule: the group has no pairs." in dialog.error.text()
    assert dialog.isVisible()
