"""Layout, remembered layout, charts, quitting: what the administrator sees at 1280x800 and 1920x1080."""
from __future__ import annotations

import os
import re
import types
from importlib import metadata

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from core import forecast
from core.guru import GuruAction, reserved_forecast_problem
from core.snapshots import SyncProgress

pytestmark = pytest.mark.timeout(90)
MIB = 1 << 20
LONG = "payroll_quarterly_ledger_2026"  # 29 characters: the longest group names an administrator gives


def _mirror(qtbot, window, engine, group=LONG, data_mib=2, **settings):
    engine("create_group", group, "SiteA", "SiteB", **({"sync_mode": "manual"} | settings))
    if data_mib:
        engine("host_write", "SiteA/db", 0, os.urandom(data_mib * MIB))
    engine("add_pair", group, "SiteA/db", "SiteB/db_dr")
    qtbot.waitUntil(lambda: window.tree.has(("pair", "SiteA", "db")), timeout=10000)


def _synced(qtbot, window, group):
    def done():
        p = window.state.pair("SiteB", "db_dr")
        return p is not None and p.recovery_point_available and window.tree.text_of(("group", "SiteA", group), 1) == \
            "Optimal"
    qtbot.waitUntil(done, timeout=20000)


@pytest.fixture
def slow_link(engine):
    """Throttle the lab link (its relay) so an initial sync takes a moment."""
    engine("set_link", bandwidth=16 * MIB)


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_tree_name_keeps_its_width_when_the_guru_shows_a_long_problem_and_the_tab_changes(qtbot, console, engine,
                                                                                          size):
    bridge, window = console
    window.resize(*size)
    _mirror(qtbot, window, engine)
    _synced(qtbot, window, LONG)
    tree, header = window.tree, window.tree.view.header()
    window.tree.select(("group", "SiteA", LONG))
    qtbot.wait(50)
    width, name_width = tree.width(), header.sectionSize(0)
    assert name_width >= 150
    window.tabs.setCurrentWidget(window.charts)
    qtbot.wait(50)
    engine("lab_link", True)  # two long "Communication lost: group ... is paused" problems
    qtbot.waitUntil(lambda: len(window.guru.problems) >= 1, timeout=20000)
    qtbot.wait(100)
    assert window.size().toTuple() == size  # nothing widened the window
    assert tree.width() == width and header.sectionSize(0) == name_width
    window.tabs.setCurrentWidget(window.details)
    qtbot.wait(50)
    assert tree.width() == width and header.sectionSize(0) == name_width
    # The Guru wraps its long titles instead of scrolling (or widening) sideways.
    assert window.guru.list.wordWrap()
    assert window.guru.list.horizontalScrollBar().maximum() == 0
    # A name too long for its column is cut in the middle; the tooltip has it whole.
    assert tree.view.textElideMode() == Qt.ElideMiddle
    idx = tree.proxy.mapFromSource(tree._items[("group", "SiteA", LONG)][0].index())
    assert idx.data(Qt.ToolTipRole).splitlines()[0].startswith(LONG)
    engine("lab_link", False)


def test_a_long_guru_fix_label_is_cut_in_its_button_not_a_reason_to_widen_the_window(qtbot, console):
    """Seen in a walk-through: 'Increase the reserved capacity of SiteA/db to 100 %' made the window 1413 px wide."""
    bridge, window = console
    window.resize(1280, 800)
    rate = forecast.ChangeRate(bytes_per_second=4096 * MIB / 60, interval_seconds=600, samples=3)
    volume = f"SiteB/{LONG}_disaster_recovery_copy"
    fc = forecast.forecast(volume, rate, 1.0, pending=0, capacity=819 * MIB, used=0, volume_capacity=4096 * MIB)
    label = f"Increase the reserved capacity of {volume} to 100 %"
    grow = GuruAction("increase-reserved-capacity", label, False, "asks before it changes", target=volume,
                      value=100.0)
    guru = window.guru
    qtbot.waitUntil(lambda: guru.status.text().startswith("No problems"), timeout=10000)  # its first answer
    guru.timer.stop()
    # A refresh an event started may still be on its way: its answer (the lab's: none) would
    # replace the problem shown here. Wait it out, then let no refresh start.
    qtbot.waitUntil(lambda: not guru._in_flight, timeout=10000)
    guru._in_flight = True
    guru._set_problems((reserved_forecast_problem(types.SimpleNamespace(
        name=LONG, sync_mode="scheduled", sync_interval_minutes=10), fc, grow),))
    guru._in_flight = True  # (it cleared the flag)
    qtbot.wait(100)
    button = guru.button(label)
    assert button is not None and button.isVisible()
    assert window.size().toTuple() == (1280, 800)  # nothing widened the window
    assert button.width() < button.sizeHint().width()  # the label is cut; the tooltip has it whole
    assert button.toolTip().startswith(label)


