"""Managed arrays as an administrator uses them from mirrorctl: real array daemons on loopback, real certificates.

``array add`` shows the certificate and never trusts it silently; a saved array is
managed with ``mirrorctl --array NAME``; a changed certificate, a wrong password, an
unreachable address, a plain-HTTP server and a server that is not an array are each
one line with a stable code. Nothing touches the user's own config dir or keyring.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from pathlib import Path

import pytest

from core.cli.main import main
from core.client.managed import HOME_ENV, PASSWORDS_ENV, ManagedArrayStore
from core.lab import LAB_PASSWORDS, init_lab
from managed_support import (Daemon, ca_signed_certificate, https_server_that_is_not_an_array, lab_array_daemons,
                             plain_http_server)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def daemons(tmp_path_factory):
    """SiteA and SiteB of a fresh lab, each served by its own daemon (no lab supervisor, no relay)."""
    yield from lab_array_daemons(tmp_path_factory)


@pytest.fixture(autouse=True)
def console_home(tmp_path, monkeypatch):
    """The console's config dir in a temporary directory, passwords in its file (never the user's keyring)."""
    home = tmp_path / "console"
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv(PASSWORDS_ENV, "file")
    monkeypatch.setenv("MIRROR_HOME", str(tmp_path / "no-lab"))
    return home


def run(capsys, *args):
    code = main(["--home", str(Path(os.environ["MIRROR_HOME"]) / "lab"), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def ok(capsys, *args) -> str:
    code, out, err = run(capsys, *args)
    assert code == 0, err
    return out


def ok_json(capsys, *args):
    return json.loads(ok(capsys, "--json", *args))


def refused(capsys, *args) -> str:
    """The one line of a refused command (exit 1, 'mirrorctl: error: ... [code]')."""
    code, out, err = run(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("mirrorctl: error: "), (code, out, err)
    return lines[0]


def colons(sha: str) -> str:
    return ":".join(sha[i:i + 2] for i in range(0, 64, 2)).upper()


# -- adding ----------------------------------------------------------------------------------------
def test_add_array_shows_the_certificate_and_refuses_until_accepted(capsys, daemons, console_home):
    a = daemons["SiteA"]
    code, out, err = run(capsys, "array", "add", "prod", "--url", a.url, "--password", LAB_PASSWORDS["SiteA"])
    assert code == 1
    assert f"The array SiteA at {a.url} presents this certificate:" in out
    assert "CN=SiteA" in out and "self-signed" in out and colons(a.sha) in out and "days left" in out
    assert err.strip() == (f"mirrorctl: error: the certificate of {a.url} (SHA-256 {a.sha}) was not accepted; check "
                           f"it and run again with --accept-certificate {a.sha} [certificateNotAccepted]")
    assert ManagedArrayStore().list() == []


def test_add_array_with_its_fingerprint_then_manage_it_by_name(capsys, daemons, console_home):
    a = daemons["SiteA"]
    out = ok(capsys, "array", "add", "prod", "--url", a.url.replace("https://", ""), "--password",
             LAB_PASSWORDS["SiteA"], "--accept-certificate", colons(a.sha))
    passwords = console_home / "passwords.json"
    assert out.splitlines() == [f"added prod: array SiteA at {a.url}, trusted by pinned SHA-256 {a.sha}",
                                f"passwords stored in: {passwords}"]
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    assert LAB_PASSWORDS["SiteA"] in passwords.read_text()
    assert LAB_PASSWORDS["SiteA"] not in (console_home / "managed-arrays.db").read_bytes().decode("latin-1")

    listed = ok_json(capsys, "array", "list")
    assert [(m["name"], m["arrayName"], m["url"], m["state"]) for m in listed["managed"]] == [
        ("prod", "SiteA", a.url, "reachable")]
    assert listed["passwordsStoredIn"] == str(passwords)
    volumes = ok_json(capsys, "--array", "prod", "volume", "list")
    assert {v["array"] for v in volumes} == {"SiteA"} and "db" in {v["name"] for v in volumes}
    # Two saved arrays at once: a group between them can be managed from one command.
    b = daemons["SiteB"]
    ok(capsys, "array", "add", "dr", "--url", b.url, "--password", LAB_PASSWORDS["SiteB"], "--yes")
    arrays = ok_json(capsys, "--array", "prod", "--array", "dr", "array", "list", "--details")
    assert [(x["name"], x["online"]) for x in arrays] == [("SiteA", True), ("SiteB", True)]


def test_add_array_refusals_are_one_line_each(capsys, daemons, console_home, tmp_path):
    a = daemons["SiteA"]
    pw = LAB_PASSWORDS["SiteA"]
    line = refused(capsys, "array", "add", "x", "--url", a.url, "--password", "wrong", "--accept-certificate", a.sha)
    assert "refused the password for user 'admin'" in line and line.endswith("[authenticationFailed]")

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    line = refused(capsys, "array", "add", "x", "--url", f"127.0.0.1:{closed}", "--password", pw)
    assert line == (f"mirrorctl: error: cannot reach 127.0.0.1:{closed}: connection refused (nothing listens on "
                    "that port) [arrayUnreachable]")

    line = refused(capsys, "array", "add", "x", "--url", f"http://127.0.0.1:{a.port}", "--password", pw)
    assert line.endswith("is plain HTTP; an array's REST API is HTTPS only (https://...) [notHttps]")
    with plain_http_server() as port:
        line = refused(capsys, "array", "add", "x", "--url", f"127.0.0.1:{port}", "--password", pw)
        assert line == (f"mirrorctl: error: 127.0.0.1:{port} answers in plain HTTP, not HTTPS; an array's REST API "
                        "is HTTPS only (give the array daemon's HTTPS port) [notHttps]")
    with https_server_that_is_not_an_array(tmp_path) as port:
        line = refused(capsys, "array", "add", "x", "--url", f"127.0.0.1:{port}", "--password", pw, "--yes")
        assert line == (f"mirrorctl: error: https://127.0.0.1:{port} answers HTTPS but is not a storage array (it "
                        "has no /devmgr/utils/about naming an array) [notAnArray]")

    assert refused(capsys, "array", "add", "x", "--url", a.url, "--password", pw, "--accept-certificate",
                   "12:34").endswith("[invalidFingerprint]")
    assert refused(capsys, "array", "add", "bad/name", "--url", a.url, "--password", pw,
                   "--yes").endswith("[invalidArrayName]")
    assert refused(capsys, "array", "add", "x", "--url", "https://h:99999", "--password", pw).endswith(
        "[invalidPort]")
    other = "ab" * 32
    line = refused(capsys, "array", "add", "x", "--url", a.url, "--password", pw, "--accept-certificate", other)
    assert f"presented certificate SHA-256 {a.sha}, not the pinned {other}" in line
    assert line.endswith("[certificateMismatch]")
    assert ManagedArrayStore().list() == []  # nothing refused was saved

    ok(capsys, "array", "add", "prod", "--url", a.url, "--password", pw, "--yes")
    assert refused(capsys, "array", "add", "prod", "--url", daemons["SiteB"].url, "--password",
                   LAB_PASSWORDS["SiteB"], "--yes").endswith("[managedArrayExists]")
    line = refused(capsys, "array", "add", "again", "--url", a.url, "--password", pw, "--yes")
    assert "is already managed as 'prod'" in line and line.endswith("[arrayAlreadyManaged]")
    assert refused(capsys, "--array", "nope", "volume", "list").endswith("[managedArrayNotFound]")


def test_add_array_with_a_ca_file_or_its_own_certificate(capsys, tmp_path, console_home):
    """An administrator's own CA-signed certificate (--cert/--key), trusted through the CA file; and a leaf file."""
    home = tmp_path / "lab"
    init_lab(home)
    ca_pem, cert, key = ca_signed_certificate(tmp_path)
    daemon = Daemon(home / "arrays" / "SiteA").start("--cert", str(cert), "--key", str(key))
    try:
        url = daemon.url.replace("127.0.0.1", "localhost")
        out = ok(capsys, "array", "add", "site-a", "--url", url, "--password", LAB_PASSWORDS["SiteA"],
                 "--ca-file", str(ca_pem))
        entry = ManagedArrayStore().get("site-a")
        assert entry.ca_file and Path(entry.ca_file).read_bytes() == ca_pem.read_bytes()
        assert f"trusted by CA file {entry.ca_file}" in out
        ca_pem.unlink()  # the copy in the console's home is what is trusted
        assert ok_json(capsys, "--array", "site-a", "volume", "list")
        stranger, _, _ = ca_signed_certificate(tmp_path / "other")
        line = refused(capsys, "array", "add", "x", "--url", url, "--password", LAB_PASSWORDS["SiteA"],
                       "--ca-file", str(stranger))
        assert line.endswith("[certificateUntrusted]")
    finally:
        daemon.stop()
    b = Daemon(home / "arrays" / "SiteB").start()
    try:  # the array's own self-signed certificate, imported from its file: pinned by fingerprint
        ok(capsys, "array", "add", "site-b", "--url", b.url, "--password", LAB_PASSWORDS["SiteB"],
           "--ca-file", str(b.data_dir / "tls" / "cert.pem"))
        assert ManagedArrayStore().get("site-b").certificate_sha256 == b.sha
        assert refused(capsys, "array", "add", "y", "--url", b.url, "--password", "x", "--ca-file",
                       str(tmp_path / "missing.pem")).endswith("[invalidCertificateFile]")
    finally:
        b.stop()


