"""The Storage arrays page as an administrator uses it: real array daemons the console did not start, real certificates.

Add an array by address with an explicit certificate acceptance; each wrong input is
a clear line on the dialog where it was typed; discover daemons on loopback; a changed
certificate is a blocking warning with both fingerprints; a group between two saved
arrays survives one of them being killed and restarted (unreachable, then back).
"""
from __future__ import annotations

import asyncio
import shutil
import socket
from contextlib import contextmanager

import pytest
from PySide6.QtWidgets import QApplication

from core.cli.common import console_fleet_factory
from core.client.certificates import colon_fingerprint
from core.client.contact import add_array
from core.client.managed import ManagedArrayStore
from core.lab import LAB_PASSWORDS, init_lab
from gui.app import build_console
from managed_support import Daemon, https_server_that_is_not_an_array, lab_array_daemons, plain_http_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
TIMEOUT = 20000


@pytest.fixture(scope="module")
def daemons(tmp_path_factory):
    """SiteA and SiteB, each served by its own daemon (started here, not by the console or a lab)."""
    yield from lab_array_daemons(tmp_path_factory)


@contextmanager
def managing_console(qtbot, home):
    """The console managing only the saved arrays (no lab), its Storage arrays dock shown."""
    bridge, window = build_console(home, poll_hz=5,
                                   engine_factory=console_fleet_factory(with_lab=False))
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(bridge.sig_ready, timeout=TIMEOUT):
            bridge.start()
        window.show()
        window.findChild(type(window.guru_dock), "StorageArrays").show()
        yield bridge, window, window.storage_arrays
    finally:
        for w in QApplication.topLevelWidgets():
            if w is not window and w.isVisible():
                w.close()
        bridge.stop()


def save(name: str, daemon: Daemon, password: str) -> None:
    asyncio.run(add_array(ManagedArrayStore(), name, daemon.url, password, fingerprint=daemon.sha))


def row(page, name: str) -> list[str] | None:
    return next((r for r in page.row_texts() if r[0] == name), None)


def status(page, name: str) -> str:
    r = row(page, name)
    return r[3] if r else ""


def fill(dialog, name: str, address: str, port: int, password: str) -> None:
    dialog.name.setText(name)
    dialog.address.setText(address)
    dialog.port.setValue(port)
    dialog.password.setText(password)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_add_array_by_address_with_explicit_certificate_acceptance(qtbot, tmp_path, daemons):
    a, b = daemons["SiteA"], daemons["SiteB"]
    with managing_console(qtbot, tmp_path) as (bridge, window, page):
        qtbot.waitUntil(lambda: page.passwords.text().startswith("Passwords stored in: "), timeout=TIMEOUT)
        assert page.passwords.text().endswith("console-config/passwords.json")
        dialog = page.open_add()
        fill(dialog, "Site A (Paris)", "127.0.0.1", a.port, LAB_PASSWORDS["SiteA"])
        dialog.connect_button.click()
        qtbot.waitUntil(lambda: dialog.accept_dialog is not None and dialog.accept_dialog.isVisible(), timeout=TIMEOUT)
        shown = dialog.accept_dialog
        assert "CN=SiteA" in shown.subject.text() and "(self-signed)" in shown.issuer.text()
        assert shown.fingerprint.text() == colon_fingerprint(a.sha)
        assert "day(s) left" in shown.validity.text()
        assert ManagedArrayStore().list() == []  # nothing trusted before the click
        shown.accept_button.click()
        qtbot.waitUntil(lambda: status(page, "Site A (Paris)") == "Reachable", timeout=TIMEOUT)
        assert row(page, "Site A (Paris)")[1:3] == ["SiteA", a.url]
        assert row(page, "Site A (Paris)")[5] == f"pinned SHA-256 {a.sha}"
        assert not dialog.isVisible() and page.message.text() == f"Added Site A (Paris): array SiteA at {a.url}"
        qtbot.waitUntil(lambda: window.tree.has(("volume", "SiteA", "db")), timeout=TIMEOUT)

        # Each wrong input: one line on the dialog where it was typed, the dialog stays open.
        dialog = page.open_add()
        fill(dialog, "dr", "127.0.0.1", b.port, "not-the-password")
        dialog.connect_button.click()
        qtbot.waitUntil(lambda: dialog.accept_dialog is not None and dialog.accept_dialog.isVisible(), timeout=TIMEOUT)
        dialog.accept_dialog.accept_button.click()
        qtbot.waitUntil(lambda: dialog.error.text() != "", timeout=TIMEOUT)
        assert "refused the password for user 'admin'" in dialog.error.text()
        assert dialog.error.text().endswith("[authenticationFailed]") and dialog.isVisible()

        def refused(address: str, port: int) -> str:
            dialog.error.setText("")
            dialog.accept_dialog = None
            fill(dialog, "dr", address, port, LAB_PASSWORDS["SiteB"])
            dialog.connect_button.click()
            qtbot.waitUntil(lambda: dialog.error.text() != "", timeout=TIMEOUT)
            assert dialog.accept_dialog is None  # no certificate to accept from what is not an array
            return dialog.error.text()

        port = closed_port()
        assert refused("127.0.0.1", port) == (f"cannot reach 127.0.0.1:{port}: connection refused (nothing listens "
                                              "on that port) [arrayUnreachable]")
        with plain_http_server() as port:
            assert refused("127.0.0.1", port).endswith("answers in plain HTTP, not HTTPS; an array's REST API is "
                                                       "HTTPS only (give the array daemon's HTTPS port) [notHttps]")
        assert refused(f"http://127.0.0.1:{b.port}", b.port).endswith("[notHttps]")
        with https_server_that_is_not_an_array(tmp_path) as port:
            assert refused("127.0.0.1", port) == (f"https://127.0.0.1:{port} answers HTTPS but is not a storage "
                                                  "array (it has no /devmgr/utils/about naming an array) [notAnArray]")
        assert [e.name for e in ManagedArrayStore().list()] == ["Site A (Paris)"]

        # Cancelling the certificate adds nothing.
        fill(dialog, "dr", "127.0.0.1", b.port, LAB_PASSWORDS["SiteB"])
        dialog.error.setText("")
        dialog.connect_button.click()
        qtbot.waitUntil(lambda: dialog.accept_dialog is not None and dialog.accept_dialog.isVisible(), timeout=TIMEOUT)
        dialog.accept_dialog.reject()
        assert [e.name for e in ManagedArrayStore().list()] == ["Site A (Paris)"]


