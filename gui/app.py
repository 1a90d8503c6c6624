"""``mirror-console [--home DIR]``: the window first, the array daemons behind it.

The console manages array daemons over their REST APIs (the lab's, which it brings up
when they are not running, and the saved arrays). The window is shown before the
daemons answer (SPEC §5: first window in <= 1.5 s); panels fill in when the bridge
reports ready. Nothing before the first window imports the engine's libraries (the
fleet's REST client, SQLAlchemy, numpy, pyqtgraph): the engine is made on its own thread
and the charts are built when they are first shown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import QApplication, QMessageBox

from core.cli.common import lab_fleet_factory
from gui.bridge import EngineBridge
from gui.main_window import MainWindow
from gui.theme import icon, style_sheet


def make_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Async Mirror Console")
    app.setOrganizationName("AsyncMirror")
    app.setStyle("Fusion")
    app.setStyleSheet(style_sheet())
    app.setWindowIcon(icon("app"))
    return app


def build_console(home: Path | str, engine_factory: Callable, purpose: str = "console", poll_hz: float = 5.0,
                  restore_layout: bool = True) -> tuple[EngineBridge, MainWindow]:
    """The bridge (not started) and the main window around it; the caller starts and stops the bridge.

    ``engine_factory`` makes what answers the console's calls: the fleet of array daemons
    (:func:`core.cli.common.lab_fleet_factory` for the lab in ``home``).
    """
    bridge = EngineBridge(home, engine_factory, purpose=purpose, poll_hz=poll_hz)
    return bridge, MainWindow(bridge, restore_layout=restore_layout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mirror-console", description="Async Mirror Console")
    parser.add_argument("--home", type=Path, default=None, help="lab home directory (default: the user's lab)")
    args = parser.parse_args(argv)
    from core.lab import default_home  # the lab is made (when missing) by the engine, on its thread

    home = args.home or default_home()
    app = make_app()
    bridge, window = build_console(home, lab_fleet_factory())
    window.show()
    bridge.start()
    try:
        return app.exec()
    finally:
        lab = getattr(bridge.engine, "lab", None)
        bridge.stop()
        if lab is not None and getattr(lab, "started_here", False):
            # Closed during a sync, the window already asked whether the arrays keep running.
            stop = window.stop_arrays_on_exit
            if stop is None:
                from core.lab import array_dirs

                stop = not ask_leave_running([d.name for d in array_dirs(home)])
            if stop:
                from core.lab.supervisor import lab_down

                lab_down(home)


def ask_leave_running(arrays: list[str]) -> bool:
    """The console started the lab: storage arrays keep mirroring without it, unless the user stops them."""
    answer = QMessageBox.question(
        None, "Leave the arrays running?",
        f"This console started the lab's arrays ({', '.join(arrays)}) and their link.\n\n"
        "Storage arrays keep running and mirroring without the console; 'mirrorctl' and a later console "
        "manage them. Leave them running?\n\n(No stops them: 'mirrorctl lab down'.)",
        QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
    return answer == QMessageBox.Yes


if __name__ == "__main__":
    sys.exit(main())
