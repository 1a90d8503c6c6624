"""GUI fixtures: a real console on a fresh lab of array daemons, always stopped at the end.

The console manages the lab as a user has it: an array daemon per array (HTTPS REST,
the TLS channel, NBD on real sockets) joined by a link relay, driven over REST by the
fleet (tests/daemon_lab.py), all on the console's engine thread.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from core.client.managed import ManagedArrayStore
from daemon_lab import daemon_lab_factory
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


def console_lab_factory():
    """The lab's daemons behind a fleet set up as ``mirror-console``'s (``lab_fleet_factory``): it manages the
    saved arrays too, and an array that stops answering keeps its groups' last known state."""
    return daemon_lab_factory(fleet_options={"store": ManagedArrayStore(), "stale_groups": True})


@contextmanager
def running_console(qtbot, home, engine_factory, **options):
    """(bridge, main window) on ``home``: ready, the tree showing both arrays; stopped at the end."""
    bridge, window = build_console(home, engine_factory=engine_factory, poll_hz=10, **options)
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
    """``with open_console(home, engine_factory=None, **build_console_options) as (bridge, window)``.

    Without ``engine_factory``, the lab in ``home`` as in-process array daemons (:func:`console_lab_factory`).
    """
    def open_(home, engine_factory=None, **options):
        return running_console(qtbot, home, engine_factory or console_lab_factory(), **options)
    return open_


@pytest.fixture
def console(open_console, lab_home):
    """(bridge, main window) on a fresh lab: its array daemons and link relay, managed over REST."""
    with open_console(lab_home, purpose="pytest-gui") as c:
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
