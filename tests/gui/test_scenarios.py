"""DR scenarios driven through the console's real widgets on real array daemons (no sleeps).

Each test builds its mirrors through the engine (or the wizard), then acts only as an
administrator would: menu actions, dialogs, the Recovery Guru's buttons. Outcomes are
checked on what the console shows and on the engine's own answers.
"""
from __future__ import annotations

import os

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox, QPushButton, QWizard

pytestmark = pytest.mark.timeout(60)
MIB = 1 << 20


def _group_status(window, group: str, array: str = "SiteA") -> str | None:
    g = window.state.group(group, array)
    return g.status if g is not None else None


def _mirror(qtbot, window, engine, group="erp", data_mib=2):
    """A manual group SiteA -> SiteB with db -> db_dr, written and initially synchronized (Optimal)."""
    engine("create_group", group, "SiteA", "SiteB", sync_mode="manual")
    if data_mib:
        engine("host_write", "SiteA/db", 0, os.urandom(data_mib * MIB))
    engine("add_pair", group, "SiteA/db", "SiteB/db_dr")

    def synced():  # an empty group is Optimal too: wait for the pair's recovery point on the secondary
        p = window.state.pair("SiteB", "db_dr")
        return (p is not None and p.recovery_point_available
                and window.tree.text_of(("pair", "SiteA", "db"), 1) == "Optimal"
                and window.tree.text_of(("group", "SiteB", group), 1) == "Optimal")
    qtbot.waitUntil(synced, timeout=20000)


@pytest.fixture
def slow_link(engine):
    """Throttle the lab link (its relay) so an initial sync takes a moment."""
    engine("set_link", bandwidth=24 * MIB)


def test_create_pair_wizard_then_pair_goes_synchronizing_to_optimal(qtbot, slow_link, console, engine):
    """(a) After the wizard, the tree shows the pair synchronizing (with %) and then Optimal."""
    bridge, window = console
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    engine("host_write", "SiteA/db", 0, os.urandom(24 * MIB))  # ~1 s of initial sync on the throttled link
    qtbot.waitUntil(lambda: window.tree.has(("group", "SiteA", "erp")), timeout=5000)
    seen: list[str] = []

    def record(*_):
        text = window.tree.text_of(("pair", "SiteA", "db"), 1)
        if text and (not seen or seen[-1] != text):
            seen.append(text)
    window.state.sig_groups_changed.connect(record)

    window.tree.select(("group", "SiteA", "erp"))
    wiz = window.mirror_actions.open_create_pair()
    qtbot.addWidget(wiz)
    wiz.next()
    prim = wiz.primary_page
    names = [prim.volume.itemData(i).name for i in range(prim.volume.count())]
    prim.volume.setCurrentIndex(names.index("db"))
    sec = wiz.secondary_page
    with qtbot.waitSignal(sec.sig_candidates_loaded, timeout=10000):
        wiz.next()
    assert sec.choose("db_dr")
    wiz.next()
    assert wiz.summary_page.start_sync.isChecked()
    with qtbot.waitSignal(wiz.sig_pair_created, timeout=15000):
        qtbot.mouseClick(wiz.button(QWizard.FinishButton), Qt.LeftButton)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1] == "Optimal", timeout=30000)
    syncing = [s for s in seen if s.startswith("Synchronizing")]
    assert syncing, f"never saw the pair synchronizing: {seen}"
    assert any(s.endswith("%") for s in syncing)
    assert seen.index(syncing[0]) < len(seen) - 1
    assert window.tree.text_of(("group", "SiteA", "erp"), 1) == "Optimal"
    # The pair's details show its NBD export: the array's daemon serves the volume.
    window.tree.select(("pair", "SiteA", "db"))
    qtbot.waitUntil(lambda: window.details._value_labels.get("r:NBD export") is not None
                    and window.details._value_labels["r:NBD export"].text().startswith("nbd://127.0.0.1:"),
                    timeout=5000)
    assert window.details._value_labels["r:NBD export"].text().endswith("/db")


