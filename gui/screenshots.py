"""``python -m gui.screenshots DIR``: render the console's main screens to PNGs, offscreen.

Builds a throw-away lab and brings it up as the product runs it (an array daemon per
array and the link relay, ``mirrorctl lab up``), throttles the link at the relay,
opens the console on it (as ``mirror-console`` does), creates groups and pairs
through the console's fleet (so a group is synchronizing), then grabs: the main
window, the charts, the Create-mirrored-pair wizard on its candidate page, and the
Recovery Guru (after cutting the lab link). The lab is always taken down at the end.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication, QWizard  # noqa: E402

from core.cli.common import lab_fleet_factory  # noqa: E402
from core.client.managed import HOME_ENV, PASSWORDS_ENV  # noqa: E402
from core.lab import init_lab  # noqa: E402
from core.lab.relay_control import RelayControl  # noqa: E402
from core.lab.supervisor import lab_down, lab_up  # noqa: E402
from gui.app import build_console, make_app  # noqa: E402

LINK_BANDWIDTH = 24 << 20  # bytes/s: the main window catches the initial sync in progress


def _wait(app: QApplication, pred, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if pred():
            return True
        time.sleep(0.01)
    return False


def _call(app, bridge, method, *args, **kwargs):
    box: dict = {}
    bridge.call(method, *args, on_done=lambda r: box.setdefault("ok", r), on_error=lambda e: box.setdefault("err", e),
                **kwargs)
    _wait(app, lambda: bool(box))
    return box.get("ok"), box.get("err")


def _settle(app, seconds: float) -> None:
    _wait(app, lambda: False, seconds)


def render(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    app = make_app()
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="mirror-shots-") as tmp:
        home = Path(tmp) / "lab"
        init_lab(home)
        # The shots show the default layout and no saved arrays, and never change the layout, the saved
        # arrays or the passwords the user's console remembers.
        QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(Path(tmp) / "settings"))
        os.environ[HOME_ENV] = str(Path(tmp) / "console-config")
        os.environ[PASSWORDS_ENV] = "file"
        lab_up(home)
        try:
            RelayControl.find(home).set_link(bandwidth=LINK_BANDWIDTH)
            written += _shoot(app, home, out_dir)
        finally:
            lab_down(home)
    return written


def _shoot(app: QApplication, home: Path, out_dir: Path) -> list[Path]:
    """The console on the running lab in ``home``: its screens as PNGs in ``out_dir``."""
    written: list[Path] = []
    bridge, window = build_console(home, lab_fleet_factory(), purpose="screenshots", poll_hz=10)
    window.resize(1280, 800)
    window.show()
    bridge.start()
    try:
        if not _wait(app, lambda: bridge.ready and window.tree.has(("volume", "SiteA", "db"))):
            raise SystemExit("the engine did not start")
        _call(app, bridge, "create_group", "payroll", "SiteA", "SiteB", sync_interval_minutes=5)
        _call(app, bridge, "create_group", "erp", "SiteA", "SiteB", sync_mode="manual")
        _call(app, bridge, "host_write", "SiteA/db", 0, os.urandom(160 << 20))
        _call(app, bridge, "host_write", "SiteA/logs", 0, os.urandom(64 << 20))
        _call(app, bridge, "add_pair", "payroll", "SiteA/db", "SiteB/db_dr")
        _call(app, bridge, "add_pair", "payroll", "SiteA/logs", "SiteB/logs_dr")
        _call(app, bridge, "start_workload", ["SiteA/db", "SiteA/logs"], 8)
        _wait(app, lambda: window.tree.has(("pair", "SiteA", "db")))
        window.tree.select(("group", "SiteA", "payroll"))

        def syncing(low: float) -> bool:
            g = window.state.group("payroll", "SiteA")
            return g is not None and g.progress is not None and g.progress.percent >= low
        _wait(app, lambda: syncing(25.0), 30)
        _wait(app, lambda: "/s \u00b7" in window.workload.text.text(), 5)  # the workload's measured rate
        _settle(app, 0.3)

        def shot(widget, name):
            path = out_dir / name
            widget.grab().save(str(path))
            written.append(path)

        shot(window, "main_window.png")
        window.tabs.setCurrentWidget(window.charts)
        _settle(app, 1.0)
        shot(window, "charts.png")
        window.tabs.setCurrentWidget(window.details)

        window.tree.select(("group", "SiteA", "erp"))
        wiz = window.mirror_actions.open_create_pair()
        wiz.next()
        prim = wiz.primary_page
        for i in range(prim.volume.count()):
            if prim.volume.itemData(i).name == "files":
                prim.volume.setCurrentIndex(i)
        wiz.next()
        _wait(app, lambda: wiz.secondary_page.table.rowCount() > 0)
        _settle(app, 0.2)
        shot(wiz, "create_pair_candidates.png")
        wiz.button(QWizard.CancelButton).click()

        _call(app, bridge, "stop_workload")
        _wait(app, lambda: window.state.group("payroll", "SiteA").status == "optimal", 60)
        _call(app, bridge, "lab_link", True)

        def lost() -> bool:
            return any(p.title.startswith("Communication lost") for p in window.guru.problems)
        _wait(app, lost, 20)
        row = next((i for i, p in enumerate(window.guru.problems) if p.title.startswith("Communication lost")), 0)
        window.guru.list.setCurrentRow(row)
        window.guru_dock.setFloating(True)
        window.guru_dock.resize(720, 620)
        _settle(app, 0.5)
        shot(window.guru_dock, "recovery_guru.png")
        window.guru_dock.setFloating(False)
        _call(app, bridge, "lab_link", False)
    finally:
        for w in QApplication.topLevelWidgets():
            if w is not window:
                w.close()
        bridge.stop()
        window.close()
        window.deleteLater()
        app.processEvents()
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "docs/images")
    for p in render(out):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