def test_discover_two_daemons_on_loopback_and_add_the_chosen_one(qtbot, tmp_path, daemons):
    a, b = daemons["SiteA"], daemons["SiteB"]
    save("prod", a, LAB_PASSWORDS["SiteA"])
    with managing_console(qtbot, tmp_path) as (bridge, window, page):
        qtbot.waitUntil(lambda: status(page, "prod") == "Reachable", timeout=TIMEOUT)
        found = page.open_discover()
        found.targets.setText("127.0.0.1-2")
        found.ports.setText(f"{a.port},{b.port},{closed_port()}")
        with qtbot.waitSignal(found.sig_scanned, timeout=TIMEOUT):
            found.scan_button.click()
        rows = [[found.table.item(r, c).text() for c in range(5)] for r in range(found.table.rowCount())]
        assert rows == [[a.url, "SiteA", a.info["wwn"], a.sha, "prod"], [b.url, "SiteB", b.info["wwn"], b.sha, ""]]
        assert found.status.text().startswith("2 array(s) answered")
        found.table.selectRow(1)
        found.add_button.click()
        dialog = found.add_dialog
        assert (dialog.name.text(), dialog.address.text(), dialog.port.value()) == ("SiteB", "127.0.0.1", b.port)
        dialog.password.setText(LAB_PASSWORDS["SiteB"])
        dialog.connect_button.click()
        qtbot.waitUntil(lambda: dialog.accept_dialog is not None and dialog.accept_dialog.isVisible(), timeout=TIMEOUT)
        assert dialog.accept_dialog.fingerprint.text() == colon_fingerprint(b.sha)
        dialog.accept_dialog.accept_button.click()
        qtbot.waitUntil(lambda: status(page, "SiteB") == "Reachable", timeout=TIMEOUT)
        qtbot.waitUntil(lambda: window.tree.has(("volume", "SiteB", "db_dr")), timeout=TIMEOUT)

        found.targets.setText("10.0.0.0/8")
        found.scan_button.click()
        qtbot.waitUntil(lambda: found.error.text() != "", timeout=TIMEOUT)
        assert found.error.text() == "10.0.0.0/8 is 16777216 addresses; scan at most 1024 [invalidRange]"


def test_certificate_changed_on_reconnect_is_a_blocking_warning(qtbot, tmp_path):
    home = tmp_path / "lab"
    init_lab(home)
    d = Daemon(home / "arrays" / "SiteB").start()
    try:
        old = d.sha
        save("dr", d, LAB_PASSWORDS["SiteB"])
        with managing_console(qtbot, tmp_path) as (bridge, window, page):
            qtbot.waitUntil(lambda: status(page, "dr") == "Reachable", timeout=TIMEOUT)
            certs = page.open_certificates()
            qtbot.waitUntil(lambda: certs.row_texts() != [], timeout=TIMEOUT)
            name, array, subject, issuer, expires, days, sha, state = certs.row_texts()[0]
            assert (name, array, sha, state) == ("dr", "SiteB", colon_fingerprint(old), "Accepted")
            assert "CN=SiteB" in subject and int(days) > 3000
            certs.close()

            d.stop()
            shutil.rmtree(d.data_dir / "tls")  # another key answers on the same address
            d.start()
            assert d.sha != old
            qtbot.waitUntil(lambda: "dr" in page.warnings, timeout=TIMEOUT * 2)
            box = page.warnings["dr"]
            assert box.isVisible() and box.isModal()
            assert colon_fingerprint(old) in box.text() and colon_fingerprint(d.sha) in box.text()
            assert status(page, "dr") == "Certificate changed: refused"
            box.accept()
            certs = page.open_certificates()
            qtbot.waitUntil(lambda: certs.row_texts() != [], timeout=TIMEOUT)
            assert certs.row_texts()[0][7] == (f"CHANGED: accepted {colon_fingerprint(old)}, now "
                                               f"{colon_fingerprint(d.sha)}")
    finally:
        d.stop()