def test_link_cut_shows_guru_problem_and_its_fix_button_restores(qtbot, console, engine):
    """(b) Lab > Cut the link: "Communication lost" in the Guru and the status bar; its fix restores Optimal."""
    bridge, window = console
    _mirror(qtbot, window, engine)
    guru = window.guru
    window.lab.cut.trigger()
    qtbot.waitUntil(lambda: any(p.title.startswith("Communication lost") for p in guru.problems), timeout=20000)
    assert "problem(s)" in window.problems_label.text()
    row = next(i for i, p in enumerate(guru.problems) if p.title.startswith("Communication lost"))
    guru.list.setCurrentRow(row)
    assert "Communication lost" in guru.list.currentItem().text()
    assert "cannot reach" in guru.details.toPlainText()

    def fix_button():
        return next((b for b in guru.findChildren(QPushButton)
                     if b.text() == "Restore the lab link" and b.isVisible()), None)
    qtbot.waitUntil(lambda: fix_button() is not None, timeout=5000)
    qtbot.mouseClick(fix_button(), Qt.LeftButton)
    qtbot.waitUntil(lambda: not any(p.title.startswith("Communication lost") for p in guru.problems),
                    timeout=20000)
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteA", "erp"), 1) == "Optimal", timeout=20000)
    assert not engine("lab_faults")["link_cut"]
    qtbot.waitUntil(lambda: "Recovery Guru: no problems" in window.problems_label.text(), timeout=10000)


def _open_role_dialog(qtbot, window, group):
    assert window.tree.select(("group", "SiteB", group))
    qtbot.waitUntil(window.mirror_actions.promote.isEnabled, timeout=5000)
    with qtbot.waitSignal(window.mirror_actions.sig_dialog_opened, timeout=5000) as opened:
        window.mirror_actions.promote.trigger()
    dialog = opened.args[0]
    qtbot.addWidget(dialog)
    return dialog


def test_force_promote_from_role_dialog(qtbot, monkeypatch, console, engine):
    """(c) With the link cut, the secondary side is force-promoted; refusals show the rule."""
    bridge, window = console
    asked = []
    monkeypatch.setattr("gui.dialogs.role_change.confirm", lambda *a, **k: asked.append(a[1]) or True)
    _mirror(qtbot, window, engine)
    engine("create_group", "spare", "SiteA", "SiteB", sync_mode="manual")  # no members
    window.lab.cut.trigger()
    qtbot.waitUntil(lambda: _group_status(window, "erp", "SiteB") == "paused"
                    and window.state.group("spare", "SiteB") is not None, timeout=20000)

    # Refused: a group without members cannot be force-promoted; the dialog says which rule.
    dialog = _open_role_dialog(qtbot, window, "spare")
    dialog.force.setChecked(True)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.text().startswith("Refused"), timeout=10000)
    assert "no members" in dialog.error.text()
    assert dialog.rules.isVisible() and "no pairs" in dialog.rules.text()
    assert dialog.isVisible()
    dialog.reject()

    # Allowed: erp has a recovery point on SiteB.
    dialog = _open_role_dialog(qtbot, window, "erp")
    assert dialog.force.isVisible()
    dialog.force.setChecked(True)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible() or bool(dialog.error.text()), timeout=10000)
    assert dialog.error.text() == ""
    assert dialog.result() == QDialog.Accepted and asked == ["Force the promotion"] * 2
    assert dialog.error.text() == ""
    sides = {g.array: g for g in engine("groups") if g.name == "erp"}
    assert sides["SiteB"].role == "primary" and sides["SiteB"].host_writable
    assert engine("host_write", "SiteB/db_dr", 0, b"promoted" * 512) == 4096
    assert engine("host_read", "SiteB/db_dr", 0, 8) == b"promoted"
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteB", "erp"), 2) == "Primary", timeout=10000)


def test_workload_from_lab_menu_grows_unsynchronized_bytes(qtbot, console, engine):
    """(d) Lab > Start host workload: the group's unsynchronized bytes grow; Stop ends it."""
    bridge, window = console
    _mirror(qtbot, window, engine, data_mib=0)
    assert window.state.group("erp", "SiteA").unsynchronized_bytes == 0
    # The volume list is refetched after the pair event, apart from the group poll: let it land.
    qtbot.waitUntil(lambda: any(v.array == "SiteA" and v.name == "db" and v.role == "primary"
                                for v in window.state.volumes), timeout=10000)
    window.tree.select(("group", "SiteA", "erp"))
    dialog = window.lab.start_workload()
    qtbot.addWidget(dialog)
    assert dialog.refs() == ["SiteA/db"]  # mirrored primaries are preselected, secondaries not offered
    dialog.rate.setValue(16)
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=10000)
    assert dialog.error.text() == ""
    assert engine("workload") is not None
    qtbot.waitUntil(lambda: window.state.group("erp", "SiteA").unsynchronized_bytes > 0, timeout=10000)
    first = window.state.group("erp", "SiteA").unsynchronized_bytes
    qtbot.waitUntil(lambda: window.state.group("erp", "SiteA").unsynchronized_bytes > first, timeout=10000)
    row = next(r for r in range(window.details.groups_table.rowCount())
               if window.details.groups_table.item(r, 1).text() == "SiteA")
    qtbot.waitUntil(lambda: window.details.groups_table.item(row, 5).text() not in ("0 B", ""), timeout=5000)
    window.lab.workload_stop.trigger()
    qtbot.waitUntil(lambda: not (engine("workload") or {}).get("running", False), timeout=10000)