def test_tables_fit_without_horizontal_scrolling_at_1600_px_and_list_each_pair_once(qtbot, console, engine):
    bridge, window = console
    window.resize(1600, 900)
    _mirror(qtbot, window, engine)
    _synced(qtbot, window, LONG)
    window.tree.select(("group", "SiteA", LONG))
    groups, pairs = window.details.groups_table, window.details.pairs_table
    qtbot.waitUntil(lambda: groups.rowCount() == 2 and pairs.rowCount() == 1, timeout=5000)
    qtbot.wait(100)
    for t in (groups, pairs):
        assert t.horizontalScrollBar().maximum() == 0, ([t.columnWidth(c) for c in range(t.columnCount())], t.viewport().width(), t.horizontalHeader().length())
    # The group's long name is whole, or whole in its tooltip.
    assert groups.item(0, 0).text() == LONG


def test_state_and_settings_get_their_contents_height(qtbot, console, engine):
    bridge, window = console
    window.resize(1920, 1080)
    _mirror(qtbot, window, engine)
    window.tree.select(("group", "SiteA", LONG))
    details = window.details

    def fits() -> bool:  # the layout settles over a few event-loop turns (slower on a loaded machine)
        shown = details.top_scroll.viewport().height()
        needed = details.top.sizeHint().height()
        return shown >= needed - 4 or details.top_scroll.verticalScrollBar().maximum() <= 4
    # At 1920x1080 every row of State and Settings is visible (it was a 4-line scroll area).
    qtbot.waitUntil(fits, timeout=3000)
    assert details.top_scroll.viewport().height() > 200


def test_layout_restored_on_the_next_start(qtbot, open_console, lab_home, isolated_settings):
    with open_console(lab_home, purpose="pytest-gui") as (bridge, window):
        window.resize(1500, 950)
        qtbot.wait(50)
        window.split.setSizes([520, 600])
        window.tree.view.header().resizeSection(1, 170)
        window.events.view.horizontalHeader().resizeSection(0, 222)
        window.guru_dock.hide()
        qtbot.wait(50)
        tree_width = window.split.sizes()[0]
        window.close()
    assert list(isolated_settings.rglob("*.ini")), "the layout was not written to the test's settings"
    with open_console(lab_home, purpose="pytest-gui") as (bridge, window):
        qtbot.wait(50)
        assert window.size().toTuple() == (1500, 950)
        assert window.split.sizes()[0] == tree_width
        assert window.tree.view.header().sectionSize(1) == 170
        assert window.events.view.horizontalHeader().sectionSize(0) == 222
        assert not window.guru_dock.isVisible() and window.events_dock.isVisible()


def test_tree_name_marks_a_running_dr_drill(qtbot, console, engine):
    bridge, window = console
    _mirror(qtbot, window, engine, group="erp")
    _synced(qtbot, window, "erp")
    window.tree.select(("group", "SiteA", "erp"))
    with qtbot.waitSignal(window.mirror_actions.sig_dialog_opened, timeout=10000) as opened:
        window.mirror_actions.drill_start.trigger()
    box = opened.args[0]
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", box.text()), box.text()  # times as everywhere, not ISO
    assert re.search(r"recovery point of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", box.text()), box.text()
    box.close()
    qtbot.waitUntil(lambda: "[DR drill]" in (window.tree.text_of(("group", "SiteB", "erp")) or ""), timeout=10000)
    assert window.tree.text_of(("group", "SiteA", "erp")) == "erp"  # the drill runs on the secondary's array
    window.tree.select(("group", "SiteB", "erp"))
    window.mirror_actions.drill_stop.trigger()
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteB", "erp")) == "erp", timeout=10000)


# -- charts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_chart_time_axes_have_several_labels_that_do_not_overlap(qtbot, console, engine, size):
    bridge, window = console
    window.resize(*size)
    _mirror(qtbot, window, engine, group="erp")
    window.tabs.setCurrentWidget(window.charts)
    qtbot.waitUntil(lambda: window.charts.group_box.currentText() == "erp", timeout=5000)
    qtbot.wait(300)
    for plot in window.charts.plots:
        axis = plot.getAxis("bottom")
        (x0, x1), _ = plot.getViewBox().viewRange()
        width = axis.geometry().width()
        ticks = [v for _, vs in axis.tickValues(x0, x1, width) for v in vs if x0 <= v <= x1]
        labels = axis.tickStrings(ticks, 1, ticks[1] - ticks[0] if len(ticks) > 1 else 60)
        assert len(ticks) >= (3 if width >= 300 else 2), (width, labels)  # DateAxisItem drew one
        assert all(len(s) in (5, 8) and s[2] == ":" for s in labels)  # 12:41 or 12:41:30, never a raw timestamp
        spacing = (ticks[1] - ticks[0]) / (x1 - x0) * width
        assert spacing >= max(axis._text_width(s) for s in labels) - 18  # the labels fit side by side