def test_manage_a_group_between_arrays_the_console_did_not_start_through_a_daemon_restart(qtbot, tmp_path, capsys):
    from core.cli.main import main

    home = tmp_path / "lab"
    init_lab(home)
    a = Daemon(home / "arrays" / "SiteA").start()
    b = Daemon(home / "arrays" / "SiteB").start()
    try:
        save("paris", a, LAB_PASSWORDS["SiteA"])
        save("lyon", b, LAB_PASSWORDS["SiteB"])
        for here, there, password in (("SiteA", b, LAB_PASSWORDS["SiteB"]), ("SiteB", a, LAB_PASSWORDS["SiteA"])):
            assert main(["--home", str(home), "--array", "paris", "--array", "lyon", "array", "remote", "add", here, "--name",
                         there.info["name"], "--address", there.info["channelAddress"], "--remote-password",
                         password]) == 0, capsys.readouterr().err
        with managing_console(qtbot, tmp_path) as (bridge, window, page):
            qtbot.waitUntil(lambda: status(page, "paris") == status(page, "lyon") == "Reachable", timeout=TIMEOUT)
            done = []
            bridge.call("create_group", "G1", "SiteA", "SiteB", sync_mode="manual",
                        on_done=lambda _g: bridge.call("add_pair", "G1", "SiteA/db", "SiteB/db_dr",
                                                       on_done=done.append, on_error=done.append),
                        on_error=done.append)
            qtbot.waitUntil(lambda: bool(done), timeout=TIMEOUT)
            assert not isinstance(done[0], Exception), done[0]
            qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteA", "G1"), 1) == "Optimal"
                            and window.tree.text_of(("group", "SiteB", "G1"), 1) == "Optimal", timeout=TIMEOUT * 3)

            b.kill()  # the Lyon site loses power
            qtbot.waitUntil(lambda: status(page, "lyon").startswith("Unreachable: "), timeout=TIMEOUT * 2)
            assert row(page, "lyon")[4] != ""  # the last time it answered
            assert window.tree.has(("group", "SiteB", "G1"))  # its side kept, as last known

            b.start()  # same addresses: the console and SiteA find it again by themselves
            qtbot.waitUntil(lambda: status(page, "lyon") == "Reachable", timeout=TIMEOUT * 2)
            qtbot.waitUntil(lambda: window.tree.text_of(("group", "SiteB", "G1"), 1) == "Optimal"
                            and window.tree.text_of(("group", "SiteA", "G1"), 1) == "Optimal", timeout=TIMEOUT * 3)
            assert page.error.text() == "" and all(r[3] == "Reachable" for r in page.row_texts())
    finally:
        a.stop()
        b.stop()


def test_test_connection_rename_and_remove_a_saved_array(qtbot, tmp_path, daemons, monkeypatch):
    a = daemons["SiteA"]
    save("prod", a, LAB_PASSWORDS["SiteA"])
    with managing_console(qtbot, tmp_path) as (bridge, window, page):
        qtbot.waitUntil(lambda: status(page, "prod") == "Reachable", timeout=TIMEOUT)
        qtbot.waitUntil(lambda: window.tree.has(("array", "SiteA")), timeout=TIMEOUT)
        page.buttons["test"].click()
        assert page.error.text() == "choose an array in the list first [noSelection]"
        page.select("prod")
        page.buttons["test"].click()
        qtbot.waitUntil(lambda: "answered in" in page.message.text(), timeout=TIMEOUT)
        assert page.message.text().startswith("prod answered in ")
        assert page.message.text().endswith(" ms (logged in as admin, certificate checked)")

        monkeypatch.setattr("gui.storage_arrays.ask_new_name", lambda parent, current: "Site A (Paris)")
        page.buttons["rename"].click()
        qtbot.waitUntil(lambda: row(page, "Site A (Paris)") is not None, timeout=TIMEOUT)
        assert page.message.text() == "prod is now called Site A (Paris)"
        assert [e.name for e in ManagedArrayStore().list()] == ["Site A (Paris)"]

        monkeypatch.setattr("gui.storage_arrays.confirm", lambda *a, **k: True)
        page.select("Site A (Paris)")
        page.buttons["remove"].click()
        qtbot.waitUntil(lambda: page.row_texts() == [], timeout=TIMEOUT)
        # The list refreshes on the store's change; the message follows the removal's answer.
        qtbot.waitUntil(lambda: page.message.text() == "Site A (Paris) is no longer managed", timeout=TIMEOUT)
        qtbot.waitUntil(lambda: not window.tree.has(("array", "SiteA")), timeout=TIMEOUT)
        assert ManagedArrayStore().list() == []