def test_dr_drill_from_mirroring_menu_shows_its_exports(qtbot, console, engine):
    """Start DR drill: a message lists the drill's NBD exports, the group's details too; Stop ends it."""
    bridge, window = console
    _mirror(qtbot, window, engine)
    acts = window.mirror_actions
    window.tree.select(("group", "SiteA", "erp"))
    qtbot.waitUntil(acts.drill_start.isEnabled, timeout=5000)
    assert not acts.drill_stop.isEnabled()
    with qtbot.waitSignal(acts.sig_dialog_opened, timeout=10000) as opened:
        acts.drill_start.trigger()
    box = opened.args[0]
    assert isinstance(box, QMessageBox)
    assert "SiteB/db_dr-drill" in box.text() and "nbd://127.0.0.1:" in box.text()
    box.close()
    labels = window.details._value_labels
    qtbot.waitUntil(lambda: "r:Drill export SiteB/db_dr-drill" in labels, timeout=5000)
    assert labels["r:Drill export SiteB/db_dr-drill"].text().endswith("/db_dr-drill")
    assert labels["r:DR drill"].text().startswith("running on SiteB")
    # The next change anywhere (a group made with mirrorctl) makes the console refetch its groups and the
    # lab's faults: the drill still runs on SiteB, and the console must still say so and offer to stop it.
    with qtbot.waitSignal(window.state.sig_drills_changed, timeout=3000, raising=False):
        engine("create_group", "other", "SiteA", "SiteB", sync_mode="manual")
    assert acts.drill_stop.isEnabled() and not acts.drill_start.isEnabled()
    acts.drill_stop.trigger()
    qtbot.waitUntil(lambda: labels.get("r:DR drill") is not None and labels["r:DR drill"].text() == "not running",
                    timeout=10000)
    qtbot.waitUntil(acts.drill_start.isEnabled, timeout=5000)
    # It ended on SiteB: the array starts a new drill of erp (it refuses one while one runs).
    assert engine("drill_start", "erp")["exports"]
    engine("drill_stop", "erp")


def test_long_running_operations_dock_lists_the_initial_sync_then_keeps_it(qtbot, slow_link, console, engine):
    """The LRO dock shows long_running_operations(): group, pair, kind, progress bar from bytes done/total;
    the finished sync stays listed with its outcome."""
    bridge, window = console
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    engine("host_write", "SiteA/db", 0, os.urandom(32 * MIB))
    engine("add_pair", "erp", "SiteA/db", "SiteB/db_dr")
    window.mirror_actions.lro.trigger()
    assert window.lro_dock.isVisible() and not window.lro_dock.isFloating()
    dialog = window.lro
    t = dialog.table
    # The row names both sides once the console's state has the new pair (the next poll).
    qtbot.waitUntil(lambda: t.rowCount() >= 1 and t.item(0, 0) is not None and t.item(0, 0).text() == "erp"
                    and "SiteB/db_dr" in t.item(0, 1).text(), timeout=10000)
    assert "SiteA/db" in t.item(0, 1).text()
    assert t.item(0, 2).text().startswith("Initial synchronization")
    from gui.details_panel import PROGRESS_ROLE
    pct = t.item(0, 7).data(PROGRESS_ROLE)
    assert pct is not None and 0.0 <= pct <= 100.0
    assert t.item(0, 4).text() != "0 B"
    qtbot.waitUntil(lambda: t.rowCount() == 0, timeout=30000)
    assert dialog.hint.text() == "No long running operations"
    h = dialog.history
    qtbot.waitUntil(lambda: h.rowCount() >= 1 and h.item(0, 4) is not None, timeout=10000)
    assert [h.item(0, c).text() for c in (1, 3, 4)] == ["erp", "Initial synchronization", "Committed"]
    assert "SiteA/db" in h.item(0, 2).text() and h.item(0, 5).text() != "0 B"
