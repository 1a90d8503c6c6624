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


def _small_mirror(qtbot, window, engine, group="erp"):
    """16 MiB volumes with the default 20 % reserved capacity (3.2 MiB): a few MiB of changes fill it."""
    engine("create_volume", "SiteA/v", "16MiB")
    engine("create_volume", "SiteB/v_dr", "16MiB")
    _mirror(qtbot, window, engine, group, data_mib=1, primary="SiteA/v", secondary="SiteB/v_dr")


def _guru_problem(qtbot, window, prefix: str, timeout=20000):
    """Wait until the Recovery Guru lists a problem whose id starts with ``prefix``; show it; return it."""
    guru = window.guru

    def shown():
        rows = [i for i, p in enumerate(guru.problems) if p.id.startswith(prefix)]
        if rows and guru.list.currentRow() != rows[0]:
            guru.list.setCurrentRow(rows[0])
        return bool(rows) and guru.problems[guru.list.currentRow()].id.startswith(prefix)
    qtbot.waitUntil(shown, timeout=timeout)
    return guru.problems[guru.list.currentRow()]


def _guru_button(qtbot, guru, prefix: str) -> QPushButton:
    """The shown problem's fix button whose label starts with ``prefix`` (buttons are rebuilt on refresh)."""
    found = []

    def find():
        found[:] = [guru.buttons.itemAt(i).widget() for i in range(guru.buttons.count())]
        found[:] = [b for b in found if isinstance(b, QPushButton) and b.text().startswith(prefix)]
        return bool(found)
    qtbot.waitUntil(find, timeout=10000)
    return found[0]


def _reserved(engine, array, volume):
    return next(p.reserved_capacity.capacity for g in engine("groups", array) for p in g.pairs
                if p.local_volume == volume)


