"""The console driven as an administrator would: real widgets, real array daemons on a fresh lab."""
from __future__ import annotations

import dataclasses
import time

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QWizard

from core.errors import MirrorError
from core.snapshots import SyncProgress
from daemon_lab import daemon_lab_factory, lab_engine
from gui.bridge import EngineBridge
from gui.console_state import ConsoleState
from gui.tree_panel import TreePanel

pytestmark = pytest.mark.timeout(60)


def _create_group_in_wizard(qtbot, window, name="payroll", interval=5):
    wiz = window.mirror_actions.open_create_group()
    qtbot.addWidget(wiz)
    page = wiz.arrays_page
    page.local.setCurrentText("SiteA")
    page.remote.setCurrentText("SiteB")
    qtbot.keyClicks(page.name, name)
    assert wiz.button(QWizard.NextButton).isEnabled()
    wiz.next()
    wiz.sync_page.interval.setValue(interval)
    assert wiz.sync_page.isComplete()
    wiz.next()
    assert wiz.currentPage() is wiz.thresholds_page
    with qtbot.waitSignal(wiz.sig_group_created, timeout=15000) as created:
        qtbot.mouseClick(wiz.button(QWizard.FinishButton), Qt.LeftButton)
    return created.args[0]


def test_console_shows_the_lab(console):
    bridge, window = console
    tree = window.tree
    for key in (("array", "SiteA"), ("array", "SiteB"), ("volume", "SiteA", "db"), ("volume", "SiteB", "db_dr")):
        assert tree.has(key)
    assert tree.text_of(("array", "SiteA"), 1) == "Online"
    assert window.engine_label.text() == "Managing the array daemons over HTTPS"
    # Nothing selected: no mirror action applies except creating a group.
    assert window.mirror_actions.new_group.isEnabled()
    assert not window.mirror_actions.resume.isEnabled()
    assert not window.mirror_actions.promote.isEnabled()
    # An array's details show what an iSCSI mirror's two arrays must share.
    assert tree.select(("array", "SiteA"))
    assert window.details._value_labels["l:iSCSI settings"].text() == (
        "VLAN none \u00b7 listening port 3260 \u00b7 jumbo frames off \u00b7 Ethernet priority not set")


def test_create_group_wizard_makes_a_real_group_on_both_arrays(qtbot, console, engine):
    bridge, window = console
    group = _create_group_in_wizard(qtbot, window, "payroll", interval=5)
    assert group.name == "payroll" and group.role == "primary"
    sides = {g.array: g for g in engine("groups") if g.name == "payroll"}
    assert set(sides) == {"SiteA", "SiteB"}
    assert sides["SiteA"].role == "primary" and sides["SiteB"].role == "secondary"
    assert sides["SiteB"].sync_interval_minutes == 5
    qtbot.waitUntil(lambda: window.tree.has(("group", "SiteA", "payroll"))
                    and window.tree.has(("group", "SiteB", "payroll")), timeout=5000)
    assert window.tree.text_of(("group", "SiteA", "payroll"), 2) == "Primary"
    assert window.tree.text_of(("group", "SiteB", "payroll"), 2) == "Secondary"
    # Selecting the secondary side offers Promote, never Demote; the primary side the reverse.
    assert window.tree.select(("group", "SiteB", "payroll"))
    acts = window.mirror_actions
    assert acts.promote.isEnabled() and not acts.demote.isEnabled() and not acts.resume.isEnabled()
    assert window.tree.select(("group", "SiteA", "payroll"))
    assert acts.demote.isEnabled() and not acts.promote.isEnabled()
    assert "payroll" in window.details.title.text()
    # The event log shows what happened.
    qtbot.waitUntil(lambda: any("payroll" in m for m in window.events.messages()), timeout=5000)


def test_invalid_settings_are_caught_on_their_wizard_page(qtbot, console):
    bridge, window = console
    wiz = window.mirror_actions.open_create_group()
    qtbot.addWidget(wiz)
    qtbot.keyClicks(wiz.arrays_page.name, "bad_interval")
    wiz.next()
    page = wiz.sync_page
    page.interval.setValue(0)
    assert not page.isComplete()
    assert not wiz.button(QWizard.NextButton).isEnabled()
    assert page.error.isVisible() and "out of range" in page.error.text()
    page.interval.setValue(2000)
    assert not wiz.button(QWizard.NextButton).isEnabled()
    page.manual.setChecked(True)  # manual synchronization has no interval to check
    assert wiz.button(QWizard.NextButton).isEnabled()
    page.scheduled.setChecked(True)
    page.interval.setValue(10)
    wiz.next()
    th = wiz.thresholds_page
    th.sync_alert.setValue(20)
    th.rp_alert.setValue(30)  # must be >= 2 x 20
    assert not wiz.button(QWizard.FinishButton).isEnabled()
    assert "at least twice" in th.error.text()
    th.rp_alert.setValue(40)
    assert wiz.button(QWizard.FinishButton).isEnabled()
    # A name that is already taken is caught on the first page too.
    wiz.back()
    wiz.back()
    wiz.arrays_page.name.setText("x" * 31)
    assert not wiz.button(QWizard.NextButton).isEnabled()
    assert wiz.arrays_page.error.text()


