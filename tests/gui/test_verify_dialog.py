"""Verify consistency from the console: it runs off the UI thread and its result says what was compared."""
from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.timeout(90)
MIB = 1 << 20


def _synced(qtbot, window, engine):
    engine("create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
    engine("host_write", "SiteA/db", 0, os.urandom(2 * MIB))
    engine("add_pair", "erp", "SiteA/db", "SiteB/db_dr")
    engine("sync_now", "erp", wait=True, after_running=True)
    qtbot.waitUntil(lambda: (g := window.state.group("erp", "SiteA")) is not None and g.status == "optimal",
                    timeout=20000)


def _open(qtbot, window):
    acts = window.mirror_actions
    assert window.tree.select(("group", "SiteA", "erp"))
    qtbot.waitUntil(acts.verify.isEnabled, timeout=5000)
    with qtbot.waitSignal(acts.sig_dialog_opened, timeout=5000) as opened:
        acts.verify.trigger()
    dialog = opened.args[0]
    qtbot.addWidget(dialog)
    return dialog


def test_verify_shows_identical_with_what_it_compared(qtbot, console, engine):
    bridge, window = console
    _synced(qtbot, window, engine)
    dialog = _open(qtbot, window)
    assert dialog.windowTitle() == "Verify consistency \u2014 erp"
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=20000)
    assert dialog.status.text().startswith("Identical")
    assert "compared" in dialog.detail.text() and "skipped" in dialog.detail.text()
    assert [dialog.pairs.item(0, c).text() for c in range(3)] == ["SiteA/db", "SiteB/db_dr", "Identical"]
    assert dialog.pairs.item(0, 3).text() != "0 B"


def test_verify_says_not_verified_when_everything_changed_since(qtbot, console, engine):
    bridge, window = console
    _synced(qtbot, window, engine)
    engine("host_write", "SiteA/db", 0, os.urandom(2 * MIB))  # every written region changes again
    dialog = _open(qtbot, window)
    qtbot.waitUntil(lambda: dialog.result is not None, timeout=20000)
    outcome = dialog.result["outcome"]
    assert outcome in ("identical", "notVerified")  # holes still compare; a wholly changed volume is not verified
    skipped = dialog.pairs.item(0, 4).text()
    assert skipped != "0 B" and "skipped because they changed on the primary" in dialog.detail.text()
    dialog.again.click()  # runs again, off the UI thread
    assert not dialog.again.isEnabled() and dialog.busy.isVisible() is not False
    qtbot.waitUntil(lambda: dialog.result is not None and dialog.again.isEnabled(), timeout=20000)
