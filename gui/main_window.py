"""The main window only assembles: panels, menus, toolbar, status bar. Panels talk through signals."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QSplitter, QTabWidget, QToolBar

from gui.bridge import EngineBridge
from gui import window_layout
from gui.charts_panel import ChartsPanel
from gui.close_guard import CloseGuard
from gui.console_state import ConsoleState
from gui.details_panel import DetailsPanel
from gui.event_log import EventLogPanel
from gui.guru_panel import GuruPanel
from gui.lab_menu import LabMenu
from gui.preserved_view import PreservedDataView
from gui.lro_dialog import LongRunningOperationsPanel
from gui.mirror_actions import MirrorActions
from gui.storage_arrays import install_storage_arrays
from gui.theme import icon
from gui.tree_panel import TreePanel
from gui.workload_indicator import WorkloadIndicator


def version() -> str:
    """The installed package's version (what About shows)."""
    from importlib import metadata  # 40 ms of imports: not before the first window

    try:
        return metadata.version("async-mirror-console")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


class MainWindow(QMainWindow):
    """Tree | details+charts, Recovery Guru dock on the right, event log and LRO docks at the bottom."""

    def __init__(self, bridge: EngineBridge, restore_layout: bool = True):
        super().__init__()
        self.bridge = bridge
        self.setWindowTitle(f"Async Mirror Console \u2014 {bridge.home}")
        self.setWindowIcon(icon("app"))
        self.resize(1360, 860)
        self.setDockNestingEnabled(True)
        self.state = ConsoleState(bridge, self)
        self.tree = TreePanel(self.state)
        self.details = DetailsPanel(self.state)
        self.charts = ChartsPanel(self.state, bridge)
        self.guru = GuruPanel(bridge)
        self.events = EventLogPanel(bridge)
        self.mirror_actions = MirrorActions(bridge, self.state, self)
        self.lab = LabMenu(bridge, self.state, self)
        self.lro = LongRunningOperationsPanel(bridge, self.state)
        self.close_guard = CloseGuard(bridge, self.state, self)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.details, "Details")
        self.tabs.addTab(self.charts, "Performance")
        # The tree keeps its width when the window, the Guru or the tab changes: the tabs take the
        # difference (a shrinking tree cut every name to "\u2026" when the Guru showed a long problem).
        self.split = split = QSplitter(Qt.Horizontal, objectName="mainSplit")
        split.addWidget(self.tree)
        split.addWidget(self.tabs)
        split.setCollapsible(0, False)
        split.setCollapsible(1, False)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([450, 700])
        self.setCentralWidget(split)
        self.guru_dock = self._dock("Recovery Guru", self.guru, Qt.RightDockWidgetArea)
        self.events_dock = self._dock("Event Log", self.events, Qt.BottomDockWidgetArea)
        self.lro_dock = self._dock("Long Running Operations", self.lro, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.events_dock, self.lro_dock)
        self.lro_dock.visibilityChanged.connect(self.lro.set_shown)  # behind the event log's tab it is not in view
        self.events_dock.raise_()
        self.resizeDocks([self.guru_dock], [300], Qt.Horizontal)
        self.resizeDocks([self.events_dock], [230], Qt.Vertical)
        self._menus()
        self._status_bar()
        self.mirror_actions.sig_lro_requested.connect(self.show_lro)
        self._layout_restored = restore_layout and window_layout.restore(self)

        for panel in (self.details, self.charts, self.mirror_actions):
            self.tree.sig_selection_changed.connect(panel.set_selection)
        self.tree.sig_selection_changed.connect(self._lab_selection)
        self.tree.sig_context_menu.connect(lambda pos: self.mirror_menu.exec(pos))
        self.guru.sig_problem_count.connect(self._problem_count)
        self.guru.sig_problems_changed.connect(self.mirror_actions.set_guru_problems)  # Resume follows the Guru
        self.guru.sig_console_action.connect(self.mirror_actions.on_guru_action)  # capacity: the dialog asks
        bridge.sig_ready.connect(lambda: self.engine_label.setText("Managing the array daemons over HTTPS"))
        bridge.sig_start_failed.connect(self._start_failed)

    def _dock(self, title, widget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title.replace(" ", ""))
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def open_preserved_data(self) -> PreservedDataView:
        """What role-conflict losers wrote while apart (non-modal; one window, raised again)."""
        view = getattr(self, "preserved_view", None)
        if view is None:
            view = self.preserved_view = PreservedDataView(self.bridge, self)
        view.show()
        view.raise_()
        return view

    def _menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.quit_action = file_menu.addAction("&Quit", self.close)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))  # QKeySequence.Quit is empty on some Linux desktops
        self.quit_action.setShortcutContext(Qt.ApplicationShortcut)
        self.quit_action.setMenuRole(self.quit_action.MenuRole.QuitRole)
        self.mirror_menu = bar.addMenu("&Mirroring")
        self.mirror_actions.fill_menu(self.mirror_menu)
        bar.addMenu(self.lab)
        view = bar.addMenu("&View")
        view.addAction(self.guru_dock.toggleViewAction())
        view.addAction(self.events_dock.toggleViewAction())
        view.addAction(self.lro_dock.toggleViewAction())
        view.addAction(install_storage_arrays(self).toggleViewAction())  # Unified Manager side: gui/storage_arrays.py
        self.preserved_action = view.addAction("&Preserved data…", self.open_preserved_data)  # gui/preserved_view.py
        help_menu = bar.addMenu("&Help")
        self.about_action = help_menu.addAction("&About Async Mirror Console", self.show_about)
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

    def about_text(self) -> str:
        return (f"<h3>Async Mirror Console {version()}</h3>"
                "<p>Asynchronous volume mirroring between storage arrays: console and embedded lab.</p>"
                "<p>Arrays: array daemons, managed over HTTPS"
                f"<br>Lab home: {self.bridge.home}</p>")

    def show_about(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Information, "About Async Mirror Console", self.about_text(), QMessageBox.Ok, self)
        box.setObjectName("aboutBox")
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        box.open()
        return box

    def show_lro(self) -> None:
        self.lro_dock.show()
        self.lro_dock.raise_()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._layout_restored:  # first start: the tree gets about 30 % of a wide window
            self._layout_restored = True
            total = sum(self.split.sizes())
            tree = max(self.tree.minimumWidth(), min(600, int(self.width() * 0.3)), 450)
            if total > tree + self.tabs.minimumSizeHint().width():
                self.split.setSizes([tree, total - tree])

    def closeEvent(self, event) -> None:
        """Ask first while a synchronization runs (see :mod:`gui.close_guard`); remember the layout."""
        if not self.close_guard.may_close():
            event.ignore()
            return
        window_layout.save(self)
        super().closeEvent(event)

    @property
    def stop_arrays_on_exit(self) -> bool | None:
        """The answer to "close during a sync" when this console started the lab (None: not asked)."""
        return self.close_guard.stop_arrays

    def _status_bar(self) -> None:
        self.engine_label = QLabel("Starting the engine\u2026")
        self.problems_label = QLabel("Recovery Guru: \u2014")
        self.statusBar().addWidget(self.engine_label, 1)
        self.workload = WorkloadIndicator(self.bridge, self.state, self)  # a running lab workload, with Stop
        self.statusBar().addPermanentWidget(self.workload)
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
