"""An array that does not answer: its groups show their last known state, greyed, and say so.

In the tree and in the details' tables alike: a table that still said a plain "Optimal"
with a green mark while the array was down looked healthy (seen in the walk-through).
And no status is cut to fit: "Role conflict" read "Role …" in a narrow window.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStyleOptionViewItem

from gui.details_panel import ICON_ROLE
from gui.theme import LAST_KNOWN, STALE, STALE_BRUSH


def _group_status(window, array: str) -> tuple[str, object, object]:
    """The details' groups table (nothing selected: all arrays): ``array``'s Status cell (text, colour, icon)."""
    t = window.details.groups_table
    row = next((r for r in range(t.rowCount()) if t.item(r, 1) and t.item(r, 1).text() == array), None)
    if row is None:  # not listed yet: the table refreshes at most 5 times a second
        return "", None, None
    cell = t.item(row, 3)
    return cell.text(), cell.data(Qt.ForegroundRole), cell.data(ICON_ROLE)


def _drawn_status(window, key: tuple) -> str:
    """The text the tree draws in ``key``'s Status cell, the column narrowed to "Opt… (last known)" and a margin.

    Too narrow for that and a status mark: a row with one (a volume's) gives up the mark.
    """
    view, item = window.tree.view, window.tree._items[key][1]
    index = window.tree.proxy.mapFromSource(item.index())
    metrics = view.fontMetrics()
    view.header().resizeSection(1, metrics.horizontalAdvance(item.text()[:3] + "\u2026" + LAST_KNOWN) + 12)
    option = QStyleOptionViewItem()
    option.rect = view.visualRect(index)
    view.itemDelegateForColumn(1).initStyleOption(option, index)
    assert option.fontMetrics.horizontalAdvance(option.text) <= option.rect.width()
    return option.text


def test_groups_of_an_array_that_stopped_show_their_last_known_state(qtbot, console, engine):
    bridge, window = console
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    engine("add_pair", "erp", "SiteA/db", "SiteB/db_dr")
    rows = (("group", "SiteB", "erp"), ("pair", "SiteB", "db_dr"), ("pair", "SiteA", "db"))
    qtbot.waitUntil(lambda: all(window.tree.has(key) for key in rows), timeout=10000)
    assert not window.tree.text_of(("group", "SiteB", "erp"), 1).endswith("(last known)")
    engine("array_stop", "SiteB")
    qtbot.waitUntil(lambda: window.tree.text_of(("array", "SiteB"), 1) == "Offline", timeout=10000)
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteB", "erp"), 1).endswith("(last known)"), timeout=10000)
    item = window.tree._items[("group", "SiteB", "erp")][0]
    assert item.data(Qt.ForegroundRole) == STALE_BRUSH
    assert item.data(Qt.ToolTipRole).splitlines()[1].startswith(f"{STALE}: SiteB does not answer")
    assert window.tree._items[("group", "SiteA", "erp")][0].data(Qt.ForegroundRole) is None  # SiteA answers
    for key in (("pair", "SiteB", "db_dr"), ("volume", "SiteB", "db_dr")):  # every row of the array says so
        assert window.tree.text_of(key, 1).endswith(LAST_KNOWN), key
        assert f"{STALE}: SiteB does not answer" in window.tree._items[key][0].data(Qt.ToolTipRole)
    assert not window.tree.text_of(("pair", "SiteA", "db"), 1).endswith(LAST_KNOWN)
    for key in (("group", "SiteB", "erp"), ("volume", "SiteB", "db_dr")):  # the volume's has a status mark too
        shown = _drawn_status(window, key)  # a narrow column cuts the status, not "(last known)"
        full = window.tree.text_of(key, 1)  # the group may have stopped mid-sync: "Synchronizing (last known)"
        assert shown.endswith(LAST_KNOWN) and shown != full and shown[:3] == full[:3], shown  # "Opt… (last known)"
    window.tree.view.clearSelection()
    qtbot.waitUntil(lambda: _group_status(window, "SiteB")[0].endswith("(last known)"), timeout=10000)
    _, brush, icon = _group_status(window, "SiteB")
    assert brush is not None and icon.endswith(":stale")  # greyed, and so is its status mark
    t = window.details.groups_table  # read whole, not squeezed to a current-looking "Optimal …"
    qtbot.waitUntil(lambda: t.columnWidth(3) >= t.sizeHintForColumn(3), timeout=5000)
    text, brush, icon = _group_status(window, "SiteA")
    assert not text.endswith("(last known)") and brush is None and not icon.endswith(":stale")
    engine("array_start", "SiteB")
    qtbot.waitUntil(lambda: not window.tree.text_of(("group", "SiteB", "erp"), 1).endswith("(last known)"),
                    timeout=10000)
    assert item.data(Qt.ForegroundRole) is None
    qtbot.waitUntil(lambda: not _group_status(window, "SiteB")[0].endswith("(last known)"), timeout=10000)
    _, brush, icon = _group_status(window, "SiteB")
    assert brush is None and not icon.endswith(":stale")


def test_a_current_status_is_not_cut_either(qtbot, console, engine):
    """A narrow window squeezes the other columns: "User suspended" must not read "User …" (as "Role …" did)."""
    bridge, window = console
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    engine("add_pair", "erp", "SiteA/db", "SiteB/db_dr")
    window.tree.view.clearSelection()
    t = window.details.groups_table
    qtbot.waitUntil(lambda: _group_status(window, "SiteA")[0] == "Optimal", timeout=20000)
    window.resize(900, 700)
    engine("suspend", "erp")
    qtbot.waitUntil(lambda: _group_status(window, "SiteA")[0] == "User suspended", timeout=10000)
    qtbot.waitUntil(lambda: t.columnWidth(3) >= t.sizeHintForColumn(3), timeout=5000)
    assert t.horizontalHeader().length() > t.viewport().width()  # too narrow for all: it scrolls, the status stays whole