def test_guru_fix_targets_the_secondary_whose_reserved_capacity_filled(qtbot, console, engine):
    bridge, window = console
    _small_mirror(qtbot, window, engine)
    before_primary = _reserved(engine, "SiteA", "v")
    before_secondary = _reserved(engine, "SiteB", "v_dr")
    engine("host_write", "SiteA/v", 0, os.urandom(8 * MIB))
    with pytest.raises(Exception, match="reserved capacity of secondary volume SiteB/v_dr is full"):
        engine("sync_now", "erp", wait=True)
    problem = _guru_problem(qtbot, window, "failed-pair:SiteA/v")
    assert "SiteB/v_dr" in problem.objects
    guru = window.guru
    grow = _guru_button(qtbot, guru, "Increase the reserved capacity of SiteB/v_dr")
    label, tip = grow.text(), grow.toolTip()
    with qtbot.waitSignal(window.mirror_actions.sig_dialog_opened, timeout=5000) as opened:
        qtbot.mouseClick(grow, Qt.LeftButton)
    dialog = opened.args[0]
    qtbot.addWidget(dialog)
    # The dialog names the secondary, what the growth takes from which pool, and asks first.
    assert dialog.ref == "SiteB/v_dr"
    assert "secondary" in dialog.what.text() and "SiteB/v_dr" in dialog.what.text()
    assert "from pool nvme_pool of SiteB" in dialog.takes.text() and "free now" in dialog.takes.text()
    assert "takes" in tip and "pool nvme_pool" in tip
    suggested = dialog.percent.value()
    assert suggested > 20 and label == f"Increase the reserved capacity of SiteB/v_dr to {suggested} %"
    assert _reserved(engine, "SiteB", "v_dr") == before_secondary  # nothing changed before the answer
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10000)
    assert _reserved(engine, "SiteB", "v_dr") == -(-16 * MIB * suggested // 100 // 4096) * 4096  # in 4 KiB units
    assert _reserved(engine, "SiteA", "v") == before_primary  # the primary's was never the cause
    # Resume now fits the delta: the pair returns to Optimal with the bytes on the secondary.
    _guru_problem(qtbot, window, "failed-pair:SiteA/v")
    qtbot.waitUntil(lambda: guru.button("Resume erp") is not None and guru.button("Resume erp").isEnabled(),
                    timeout=10000)
    qtbot.mouseClick(guru.button("Resume erp"), Qt.LeftButton)
    qtbot.waitUntil(lambda: engine("group", "erp", "SiteA").last_sync.outcome == "committed", timeout=30000)
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteA", "erp"), 1) == "Optimal", timeout=30000)
    assert engine("host_read", "SiteB/v_dr", 0, 8 * MIB) == engine("host_read", "SiteA/v", 0, 8 * MIB)


def test_repair_volume_then_resume_recovers_a_failed_secondary(qtbot, console, engine):
    bridge, window = console
    _mirror(qtbot, window, engine)
    acts = window.mirror_actions
    engine("volume_fail", "SiteB/db_dr")  # Lab > Fail volume
    _guru_problem(qtbot, window, "system-suspended:erp")
    guru = window.guru
    qtbot.waitUntil(lambda: guru.button("Repair volume SiteB/db_dr") is not None, timeout=5000)
    resume = guru.button("Resume erp")
    # Resume cannot act while the volume is failed: disabled, with the reason, in the Guru and the toolbar.
    assert resume is not None and not resume.isEnabled()
    assert "repair SiteB/db_dr first" in resume.toolTip()
    assert guru.blocked_note.isVisible() and "repair SiteB/db_dr first" in guru.blocked_note.text()
    assert window.tree.select(("group", "SiteA", "erp"))
    qtbot.waitUntil(lambda: "repair SiteB/db_dr first" in acts.resume.toolTip(), timeout=5000)
    assert not acts.resume.isEnabled()
    with pytest.raises(Exception, match="repair SiteB/db_dr first"):
        engine("guru_fix", "system-suspended:erp", "resume")
    qtbot.mouseClick(guru.button("Repair volume SiteB/db_dr"), Qt.LeftButton)
    problem = _guru_problem(qtbot, window, "waiting-resume:erp")
    # The group's resync policy is automatic: the Guru must not say it is manual.
    assert "manual" not in problem.cause and "repaired" in problem.cause
    # The toolbar's Resume follows the Guru: enabled while the Guru offers it.
    qtbot.waitUntil(acts.resume.isEnabled, timeout=10000)
    acts.resume.trigger()
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteA", "erp"), 1) == "Optimal", timeout=30000)
    qtbot.waitUntil(lambda: not any(p.id.startswith(("waiting-resume", "system-suspended")) for p in guru.problems),
                    timeout=10000)


def test_reserved_forecast_warns_before_the_secondary_fills(qtbot, console, engine):
    bridge, window = console
    _small_mirror(qtbot, window, engine)
    engine("host_write", "SiteA/v", 0, os.urandom(2 * MIB))
    engine("sync_now", "erp", wait=True)  # one measured interval: 2 MiB of unique changes
    assert not any(p.id.startswith("reserved-forecast") for p in engine("guru"))
    engine("host_write", "SiteA/v", 4 * MIB, os.urandom(3 * MIB))  # the next sync would need 3 of 3.2 MiB
    problem = _guru_problem(qtbot, window, "reserved-forecast:SiteB/v_dr")
    assert "the next sync needs about 3.0 MiB of SiteB/v_dr's 3.2 MiB reserved capacity" in problem.cause
    assert window.state.group("erp", "SiteA").status == "optimal"  # raised before anything failed
    guru = window.guru
    grow = _guru_button(qtbot, guru, "Increase the reserved capacity of SiteB/v_dr to ")
    with qtbot.waitSignal(window.mirror_actions.sig_dialog_opened, timeout=5000) as opened:
        qtbot.mouseClick(grow, Qt.LeftButton)
    dialog = opened.args[0]
    qtbot.addWidget(dialog)
    assert dialog.ref == "SiteB/v_dr" and "Recovery Guru" in dialog.why.text()
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10000)
    qtbot.waitUntil(lambda: not any(p.id.startswith("reserved-forecast") for p in guru.problems), timeout=10000)
    engine("sync_now", "erp", wait=True)  # fits now: no failed pair
    assert engine("group", "erp", "SiteA").status == "optimal"


