"""Shared fixtures: every test gets a fresh lab home (its own data directories and databases)."""
from __future__ import annotations

import os
import threading

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from core.lab import init_lab  # noqa: E402
from core.runtime import BlockingEngine  # noqa: E402


@pytest.fixture
def lab_home(tmp_path):
    """A freshly initialised lab (SiteA + SiteB with ready volumes)."""
    home = tmp_path / "lab"
    init_lab(home)
    return home


@pytest.fixture
def client(lab_home):
    """The engine's service API as blocking calls, on its own loop thread."""
    with BlockingEngine(lab_home, purpose="pytest") as c:
        yield c


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