def test_certificate_changed_on_reconnect_is_refused_naming_both(capsys, tmp_path, console_home):
    home = tmp_path / "lab"
    init_lab(home)
    d = Daemon(home / "arrays" / "SiteB").start()
    try:
        old = d.sha
        ok(capsys, "array", "add", "dr", "--url", d.url, "--password", LAB_PASSWORDS["SiteB"], "--accept-certificate",
           old)
        assert ok_json(capsys, "--array", "dr", "volume", "list")
        d.stop()
        shutil.rmtree(d.data_dir / "tls")  # a new key and certificate: someone else answers on that address
        d.start()
        assert d.sha != old
        line = refused(capsys, "--array", "dr", "volume", "list")
        assert line == (f"mirrorctl: error: the certificate of array 'dr' changed: {d.url} now presents SHA-256 "
                        f"{d.sha}, the accepted one is {old}; if it was replaced on purpose, check it and add the "
                        "array again ('mirrorctl array remove dr', then 'array add') [certificateMismatch]")
        state = ok_json(capsys, "array", "list")["managed"][0]["state"]
        assert state.startswith("unreachable: the certificate of array 'dr' changed")
    finally:
        d.stop()


def test_rename_and_remove_a_managed_array(capsys, daemons, console_home):
    a = daemons["SiteA"]
    ok(capsys, "array", "add", "prod", "--url", a.url, "--password", LAB_PASSWORDS["SiteA"], "--yes")
    assert ok(capsys, "array", "rename", "prod", "Site A (Paris)").strip() == "prod is now called Site A (Paris)"
    assert [m["name"] for m in ok_json(capsys, "array", "list", "--no-check")["managed"]] == ["Site A (Paris)"]
    assert refused(capsys, "array", "rename", "prod", "x").endswith("[managedArrayNotFound]")
    out = ok(capsys, "array", "remove", "Site A (Paris)")
    assert out.startswith(f"Site A (Paris) (SiteA at {a.url}) is no longer managed; its password was removed from")
    assert LAB_PASSWORDS["SiteA"] not in (console_home / "passwords.json").read_text()
    assert "no managed arrays" in ok(capsys, "array", "list")


