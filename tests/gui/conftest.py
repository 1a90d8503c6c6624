"""GUI fixtures: a real console on a fresh lab, its engine always stopped at the end."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from gui.app import build_console

START_TIMEOUT_MS = 15000

# The offscreen platform's screen is 800x800 by default: a restored window geometry was clamped to it.
# Tests run on a 1920x1080 desktop, the size the console is laid out for.
if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={Path(__file__).with_name('offscreen_screen.json')}"


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """The console remembers its layout with QSettings: never in the user's own file during tests."""
    path = tmp_path_factory.mktemp("qsettings")
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(path))
    yield path


@contextmanager
def running_console(qtbot, home, **options):
    """(bridge, main window) on ``home``: ready, the tree showing both arrays; stopped at the end."""
    bridge, window = build_console(home, poll_hz=10, **options)
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(bridge.sig_ready, timeout=START_TIMEOUT_MS):
            bridge.start()
        window.show()
        qtbot.waitUntil(lambda: window.tree.has(("array", "SiteB")) and window.tree.has(("volume", "SiteA", "db")),
                        timeout=START_TIMEOUT_MS)
        yield bridge, window
    finally:
        for w in QApplication.topLevelWidgets():
            if w is not window and w.isVisible():
                w.close()
        bridge.stop()


@pytest.fixture
def open_console(qtbot):
    """``with open_console(home, **build_console_options) as (bridge, window)``."""
    return lambda home, **options: running_console(qtbot, home, **options)


@pytest.fixture
def console(qtbot, lab_home):
    """(bridge, main window) on a fresh lab whose arrays run in the console's engine."""
    with running_console(qtbot, lab_home, purpose="pytest-gui") as c:
        yield c


@pytest.fixture
def engine(qtbot, console):
    """``engine(method, *args, **kw)``: call the engine through the bridge and wait for its answer."""
    bridge, _ = console

    def call(method, *args, **kwargs):
        box = {}
        bridge.call(method, *args, on_done=lambda r: box.setdefault("ok", r),
                    on_error=lambda e: box.setdefault("err", e), **kwargs)
        qtbot.waitUntil(lambda: bool(box), timeout=START_TIMEOUT_MS)
        if "err" in box:
            raise box["err"]
        return box["ok"]
    return call
