"""The console managing the lab's array daemons over REST, while mirrorctl drives the same arrays.

The arrays run as their own processes (``lab up``); the console's engine thread holds
only REST clients and event streams. What an administrator does in one (mirrorctl or
the console) shows up in the other, and a cut link is the relay really cutting TCP.
"""
from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QPushButton

from core.cli.common import lab_fleet_factory
from core.cli.main import main
from core.lab.supervisor import lab_down, lab_up

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
TIMEOUT = 20000


@pytest.fixture
def daemon_console(open_console, lab_home):
    """The console managing the lab's array daemons (started here, stopped at the end)."""
    lab_up(lab_home)
    try:
        with open_console(lab_home, purpose="pytest-gui-daemons", engine_factory=lab_fleet_factory()) as c:
            yield c
    finally:
        lab_down(lab_home)


def cli(capsys, home, *args) -> dict | list:
    code = main(["--home", str(home), "--json", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out) if out.strip() else {}


def test_console_and_mirrorctl_share_the_running_arrays(qtbot, capsys, lab_home, daemon_console, monkeypatch):
    bridge, window = daemon_console
    assert window.engine_label.text() == "Managing the array daemons over HTTPS"
    cli(capsys, lab_home, "group", "create", "G1", "--primary-array", "SiteA", "--secondary-array", "SiteB",
        "--manual")
    cli(capsys, lab_home, "pair", "add", "--group", "G1", "--primary", "SiteA/db", "--secondary", "SiteB/db_dr")
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteB", "G1"), 1) == "Optimal"
                    and window.tree.text_of(("group", "SiteA", "G1"), 1) == "Optimal", timeout=TIMEOUT)

    window.lab.cut.trigger()  # the Lab menu cuts the relay's TCP path
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteA", "G1"), 1) == "Paused"
                    and window.tree.text_of(("group", "SiteB", "G1"), 1) == "Paused", timeout=TIMEOUT)
    cli(capsys, lab_home, "role", "promote", "G1", "--array", "SiteB", "--force")

    def guru_button(text):
        return next((b for b in window.guru.findChildren(QPushButton) if b.text() == text), None)
    qtbot.waitUntil(lambda: guru_button("Restore the lab link") is not None, timeout=TIMEOUT)
    guru_button("Restore the lab link").click()  # the Guru's fix for a lost link restores the relay
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteA", "G1"), 1) == "Role conflict"
                    and window.tree.text_of(("group", "SiteB", "G1"), 1) == "Role conflict", timeout=TIMEOUT)

    qtbot.waitUntil(lambda: guru_button("Keep SiteA as primary") is not None, timeout=TIMEOUT)
    monkeypatch.setattr("gui.guru_panel.confirm", lambda *a, **k: True)  # the administrator confirms
    guru_button("Keep SiteA as primary").click()
    qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteB", "G1"), 2) == "Secondary"
                    and window.tree.text_of(("group", "SiteA", "G1"), 1) == "Optimal", timeout=TIMEOUT)
    shown = cli(capsys, lab_home, "group", "show", "G1", "--array", "SiteB")
    assert shown["role"] == "secondary" and shown["status"] == "optimal"