def test_details_show_the_secondary_reserved_capacity_too(qtbot, console, engine):
    bridge, window = console
    _small_mirror(qtbot, window, engine)
    engine("increase_reserved_capacity", "SiteB/v_dr", 50)
    assert window.tree.select(("pair", "SiteA", "v"))
    labels = window.details._value_labels
    key = "l:Reserved capacity, secondary SiteB/v_dr"
    qtbot.waitUntil(lambda: key in labels and "of 8.00 MiB" in labels[key].text(), timeout=10000)
    assert "of 3.20 MiB" in labels["l:Reserved capacity, primary SiteA/v"].text()
    t = window.details.pairs_table
    col = t.columnCount() - 1
    assert t.horizontalHeaderItem(col).text() == "Reserved used (primary / secondary)"
    assert all(t.item(r, col).text().count("%") == 2 for r in range(t.rowCount()))
    # The group's details list the reserved capacity of both sides.
    assert window.tree.select(("group", "SiteA", "erp"))
    qtbot.waitUntil(lambda: "r:Reserved SiteB/v_dr (secondary)" in labels, timeout=5000)
    assert "of 8.00 MiB" in labels["r:Reserved SiteB/v_dr (secondary)"].text()


def test_reserved_forecast_sizes_a_new_pair_in_the_wizard(qtbot, console, engine):
    bridge, window = console
    _small_mirror(qtbot, window, engine)
    engine("host_write", "SiteA/v", 0, os.urandom(6 * MIB))
    engine("increase_reserved_capacity", "SiteB/v_dr", 60)
    engine("sync_now", "erp", wait=True)  # measured: 6 MiB of unique changes in one manual interval
    engine("create_volume", "SiteA/w", "32MiB")
    engine("create_volume", "SiteB/w_dr", "32MiB")
    qtbot.waitUntil(lambda: any(v.name == "w" for v in window.state.volumes), timeout=10000)
    window.tree.select(("group", "SiteA", "erp"))
    wiz = window.mirror_actions.open_create_pair()
    qtbot.addWidget(wiz)
    prim = wiz.primary_page
    assert "Size it for the unique bytes one interval changes" in prim.sizing.text()
    with qtbot.waitSignal(prim.sig_sizing_known, timeout=10000):
        wiz.next()
    names = [prim.volume.itemData(i).name for i in range(prim.volume.count())]
    prim.volume.setCurrentIndex(names.index("w"))
    # 1.5 x 6 MiB of a 32 MiB volume: 28.1 -> 29 %
    assert prim.suggested() == 29
    assert "changes about 6.00 MiB of unique data" in prim.advice.text() and "reserve 29 %" in prim.advice.text()
    assert prim.use_advice.isVisible() and prim.use_advice.text() == "Use 29 %"
    qtbot.mouseClick(prim.use_advice, Qt.LeftButton)
    assert prim.reserved.value() == 29 and not prim.use_advice.isVisible()


def test_workload_indicator_shows_targets_errors_and_stops(qtbot, console, engine):
    bridge, window = console
    _mirror(qtbot, window, engine)
    ind = window.workload
    assert not ind.isVisible()
    engine("start_workload", ["SiteA/db"], 8)
    qtbot.waitUntil(lambda: ind.isVisible() and "written" in ind.text.text(), timeout=10000)
    assert ind.text.text().startswith("Host workload: 8 MiB/s random \u2192 SiteA/db")
    qtbot.waitUntil(lambda: "/s \u00b7" in ind.text.text(), timeout=10000)  # the measured rate
    narrow = window.statusBar().minimumSizeHint().width()
    # After a demotion the hosts' writes fail: the indicator says so, and why.
    engine("demote", "erp", "SiteA")
    qtbot.waitUntil(lambda: "write error(s)" in ind.text.text(), timeout=30000)
    qtbot.waitUntil(lambda: "SiteA/db refuses host writes (secondary of group erp)" in ind.text.text(),
                    timeout=10000)
    # The long line is cut in the status bar (whole in its tooltip), not a reason to widen the window.
    assert window.statusBar().minimumSizeHint().width() <= narrow
    assert "refuses host writes" in ind.text.toolTip()
    qtbot.mouseClick(ind.stop, Qt.LeftButton)
    qtbot.waitUntil(lambda: not ind.isVisible(), timeout=10000)
    assert engine("workload") is None
    qtbot.waitUntil(lambda: any("Host workload started" in m for m in window.events.messages()), timeout=5000)
