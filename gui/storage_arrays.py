"""Storage arrays (the Unified Manager side): the managed arrays, adding one by address, discovering them.

The page lists every array the console manages — the lab's and the saved ones —
reachable or not (with the reason and when it last answered), and adds an array by
address, port and password: the first contact shows its certificate and the
administrator accepts it (or imports a CA or the array's certificate from a file).
Discover scans a host or an address range. All network work is an engine call
through the bridge (the UI thread never waits on the network); errors are shown on
the page where they were typed, in the engine's words with their code.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QDockWidget, QFileDialog, QFormLayout, QHBoxLayout,
                               QHeaderView, QInputDialog, QLabel, QLineEdit, QMainWindow, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from gui.certificates_view import CertificateAcceptDialog, CertificatesDialog, certificate_changed_warning
from gui.messages import confirm

REFRESH_MS = 2000  # the states are read from the engine's clients: no network, cheap
GREY = QColor("#8a8a8a")


def error_text(err) -> str:
    return f"{getattr(err, 'message', None) or err} [{getattr(err, 'code', 'error')}]"


def _error_label() -> QLabel:
    label = QLabel("")
    label.setObjectName("errorLabel")
    label.setWordWrap(True)
    label.setStyleSheet("color: #b3261e")
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    return label


def choose_certificate_file(parent: QWidget) -> str:
    path, _ = QFileDialog.getOpenFileName(parent, "Import a CA certificate or the array's certificate", "",
                                          "Certificates (*.pem *.crt *.cer *.der);;All files (*)")
    return path


def ask_new_name(parent: QWidget, current: str) -> str | None:
    text, ok = QInputDialog.getText(parent, "Rename the array", "Display name:", QLineEdit.Normal, current)
    return text if ok else None


class AddArrayDialog(QDialog):
    """Add an array by address, port and password; its certificate is accepted explicitly or imported."""

    sig_added = Signal(object)
    """The ManagedArrayState of the array just added."""

    def __init__(self, bridge, parent: QWidget | None = None, address: str = "", port: int = 8443, name: str = ""):
        super().__init__(parent)
        self.bridge = bridge
        self.setObjectName("addArrayDialog")
        self.setWindowTitle("Add a storage array")
        self.name = QLineEdit(name)
        self.name.setPlaceholderText("display name, e.g. SiteA (Paris)")
        self.address = QLineEdit(address)
        self.address.setPlaceholderText("host name or IP address")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(port)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.Password)
        self.certificate_file = QLineEdit()
        self.certificate_file.setReadOnly(True)
        self.certificate_file.setPlaceholderText("none: the array's certificate is shown for you to accept")
        pick = QPushButton("Import certificate\u2026")
        pick.clicked.connect(self._pick)
        file_row = QHBoxLayout()
        file_row.addWidget(self.certificate_file, 1)
        file_row.addWidget(pick)
        form = QFormLayout()
        form.addRow("Name:", self.name)
        form.addRow("Address:", self.address)
        form.addRow("Port:", self.port)
        form.addRow("Password (admin):", self.password)
        form.addRow("Certificate file:", file_row)
        self.error = _error_label()
        self.progress = QLabel("")
        buttons = QDialogButtonBox()
        self.connect_button = buttons.addButton("Connect\u2026", QDialogButtonBox.ActionRole)
        self.connect_button.setDefault(True)
        self.connect_button.clicked.connect(self.start)
        buttons.addButton(QDialogButtonBox.Cancel)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.accept_dialog: CertificateAcceptDialog | None = None

    def _pick(self) -> None:
        path = choose_certificate_file(self)
        if path:
            self.certificate_file.setText(path)

    def _busy(self, text: str) -> None:
        self.progress.setText(text)
        self.error.setText("")
        self.connect_button.setEnabled(not text)

    def _failed(self, err) -> None:
        self._busy("")
        self.error.setText(error_text(err))

    def start(self) -> None:
        """Connect: with an imported certificate, log in and add; otherwise show the certificate first."""
        name, address = self.name.text().strip(), self.address.text().strip()
        if not name or not address or not self.password.text():
            self.error.setText("give a name, the array's address and its admin password")
            return
        if self.certificate_file.text():
            self._add(ca_file=self.certificate_file.text())
            return
        self._busy(f"Contacting {address}:{self.port.value()}\u2026")
        self.bridge.call("inspect_array", address, self.port.value(), on_done=self._show_certificate,
                         on_error=self._failed)

    def _show_certificate(self, contact) -> None:
        self._busy("")
        self.accept_dialog = CertificateAcceptDialog(contact, self)
        self.accept_dialog.accepted.connect(lambda: self._add(fingerprint=contact.certificate.sha256))
        self.accept_dialog.open()

    def _add(self, fingerprint: str | None = None, ca_file: str | None = None) -> None:
        self._busy("Logging in and adding the array\u2026")
        self.bridge.call("add_managed_array", self.name.text().strip(), self.address.text().strip(),
                         self.password.text(), self.port.value(), fingerprint=fingerprint, ca_file=ca_file,
                         on_done=self._added, on_error=self._failed)

    def _added(self, state) -> None:
        self._busy("")
        self.sig_added.emit(state)
        self.accept()


class DiscoverDialog(QDialog):
    """Scan a host or an address range on a port; add the chosen answer (through AddArrayDialog)."""

    sig_scanned = Signal(int)
    """A scan ended: how many arrays answered."""

    COLUMNS = ["URL", "Array", "WWN", "Certificate SHA-256", "Managed as"]

    def __init__(self, bridge, page: "StorageArraysPage", parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.page = page
        self.setObjectName("discoverDialog")
        self.setWindowTitle("Discover storage arrays")
        self.resize(900, 360)
        self.targets = QLineEdit()
        self.targets.setPlaceholderText("host, 10.0.0.10-10.0.0.40, 10.0.0.10-40 or 10.0.0.0/28")
        self.ports = QLineEdit("8443")
        self.scan_button = QPushButton("Scan")
        self.scan_button.clicked.connect(self.scan)
        row = QHBoxLayout()
        row.addWidget(QLabel("Host or range:"))
        row.addWidget(self.targets, 1)
        row.addWidget(QLabel("Port(s):"))
        row.addWidget(self.ports)
        row.addWidget(self.scan_button)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.status = QLabel("")
        self.error = _error_label()
        self.add_button = QPushButton("Add the chosen array\u2026")
        self.add_button.clicked.connect(self.add_chosen)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.add_button)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.table)
        layout.addWidget(self.error)
        layout.addLayout(bottom)
        self.found: tuple = ()
        self.add_dialog: AddArrayDialog | None = None

    def scan(self) -> None:
        self.error.setText("")
        self.status.setText("Scanning\u2026")
        self.scan_button.setEnabled(False)
        started = time.monotonic()
        self.bridge.call("discover_arrays", self.targets.text(), self.ports.text(),
                         on_done=lambda found: self._show(found, time.monotonic() - started), on_error=self._failed)

    def _failed(self, err) -> None:
        self.scan_button.setEnabled(True)
        self.status.setText("")
        self.error.setText(error_text(err))

    def _show(self, found, seconds: float) -> None:
        self.scan_button.setEnabled(True)
        managed = {s.array_name: s.name for s in self.page.states if s.managed}
        self.found = tuple(found)
        self.table.setRowCount(len(found))
        for r, f in enumerate(found):
            for c, value in enumerate([f.url, f.array_name, f.wwn, f.certificate_sha256,
                                       managed.get(f.array_name, "")]):
                self.table.setItem(r, c, QTableWidgetItem(value))
        self.status.setText(f"{len(found)} array(s) answered ({seconds:.1f} s)")
        if found:
            self.table.selectRow(0)
        self.sig_scanned.emit(len(found))

    def add_chosen(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        if not rows:
            self.error.setText("choose an array in the list first")
            return
        f = self.found[rows[0]]
        self.add_dialog = self.page.open_add(address=f.address, port=f.port, name=f.array_name)


class StorageArraysPage(QWidget):
    """The managed arrays, their reachability and trust; add, discover, test, rename, remove, certificates."""

    sig_states_changed = Signal(tuple)
    """tuple[ManagedArrayState]: the managed arrays as last read from the engine."""

    COLUMNS = ["Name", "Array", "Address", "Status", "Last answered", "Trust"]

    def __init__(self, bridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.setObjectName("storageArraysPage")
        self.states: tuple = ()
        self._warned: set[tuple[str, str]] = set()
        self.warnings: dict[str, object] = {}
        self._in_flight = False
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setSelectionMode(QTableWidget.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        buttons = QHBoxLayout()
        self.buttons = {}
        for key, text, slot in (("add", "Add\u2026", self.open_add), ("discover", "Discover\u2026", self.open_discover),
                                ("test", "Test connection", self.test_selected),
                                ("rename", "Rename\u2026", self.rename_selected),
                                ("remove", "Remove", self.remove_selected),
                                ("certificates", "Certificates\u2026", self.open_certificates)):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, s=slot: s())
            buttons.addWidget(b)
            self.buttons[key] = b
        buttons.addStretch(1)
        self.message = QLabel("")
        self.message.setObjectName("messageLabel")
        self.message.setWordWrap(True)
        self.error = _error_label()
        self.passwords = QLabel("")
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.error)
        layout.addWidget(self.passwords)
        self.dialogs: dict[str, QDialog] = {}
        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        bridge.sig_ready.connect(self._ready)
        bridge.sig_engine_event.connect(lambda ev: self.refresh() if ev.kind in ("array", "link") else None)
        if bridge.ready:
            self._ready()

    def _ready(self) -> None:
        self._timer.start()
        self.refresh()
        self.bridge.call("passwords_stored_in", on_done=lambda where: self.passwords.setText(
            f"Passwords stored in: {where}"), on_error=lambda _e: None)

    # -- the list -------------------------------------------------------------------------------
    def refresh(self) -> None:
        if self._in_flight or not self.bridge.ready:
            return
        self._in_flight = True

        def failed(err):
            self._in_flight = False
            self.error.setText(error_text(err) if getattr(err, "code", "") != "notImplemented" else
                               "This console manages only the lab's arrays: it keeps no saved arrays to add to.")
        self.bridge.call("managed_arrays", on_done=self._show, on_error=failed)

    def _show(self, states) -> None:
        self._in_flight = False
        self.states = tuple(states)
        selected = self.selected_name()
        self.table.setRowCount(len(self.states))
        now = time.time()
        for r, s in enumerate(self.states):
            values = [s.name, s.array_name, s.url, self.status_text(s), self.last_answered_text(s, now), s.trust]
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if s.reachable is False or not s.managed:
                    item.setForeground(GREY)
                if c == 3 and s.presented_sha256:
                    item.setForeground(QColor("#b3261e"))
                self.table.setItem(r, c, item)
            if s.name == selected:
                self.table.selectRow(r)
            if s.presented_sha256 and (s.name, s.presented_sha256) not in self._warned:
                self._warned.add((s.name, s.presented_sha256))
                self.warnings[s.name] = certificate_changed_warning(self, s)
        self.sig_states_changed.emit(self.states)

    @staticmethod
    def status_text(s) -> str:
        if not s.managed:
            return f"Not managed: {s.reason}"
        if s.presented_sha256:
            return "Certificate changed: refused"
        if s.reachable is None:
            return "Connecting\u2026"
        return "Reachable" if s.reachable else f"Unreachable: {s.reason}"

    @staticmethod
    def last_answered_text(s, now: float) -> str:
        if s.last_answered is None:
            return "never" if s.reachable is False else ""
        ago = max(0, int(now - s.last_answered))
        return time.strftime("%H:%M:%S", time.localtime(s.last_answered)) + (f" ({ago} s ago)" if ago >= 5 else "")

    def selected_name(self) -> str | None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        return self.states[min(rows)].name if rows and min(rows) < len(self.states) else None

    def select(self, name: str) -> None:
        for r, s in enumerate(self.states):
            if s.name == name:
                self.table.selectRow(r)

    def row_texts(self) -> list[list[str]]:
        return [[self.table.item(r, c).text() for c in range(self.table.columnCount())]
                for r in range(self.table.rowCount())]

    # -- actions ----------------------------------------------------------------------------------
    def _say(self, text: str = "", err=None) -> None:
        self.message.setText(text)
        self.error.setText(error_text(err) if err is not None else "")

    def _refuse(self, message: str, code: str) -> None:
        self.message.setText("")
        self.error.setText(f"{message} [{code}]")

    def open_add(self, address: str = "", port: int = 8443, name: str = "") -> AddArrayDialog:
        dialog = AddArrayDialog(self.bridge, self, address=address, port=port, name=name)
        dialog.sig_added.connect(lambda s: (self._say(f"Added {s.name}: array {s.array_name} at {s.url}"),
                                            self.refresh()))
        self.dialogs["add"] = dialog
        dialog.open()
        return dialog

    def open_discover(self) -> DiscoverDialog:
        dialog = DiscoverDialog(self.bridge, self, self)
        self.dialogs["discover"] = dialog
        dialog.open()
        return dialog

    def open_certificates(self) -> CertificatesDialog:
        dialog = CertificatesDialog(self.bridge, self)
        self.dialogs["certificates"] = dialog
        dialog.open()
        return dialog

    def _selected_or_say(self) -> str | None:
        name = self.selected_name()
        if name is None:
            self._refuse("choose an array in the list first", "noSelection")
        return name

    def test_selected(self) -> None:
        name = self._selected_or_say()
        if name is not None:
            self._say(f"Testing the connection to {name}\u2026")
            self.bridge.call("test_connection", name, on_done=lambda r: self._say(r["message"]),
                             on_error=lambda e: self._say(err=e))

    def rename_selected(self) -> None:
        name = self._selected_or_say()
        if name is None:
            return
        state = next(s for s in self.states if s.name == name)
        if state.source != "saved":
            self._refuse(f"{name} is the lab's array: its name is the array's own", "labArray")
            return
        new = ask_new_name(self, name)
        if new and new != name:
            self.bridge.call("rename_managed_array", name, new,
                             on_done=lambda _r: (self._say(f"{name} is now called {new}"), self.refresh()),
                             on_error=lambda e: self._say(err=e))

    def remove_selected(self) -> None:
        name = self._selected_or_say()
        if name is None:
            return
        state = next(s for s in self.states if s.name == name)
        if state.source != "saved":
            self._refuse(f"{name} is the lab's array; 'mirrorctl lab down' stops the lab", "labArray")
            return
        if confirm(self, "Remove the array?", f"Stop managing {name} ({state.url})? The array itself keeps running "
                   "and mirroring; its password is removed from this console.", destructive=True):
            self.bridge.call("remove_managed_array", name,
                             on_done=lambda _r: (self._say(f"{name} is no longer managed"), self.refresh()),
                             on_error=lambda e: self._say(err=e))


def install_storage_arrays(window: QMainWindow) -> QDockWidget:
    """The Storage arrays dock of ``window`` (hidden until chosen in the menu); it watches certificates from the start."""
    page = StorageArraysPage(window.bridge)
    dock = QDockWidget("Storage Arrays", window)
    dock.setObjectName("StorageArrays")
    dock.setWidget(page)
    window.addDockWidget(Qt.RightDockWidgetArea, dock)
    dock.hide()
    window.storage_arrays = page
    return dock
