"""Shared fixtures: every test gets a fresh lab home (its own data directories and databases).

``client`` is the lab as the product runs it: an array daemon per array (in this
process, on real sockets), a link relay between their channels, and the fleet over
their REST APIs (tests/daemon_lab.py).
"""
from __future__ import annotations

import functools
import os
import subprocess
import threading

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import core.channel.auth as channel_auth  # noqa: E402
from core.lab import init_lab  # noqa: E402
from core.runtime import BlockingEngine  # noqa: E402
from daemon_lab import daemon_lab_factory, install_certificate  # noqa: E402

# PBKDF2 of the same password and salt gives the same key: computed once per test session.
# Every lab home is a copy of one template, so each array's salt recurs in every test and
# logins (REST and channel) cost a dictionary look-up instead of 100 000 hash rounds.
channel_auth.password_hash = functools.lru_cache(maxsize=256)(channel_auth.password_hash)


@pytest.fixture(scope="session")
def lab_template(tmp_path_factory):
    """One freshly initialised lab (with each array's HTTPS certificate), copied for every test."""
    home = tmp_path_factory.mktemp("lab-template") / "lab"
    init_lab(home)
    for name in ("SiteA", "SiteB"):
        install_certificate(home / "arrays" / name, name)
    return home


@pytest.fixture
def lab_home(tmp_path, lab_template):
    """A freshly initialised lab (SiteA + SiteB with ready volumes), the template's copy (volumes stay sparse)."""
    home = tmp_path / "lab"
    subprocess.run(["cp", "-a", "--sparse=always", str(lab_template), str(home)], check=True)
    return home


@pytest.fixture
def client(lab_home):
    """The lab's arrays as daemons, driven through their REST APIs (the fleet) as blocking calls."""
    with BlockingEngine(lab_home, purpose="pytest", timeout=120, engine_factory=daemon_lab_factory()) as c:
        yield c


@pytest.fixture
def daemon_lab(client):
    """The :class:`daemon_lab.DaemonLab` behind ``client``: ``daemon_lab.daemon("SiteB").engine`` is SiteB's engine."""
    return client.engine


@pytest.fixture(autouse=True)
def no_engine_thread_left():
    """Fail any test that leaves an engine thread running (leaked threads break later tests)."""
    yield
    leaked = [t for t in threading.enumerate() if t.name.startswith("mirror-engine") and t.is_alive()]
    assert not leaked, f"test left engine threads running: {leaked}"


@pytest.fixture(autouse=True)
def console_config_home(tmp_path, monkeypatch):
    """The console's managed-arrays store and passwords in the test's directory: never the user's config or keyring."""
    monkeypatch.setenv("MIRROR_CONSOLE_HOME", str(tmp_path / "console-config"))
    monkeypatch.setenv("MIRROR_CONSOLE_PASSWORDS", "file")
