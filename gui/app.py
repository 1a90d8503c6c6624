"""``mirror-console [--home DIR]``: the window first, the engine behind it.

The window is shown before the engine has opened the arrays (SPEC §5: first window
in <= 1.5 s); panels fill in when the bridge reports ready.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMessageBox

from core.cli.common import lab_fleet_factory
from core.lab import default_home, init_lab
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


def build_console(home: Path | str, purpose: str = "console", poll_hz: float = 5.0,
                  nbd_port: int | None = 0, engine_factory=None,
                  restore_layout: bool = True) -> tuple[EngineBridge, MainWindow]:
    """The bridge (not started) and the main window around it; the caller starts and stops the bridge.

    With ``engine_factory`` (the lab's fleet) the console manages array daemons over REST;
    without it, the arrays of ``home`` run in this process and its engine serves their
    volumes over NBD (``nbd_port=0``: free ports; ``None`` serves nothing).
    """
    bridge = EngineBridge(home, purpose=purpose, poll_hz=poll_hz, nbd_port=nbd_port, engine_factory=engine_factory)
    return bridge, MainWindow(bridge, restore_layout=restore_layout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mirror-console", description="Async Mirror Console")
    parser.add_argument("--home", type=Path, default=None, help="lab home directory (default: the user's lab)")
    parser.add_argument("--nbd-port", type=int, default=0, metavar="N",
                        help="serve the arrays' volumes over NBD on ports N, N+1, ... (default 0: free ports)")
    parser.add_argument("--no-nbd", action="store_true", help="do not serve the volumes over NBD")
    parser.add_argument("--in-process", action="store_true",
                        help="run the lab's arrays inside the console instead of as array daemons")
    args = parser.parse_args(argv)
    home = args.home or default_home()
    init_lab(home, if_missing=True)
    app = make_app()
    factory = None if args.in_process else lab_fleet_factory()
    bridge, window = build_console(home, nbd_port=None if args.no_nbd else args.nbd_port, engine_factory=factory)
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