def test_passwords_go_to_the_system_keyring_when_one_is_usable(monkeypatch, daemons, console_home, capsys):
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):  # stands in for the desktop's keyring; the real one is never touched
        priority = 1
        secrets: dict = {}

        def get_password(self, service, username):
            return self.secrets.get((service, username))

        def set_password(self, service, username, password):
            self.secrets[(service, username)] = password

        def delete_password(self, service, username):
            self.secrets.pop((service, username), None)

    monkeypatch.delenv(PASSWORDS_ENV)
    monkeypatch.setattr(keyring, "get_keyring", lambda: MemoryKeyring())
    out = ok(capsys, "array", "add", "prod", "--url", daemons["SiteA"].url, "--password", LAB_PASSWORDS["SiteA"],
             "--yes")
    assert out.splitlines()[-1] == "passwords stored in: the system keyring"
    assert list(MemoryKeyring.secrets.values()) == [LAB_PASSWORDS["SiteA"]]
    assert not (console_home / "passwords.json").exists()
    assert ok_json(capsys, "--array", "prod", "volume", "list")
    ok(capsys, "array", "remove", "prod")
    assert MemoryKeyring.secrets == {}


# -- discovery --------------------------------------------------------------------------------------
def test_discover_finds_the_daemons_on_loopback(capsys, daemons, console_home):
    a, b = daemons["SiteA"], daemons["SiteB"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    found = ok_json(capsys, "array", "discover", "127.0.0.1-3", "--port", f"{a.port},{b.port},{closed}")
    assert [(f["url"], f["arrayName"], f["certificateSha256"]) for f in found] == [
        (a.url, "SiteA", a.sha), (b.url, "SiteB", b.sha)]
    ok(capsys, "array", "add", "prod", "--url", a.url, "--password", LAB_PASSWORDS["SiteA"], "--yes")
    text = ok(capsys, "array", "discover", "127.0.0.1", "--port", f"{a.port},{b.port}")
    assert "prod" in text and text.strip().endswith("asked 2 address(es) in " + text.strip().split(" in ")[-1])
    assert "2 array(s) answered" in text
    assert refused(capsys, "array", "discover", "10.0.0.0/8").endswith("[invalidRange]")
    assert refused(capsys, "array", "discover", "10.0.0.9-10.0.0.1").endswith("[invalidRange]")
    assert refused(capsys, "array", "discover", "127.0.0.1", "--port", "http").endswith("[invalidPort]")


# -- a lab of four sites ---------------------------------------------------------------------------
@pytest.mark.slow
def test_lab_of_four_arrays_links_every_pair_and_mirrors_between_any_two(capsys, tmp_path):
    home = tmp_path / "lab4"

    def cli(*args):
        code = main(["--home", str(home), "--json", *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out) if out.strip() else {}

    created = main(["--home", str(home), "lab", "init", "--arrays", "4"])
    out, _ = capsys.readouterr()
    assert created == 0 and out.strip() == (f"Lab created in {home}: SiteA, SiteB, SiteC and SiteD (primary volumes "
                                            "on SiteA, SiteC; their DR volumes on SiteB, SiteD)")
    assert refused(capsys, "lab", "init", "--arrays", "9").endswith("a lab has 2 to 8 arrays, not 9 [invalidInput]")
    try:
        status = cli("lab", "up")
        assert [(a["name"], a["running"]) for a in status["arrays"]] == [
            ("SiteA", True), ("SiteB", True), ("SiteC", True), ("SiteD", True)]
        assert status["linksDown"] == [] and set(status["link"]["routes"]) == {"SiteA", "SiteB", "SiteC", "SiteD"}
        remotes = cli("array", "remote", "list", "SiteD")
        assert sorted((r["name"], r["reachable"]) for r in remotes) == [("SiteA", True), ("SiteB", True),
                                                                          ("SiteC", True)]
        cli("group", "create", "GCD", "--primary-array", "SiteC", "--secondary-array", "SiteD", "--manual")
        cli("pair", "add", "--group", "GCD", "--primary", "SiteC/db", "--secondary", "SiteD/db_dr")
        cli("sync", "GCD", "--wait")
        sides = {g["array"]: g["status"] for g in cli("group", "list") if g["name"] == "GCD"}
        assert sides == {"SiteC": "optimal", "SiteD": "optimal"}
    finally:
        main(["--home", str(home), "lab", "down"])
        capsys.readouterr()
