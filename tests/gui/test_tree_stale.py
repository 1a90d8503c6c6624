"""An array that does not answer: its groups show their last known state, greyed, and say so."""
from __future__ import annotations

from PySide6.QtCore import Qt

from gui.tree_panel import STALE, STALE_BRUSH


def test_groups_of_an_array_that_stopped_show_their_last_known_state(qtbot, console, engine):
    bridge, window = console
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    engine("add_pair", "erp", "SiteA/db", "SiteB/db_dr")
    qtbot.waitUntil(lambda: window.tree.has(("group", "SiteB", "erp")), timeout=10000)
    assert not window.tree.text_of(("group", "SiteB", "erp"), 1).endswith("(last known)")
    engine("array_stop", "SiteB")
    qtbot.waitUntil(lambda: window.tree.text_of(("array", "SiteB"), 1) == "Offline", timeout=10000)
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteB", "erp"), 1).endswith("(last known)"), timeout=10000)
    item = window.tree._items[("group", "SiteB", "erp")][0]
    assert item.data(Qt.ForegroundRole) == STALE_BRUSH
    assert item.data(Qt.ToolTipRole).splitlines()[1].startswith(f"{STALE}: SiteB does not answer")
    assert window.tree._items[("group", "SiteA", "erp")][0].data(Qt.ForegroundRole) is None  # SiteA answers
    engine("array_start", "SiteB")
    qtbot.waitUntil(lambda: not window.tree.text_of(("group", "SiteB", "erp"), 1).endswith("(last known)"),
                    timeout=10000)
    assert item.data(Qt.ForegroundRole) is None