def test_chart_readout_legend_and_host_writes_beside_sync_throughput(qtbot, console, engine):
    bridge, window = console
    window.resize(1920, 1080)
    _mirror(qtbot, window, engine, group="erp")
    _synced(qtbot, window, "erp")
    charts = window.charts
    window.tabs.setCurrentWidget(charts)
    engine("start_workload", ["SiteA/db"], 4)
    try:
        # The workload's rate shows up as the group's host writes (the volumes' byte counters, each second).
        def host_rate():
            s = charts.series.get("erp")
            recent = [v for v in list(s.host)[-5:] if np.isfinite(v)] if s else []
            return recent[-1] if recent else 0.0
        qtbot.waitUntil(lambda: 2.5 <= host_rate() <= 6.0, timeout=15000)
    finally:
        engine("stop_workload")
    legend = [label.text for _, label in charts.p_rate.getPlotItem().legend.items]
    assert legend[:2] == ["Synchronization", "Host writes"]
    assert [label.text for _, label in charts.p_reserved.getPlotItem().legend.items] == ["Primary side",
                                                                                        "Secondary side"]
    # The mouse over the throughput chart reads the values at that time.
    plot = charts.p_rate
    vb = plot.getViewBox()
    qtbot.wait(200)
    (x0, x1), _ = vb.viewRange()
    scene_pos = vb.mapViewToScene(pg_point(x1 - (x1 - x0) * 0.02, 0))
    view_pos = plot.mapFromScene(scene_pos)
    QTest.mouseMove(plot.viewport(), QPoint(int(view_pos.x()), int(view_pos.y()) - 10))
    readout = charts.readouts[plot]
    qtbot.waitUntil(lambda: "Host writes:" in readout.text, timeout=3000)
    first, *values = readout.text.splitlines()
    assert len(first) == 19 and first[4] == "-" and first[10] == " "  # 2026-11-29 12:41:30, as everywhere
    assert any(v.startswith("Synchronization: ") and v.endswith(" MiB/s") for v in values)
    assert readout.label.isVisible()


def pg_point(x, y):
    from PySide6.QtCore import QPointF
    return QPointF(x, y)


def test_chart_y_axis_comes_down_when_values_fall(qtbot, console, engine, monkeypatch):
    """A 200 MiB/s burst six minutes ago must not flatten the last five minutes' 1 MiB/s."""
    import dataclasses

    import gui.charts_panel as charts_module
    
    bridge, window = console
    _mirror(qtbot, window, engine, group="erp")
    _synced(qtbot, window, "erp")
    charts = window.charts
    window.tabs.setCurrentWidget(charts)
    charts.timer.stop()  # the test feeds the samples, on its own clock
    g = window.state.group("erp", "SiteA")
    now = [1_800_000_000.0]
    monkeypatch.setattr(charts_module.time, "time", lambda: now[0])

    def feed(rate_mib, seconds):
        burst = dataclasses.replace(g, progress=SyncProgress("interval", 1, 2, rate_mib * MIB, 1.0))
        window.state.apply(groups=(burst,) + tuple(x for x in window.state.groups if x is not g and
                                                   not (x.name == "erp" and x.array == "SiteA")))
        for _ in range(seconds * 2):
            now[0] += 0.5
            charts._tick()
    feed(200, 10)
    charts._redraw()
    qtbot.wait(100)  # pyqtgraph applies the auto range when it paints
    assert charts.p_rate.getViewBox().viewRange()[1][1] >= 150
    feed(1, 360)
    charts._redraw()
    qtbot.wait(100)
    top = charts.p_rate.getViewBox().viewRange()[1][1]
    assert 1 <= top < 5, top


# -- quitting, About ---------------------------------------------------------------------------------
def test_quit_is_ctrl_q_and_about_shows_the_version(qtbot, console):
    bridge, window = console
    assert window.quit_action.shortcut() == QKeySequence("Ctrl+Q")
    assert window.quit_action in window.menuBar().actions()[0].menu().actions()
    box = window.show_about()
    assert metadata.version("async-mirror-console") in box.text()
    box.close()
    window.quit_action.trigger()  # nothing synchronizing: closes at once
    assert not window.isVisible()


def test_quit_during_a_sync_on_daemons_says_mirroring_continues(qtbot, slow_link, console, engine):
    """The console did not start the arrays: one question, Cancel keeps it open; after Close the sync goes on."""
    bridge, window = console
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    engine("host_write", "SiteA/db", 0, os.urandom(48 * MIB))
    engine("add_pair", "erp", "SiteA/db", "SiteB/db_dr")
    qtbot.waitUntil(lambda: (g := window.state.group("erp", "SiteA")) is not None and g.progress is not None,
                    timeout=10000)
    with qtbot.waitSignal(window.close_guard.sig_question, timeout=3000) as asked:
        window.quit_action.trigger()
    box: QMessageBox = asked.args[0]
    text = box.text() + " " + box.informativeText()
    assert "erp (" in text and "run on the array daemons" in text and "Mirroring continues" in text
    assert "this console started" not in text  # nothing to stop: the console did not start them
    assert window.isVisible()
    box.button(QMessageBox.Cancel).click()
    qtbot.wait(50)
    assert window.isVisible()  # Cancel keeps the console (and the sync) running
    with qtbot.waitSignal(window.close_guard.sig_question, timeout=3000) as asked:
        window.close()
    assert [b.text() for b in asked.args[0].buttons() if b.text() != "Cancel"] == ["Close"]
    next(b for b in asked.args[0].buttons() if b.text() == "Close").click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=3000)
    assert window.stop_arrays_on_exit is None  # nothing else to decide
    # The window is gone; the arrays go on with the initial synchronization by themselves.
    at_close = (engine("group", "erp", "SiteA").progress or SyncProgress("initial", 0, 0, 0.0, None)).bytes_done

    def went_on():
        g = engine("group", "erp", "SiteA")
        return g.last_recovery_point is not None or (g.progress is not None and g.progress.bytes_done > at_close)
    qtbot.waitUntil(went_on, timeout=30000)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_quit_during_a_sync_on_daemons_this_console_started_asks_once_and_mirroring_continues(
        qtbot, open_console, lab_home, capsys):
    """Daemon mode, the console started the lab: one question decides; "keep mirroring" leaves the sync running."""
    import json

    from core.cli.common import lab_fleet_factory
    from core.cli.main import main
    from core.lab.supervisor import lab_down

    def mirrorctl(*args):
        assert main(["--home", str(lab_home), "--json", *args]) == 0
        return json.loads(capsys.readouterr()[0])

    def group_show():
        return mirrorctl("group", "show", "erp", "--array", "SiteA")
    try:
        with open_console(lab_home, purpose="pytest-gui-daemons", engine_factory=lab_fleet_factory()) as (bridge,
                                                                                                          window):
            assert window.close_guard.lab_started_here()
            mirrorctl("lab", "link", "set", "--bandwidth", "16MiB")  # the relay it started: the sync takes a while

            def call(method, *args, **kwargs):
                box = {}
                bridge.call(method, *args, on_done=lambda r: box.setdefault("ok", r),
                            on_error=lambda e: box.setdefault("err", e), **kwargs)
                qtbot.waitUntil(lambda: bool(box), timeout=20000)
                assert "err" not in box, box.get("err")
            call("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
            call("host_write", "SiteA/db", 0, os.urandom(64 * MIB))
            call("add_pair", "erp", "SiteA/db", "SiteB/db_dr")
            qtbot.waitUntil(lambda: (g := window.state.group("erp", "SiteA")) is not None and g.progress is not None,
                            timeout=20000)
            with qtbot.waitSignal(window.close_guard.sig_question, timeout=3000) as asked:
                window.quit_action.trigger()
            box = asked.args[0]
            text = box.text() + " " + box.informativeText()
            assert "array daemons this console started" in text and "continues without the console" in text
            labels = [b.text() for b in box.buttons()]
            assert "Close, keep mirroring" in labels and "Close and stop the arrays" in labels
            next(b for b in box.buttons() if b.text() == "Close, keep mirroring").click()
            qtbot.waitUntil(lambda: not window.isVisible(), timeout=3000)
            assert window.stop_arrays_on_exit is False  # mirror-console will not ask again
        # The console is gone; the arrays finish the initial synchronization by themselves.
        deadline = 60
        while deadline > 0 and not group_show().get("lastRecoveryPoint"):
            qtbot.wait(500)
            deadline -= 0.5
        assert group_show().get("lastRecoveryPoint")
    finally:
        lab_down(lab_home)
