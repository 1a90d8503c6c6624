"""The main window only assembles: panels, menus, toolbar, status bar. Panels talk through signals."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QSplitter, QTabWidget, QToolBar

from gui.bridge import EngineBridge
from gui.charts_panel import ChartsPanel
from gui.console_state import ConsoleState
from gui.details_panel import DetailsPanel
from gui.event_log import EventLogPanel
from gui.guru_panel import GuruPanel
from gui.lab_menu import LabMenu
from gui.mirror_actions import MirrorActions
from gui.theme import icon
from gui.tree_panel import TreePanel


class MainWindow(QMainWindow):
    """Tree | details+charts, Recovery Guru dock on the right, event log dock at the bottom."""

    def __init__(self, bridge: EngineBridge):
        super().__init__()
        self.bridge = bridge
        self.setWindowTitle(f"Async Mirror Console \u2014 {bridge.home}")
        self.setWindowIcon(icon("app"))
        self.resize(1360, 860)
        self.state = ConsoleState(bridge, self)
        self.tree = TreePanel(self.state)
        self.details = DetailsPanel(self.state)
        self.charts = ChartsPanel(self.state, bridge)
        self.guru = GuruPanel(bridge)
        self.events = EventLogPanel(bridge)
        self.mirror_actions = MirrorActions(bridge, self.state, self)
        self.lab = LabMenu(bridge, self.state, self)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.details, "Details")
        self.tabs.addTab(self.charts, "Performance")
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.tree)
        split.addWidget(self.tabs)
        split.setSizes([450, 700])
        split.setStretchFactor(1, 1)
        self.setCentralWidget(split)
        self.guru_dock = self._dock("Recovery Guru", self.guru, Qt.RightDockWidgetArea)
        self.events_dock = self._dock("Event Log", self.events, Qt.BottomDockWidgetArea)
        self.resizeDocks([self.guru_dock], [300], Qt.Horizontal)
        self.resizeDocks([self.events_dock], [170], Qt.Vertical)
        self._menus()
        self._status_bar()

        for panel in (self.details, self.charts, self.mirror_actions):
            self.tree.sig_selection_changed.connect(panel.set_selection)
        self.tree.sig_selection_changed.connect(self._lab_selection)
        self.tree.sig_context_menu.connect(lambda pos: self.mirror_menu.exec(pos))
        self.guru.sig_problem_count.connect(self._problem_count)
        bridge.sig_ready.connect(lambda: self.engine_label.setText(
            "Managing the array daemons over HTTPS" if bridge.remote else "Engine running"))
        bridge.sig_start_failed.connect(self._start_failed)

    def _dock(self, title, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", ""))
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction("E&xit", self.close)
        self.mirror_menu = bar.addMenu("&Mirroring")
        self.mirror_actions.fill_menu(self.mirror_menu)
        bar.addMenu(self.lab)
        view = bar.addMenu("&View")
        view.addAction(self.guru_dock.toggleViewAction())
        view.addAction(self.events_dock.toggleViewAction())
        view.addAction("Long running operations\u2026", self.mirror_actions.open_lro)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction("About", lambda: QMessageBox.about(
            self, "Async Mirror Console",
            "Asynchronous volume mirroring between storage arrays: console and embedded lab."))
        tb = QToolBar("Main", objectName="mainToolbar")
        tb.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        tb.setIconSize(tb.iconSize() * 0.9)
        tb.setMovable(False)
        a = self.mirror_actions
        tb.addActions([a.new_group, a.new_pair])
        tb.addSeparator()
        tb.addActions([a.sync_now, a.suspend, a.resume])
        tb.addSeparator()
        tb.addActions([a.promote, a.demote])
        tb.addSeparator()
        tb.addAction(a.lro)
        a.lro.setIcon(icon("status_synchronizing"))
        self.addToolBar(tb)

    def _status_bar(self) -> None:
        self.engine_label = QLabel("Starting the engine\u2026")
        self.problems_label = QLabel("Recovery Guru: \u2014")
        self.statusBar().addWidget(self.engine_label, 1)
        self.statusBar().addPermanentWidget(self.problems_label)

    def _problem_count(self, n: int) -> None:
        if n < 0:
            self.problems_label.setText("Recovery Guru: unavailable")
        elif n == 0:
            self.problems_label.setText("Recovery Guru: no problems")
        else:
            self.problems_label.setText(f"<span style='color:#b3261e'><b>Recovery Guru: {n} problem(s)</b></span>")

    def _lab_selection(self, sel) -> None:
        self.lab.selected_array = sel.array if sel else None
        self.lab.selected_volume = sel.ref if sel and sel.kind in ("volume", "pair") else None

    def _start_failed(self, message: str) -> None:
        self.engine_label.setText(f"Engine not running: {message}")
        QMessageBox(QMessageBox.Critical, "The engine could not start", message, QMessageBox.Ok, self).open()