def test_create_pair_wizard_explains_ineligible_candidates_and_mirrors(qtbot, console, engine):
    bridge, window = console
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    qtbot.waitUntil(lambda: window.tree.has(("group", "SiteA", "erp")), timeout=5000)
    window.tree.select(("group", "SiteA", "erp"))
    assert window.mirror_actions.new_pair.isEnabled()
    wiz = window.mirror_actions.open_create_pair()
    qtbot.addWidget(wiz)
    assert wiz.group_page.group.currentData() == "erp"
    wiz.next()
    prim = wiz.primary_page
    names = [prim.volume.itemData(i).name for i in range(prim.volume.count())]
    assert names == ["db", "files", "logs"]
    prim.volume.setCurrentIndex(names.index("db"))
    prim.reserved.setValue(25)
    sec = wiz.secondary_page
    with qtbot.waitSignal(sec.sig_candidates_loaded, timeout=10000):
        wiz.next()
    rows = {sec.table.item(r, 0).text(): r for r in range(sec.table.rowCount())}
    assert set(rows) == {"db_dr", "files_dr", "logs_dr"}
    # logs_dr is smaller than db, files_dr sits on SAS drives: listed, greyed out, with the reason.
    for name, word in (("logs_dr", "less than"), ("files_dr", "")):
        r = rows[name]
        item = sec.table.item(r, 0)
        assert not item.flags() & Qt.ItemIsEnabled and not item.flags() & Qt.ItemIsSelectable
        assert sec.table.item(r, 5).text() == "No"
        reason = sec.table.item(r, 6).text()
        assert reason and word in reason
        assert item.toolTip().startswith("Not eligible: ")
    assert sec.table.item(rows["db_dr"], 5).text() == "Yes"
    assert not sec.choose("logs_dr")
    assert sec.choose("db_dr")
    assert sec.chosen().volume.name == "db_dr"
    sec.reserved.setValue(30)
    qtbot.waitUntil(lambda: sec.chosen() is not None, timeout=10000)  # reloaded for the new reserve
    wiz.next()
    assert wiz.currentPage() is wiz.summary_page
    assert "db_dr" in wiz.summary_page.text.text()
    with qtbot.waitSignal(wiz.sig_pair_created, timeout=15000):
        qtbot.mouseClick(wiz.button(QWizard.FinishButton), Qt.LeftButton)
    pairs = {(p.array, p.local_volume): p for p in engine("pairs", "erp")}
    assert set(pairs) == {("SiteA", "db"), ("SiteB", "db_dr")}
    assert pairs[("SiteA", "db")].secondary_ref == "SiteB/db_dr"
    rc = pairs[("SiteA", "db")].reserved_capacity
    assert rc.capacity >= 4 * 2**30 * 25 // 100
    qtbot.waitUntil(lambda: window.tree.has(("pair", "SiteA", "db")) and window.tree.has(("pair", "SiteB", "db_dr")),
                    timeout=5000)
    assert "SiteB/db_dr" in window.tree.text_of(("pair", "SiteA", "db"))
    # The pair's row applies pair actions; the secondary volume is no longer offered as a primary.
    window.tree.select(("pair", "SiteA", "db"))
    assert window.mirror_actions.remove_pair.isEnabled() and window.mirror_actions.reserved.isEnabled()
    # One row per pair (it was listed once per side), naming both volumes.
    t = window.details.pairs_table
    assert t.rowCount() == 1
    assert (t.item(0, 0).text(), t.item(0, 1).text()) == ("SiteA/db", "SiteB/db_dr")


def test_missing_engine_operation_is_an_error_not_a_crash(qtbot, console):
    bridge, window = console
    errors = []
    bridge.call("no_such_operation", on_done=lambda r: errors.append("answered"), on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert isinstance(errors[0], MirrorError) and errors[0].code == "notImplemented"


def test_engine_events_are_coalesced(qtbot, console, engine):
    bridge, window = console
    seen = []
    bridge.sig_engine_event.connect(lambda ev: seen.append(ev) if ev.kind == "progress" else None)
    # 301 changes told by SiteA's own engine, streamed to the console over its event stream.
    for _ in range(300):
        bridge.call("publish", "progress", "SiteA", "burst")
    engine("publish", "progress", "SiteA", "burst")
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    qtbot.wait(300)  # the stream's tail and two more flush periods: nothing left behind
    assert 1 <= len(seen) < 50


def test_stop_releases_the_arrays(qtbot, lab_home):
    bridge = EngineBridge(lab_home, engine_factory=daemon_lab_factory(), purpose="pytest-gui")
    with qtbot.waitSignal(bridge.sig_ready, timeout=15000):
        bridge.start()
    bridge.stop()
    assert not bridge.running
    with lab_engine(lab_home) as c:  # the arrays' locks and ports are free again: their daemons start
        assert [a.name for a in c.arrays_list()] == ["SiteA", "SiteB"]


def test_tree_of_1000_pairs_updates_quickly(qtbot, lab_home, client):
    """SPEC §5: a tree of 1,000 pairs updates in <= 100 ms (measured; asserted loosely for slow CI)."""
    arrays = client.arrays_list()
    volumes = client.volumes()
    client.create_group("big", "SiteA", "SiteB", sync_mode="manual")
    client.add_pair("big", "SiteA/db", "SiteB/db_dr")
    g = client.group("big", "SiteA")
    p0 = g.pairs[0]
    pairs = tuple(dataclasses.replace(p0, local_volume=f"vol{i:04d}", remote_volume=f"vol{i:04d}_dr")
                  for i in range(1000))
    # Never started: the tree only needs the state.
    bridge = EngineBridge(lab_home, engine_factory=daemon_lab_factory(), purpose="unused")
    state = ConsoleState(bridge)
    tree = TreePanel(state)
    qtbot.addWidget(tree)
    state.apply(arrays=arrays, volumes=volumes, groups=(dataclasses.replace(g, pairs=pairs),))
    assert tree.has(("pair", "SiteA", "vol0999"))
    # Every pair holds a transfer half sent: a failed one still reads "Failed", not "Synchronizing".
    held = SyncProgress(kind="interval", bytes_done=50, bytes_total=100, rate=0.0, eta_seconds=None, started=None)
    changed = tuple(dataclasses.replace(p, status="failed" if i % 2 else "synchronizing", progress=held)
                    for i, p in enumerate(pairs))
    t0 = time.perf_counter()
    state.apply(groups=(dataclasses.replace(g, pairs=changed, status="system_suspended"),))
    elapsed = time.perf_counter() - t0
    print(f"tree update of 1000 pairs: {elapsed * 1000:.1f} ms")
    assert tree.text_of(("pair", "SiteA", "vol0001"), 1) == "Failed"
    assert tree.text_of(("pair", "SiteA", "vol0000"), 1) == "Synchronizing 50%"
    assert elapsed < 0.5
    bridge.stop()


def test_a_filtered_tree_follows_status_changes(qtbot, lab_home, client):
    """The tree writes changed rows with its model's signals held: the filter must still see every change."""
    arrays, volumes = client.arrays_list(), client.volumes()
    client.create_group("big", "SiteA", "SiteB", sync_mode="manual")
    client.add_pair("big", "SiteA/db", "SiteB/db_dr")
    g = client.group("big", "SiteA")
    pairs = tuple(dataclasses.replace(g.pairs[0], local_volume=f"vol{i:02d}", remote_volume=f"vol{i:02d}_dr")
                  for i in range(10))
    bridge = EngineBridge(lab_home, engine_factory=daemon_lab_factory(), purpose="unused")  # never started
    state = ConsoleState(bridge)
    tree = TreePanel(state)
    qtbot.addWidget(tree)
    state.apply(arrays=arrays, volumes=volumes, groups=(dataclasses.replace(g, pairs=pairs),))
    tree.filter.setText("Failed")

    def shown_pairs(parent=QModelIndex()):  # the pairs the filtered tree shows, at any depth
        found = []
        for r in range(tree.proxy.rowCount(parent)):
            index = tree.proxy.index(r, 0, parent)
            if index.data().startswith("vol"):
                found.append(index.data().split(" ")[0])
            found += shown_pairs(index)
        return sorted(found)
    assert shown_pairs() == []
    failed = tuple(dataclasses.replace(p, status="failed") if i in (3, 7) else p for i, p in enumerate(pairs))
    state.apply(groups=(dataclasses.replace(g, pairs=failed),))
    assert shown_pairs() == ["vol03", "vol07"]
    assert tree.text_of(("pair", "SiteA", "vol03"), 1) == "Failed"
    state.apply(groups=(dataclasses.replace(g, pairs=pairs),))
    assert shown_pairs() == []
    bridge.stop()

def test_the_first_window_is_shown_before_the_engine_libraries_are_imported(tmp_path):
    """SPEC §5 (first window in <= 1.5 s): SQLAlchemy, numpy, pyqtgraph and aiohttp cost the first window
    about 1.5 s of imports; the engine thread imports the fleet's, the charts theirs when first shown."""
    import os
    import subprocess
    import sys

    code = ("import sys\n"
            "from core.cli.common import lab_fleet_factory\n"
            "from core.lab import default_home\n"
            "from gui.app import build_console, make_app\n"
            "app = make_app()\n"
            "bridge, window = build_console(sys.argv[1], lab_fleet_factory(), restore_layout=False)\n"
            "window.show()\n"
            "app.processEvents()\n"
            "print(' '.join(m for m in ('sqlalchemy', 'numpy', 'pyqtgraph', 'aiohttp') if m in sys.modules))\n"
            "bridge.stop()\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "lab")], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout
