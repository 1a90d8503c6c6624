"""Certificates: accepting an array's certificate explicitly, the Certificate management view, the changed-certificate warning.

Nothing here trusts anything by itself: the acceptance dialog shows what the array
presented (subject, issuer, validity, SHA-256) and the administrator decides; the
view compares every managed array's certificate as presented now with the accepted
one (and warns under 30 days of validity); a certificate that changed on reconnect
is a modal warning naming both fingerprints — the array stays refused until the
administrator removes it and adds it again.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QMessageBox,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)


WARN = QColor("#b26a00")
BAD = QColor("#b3261e")


def _mono(text: str) -> QLabel:
    label = QLabel(text)
    label.setFont(QFont("monospace"))
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    label.setWordWrap(True)
    return label


def validity_text(cert) -> str:
    days = cert.days_left
    left = f"expired {-days} day(s) ago" if days < 0 else f"{days} day(s) left"
    return f"{cert.not_before} to {cert.not_after} ({left})"


class CertificateAcceptDialog(QDialog):
    """The first contact's certificate: accepted only by the administrator's click ("Accept and add")."""

    def __init__(self, contact, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("certificateAcceptDialog")
        self.setWindowTitle("Accept the array's certificate?")
        self.setModal(True)
        cert = contact.certificate
        intro = QLabel(f"The array <b>{contact.array_name}</b> at {contact.url} presents this certificate. "
                       + ("It is self-signed: nothing vouches for it. " if cert.self_signed else "")
                       + "Accept it only if its fingerprint is the one the array's administrator gave you "
                         "(<code>mirrorctl lab status</code> or the array's daemon.json show it).")
        intro.setWordWrap(True)
        form = QFormLayout()
        self.subject = _mono(cert.subject)
        self.issuer = _mono(cert.issuer + (" (self-signed)" if cert.self_signed else ""))
        self.validity = QLabel(validity_text(cert))
        if cert.expires_soon:
            self.validity.setStyleSheet(f"color: {BAD.name() if cert.days_left < 0 else WARN.name()}")
        self.fingerprint = _mono(cert.fingerprint)
        self.fingerprint.setObjectName("fingerprint")
        form.addRow("Subject:", self.subject)
        form.addRow("Issuer:", self.issuer)
        form.addRow("Valid:", self.validity)
        form.addRow("SHA-256:", self.fingerprint)
        buttons = QDialogButtonBox()
        self.accept_button = buttons.addButton("Accept and add", QDialogButtonBox.AcceptRole)
        buttons.addButton(QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(buttons)


def certificate_changed_warning(parent: QWidget | None, state) -> QMessageBox:
    """The blocking (modal) warning of a changed certificate, with both fingerprints; opened, not exec()'d."""
    # Imported here: core.client brings aiohttp and cryptography, which the first window does not need.
    from core.client.certificates import colon_fingerprint

    box = QMessageBox(QMessageBox.Critical, "The certificate changed",
                      f"The certificate of array '{state.name}' ({state.url}) changed.\n\n"
                      f"Accepted:        {colon_fingerprint(state.certificate_sha256 or '')}\n"
                      f"Now presented: {colon_fingerprint(state.presented_sha256 or '')}\n\n"
                      "The console refuses to talk to it: another machine may be answering on its address. "
                      "If its certificate was replaced on purpose, check the new fingerprint with the array's "
                      "administrator, then remove the array and add it again.",
                      QMessageBox.Ok, parent)
    box.setObjectName("certificateChangedBox")
    box.setWindowModality(Qt.ApplicationModal)
    box.open()
    return box


class CertificatesDialog(QDialog):
    """Certificate management: each managed array's certificate as presented now, next to the accepted one."""

    sig_loaded = Signal()
    """The table was filled from the engine's answer."""

    COLUMNS = ["Name", "Array", "Subject", "Issuer", "Expires", "Days left", "SHA-256", "Status"]

    def __init__(self, bridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.setObjectName("certificatesDialog")
        self.setWindowTitle("Certificates")
        self.resize(1100, 320)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.verticalHeader().setVisible(False)
        self.status = QLabel("Reading the arrays' certificates\u2026")
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row = QHBoxLayout()
        row.addWidget(self.status, 1)
        row.addWidget(refresh)
        row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(row)
        self.refresh()

    def refresh(self) -> None:
        self.status.setText("Reading the arrays' certificates\u2026")
        self.bridge.call("array_certificates", on_done=self._show, on_error=self._failed)

    def _failed(self, err) -> None:
        self.status.setText(f"{getattr(err, 'message', err)} [{getattr(err, 'code', 'error')}]")

    def _show(self, certificates) -> None:
        from core.client.certificates import EXPIRY_WARNING_DAYS, colon_fingerprint

        self.table.setRowCount(len(certificates))
        for r, c in enumerate(certificates):
            cert = c.certificate
            status, color = "Accepted", None
            if cert is None:
                status, color = f"Unreadable: {c.error}", BAD
            elif c.changed:
                status, color = (f"CHANGED: accepted {colon_fingerprint(c.accepted_sha256)}, now "
                                 f"{cert.fingerprint}"), BAD
            elif cert.days_left < 0:
                status, color = "Expired", BAD
            elif cert.days_left < EXPIRY_WARNING_DAYS:
                status, color = f"Expires in {cert.days_left} day(s): renew it", WARN
            elif not c.accepted_sha256:
                status = "Trusted through its CA"
            values = [c.name, c.array_name, cert.subject if cert else "", cert.issuer if cert else "",
                      cert.not_after if cert else "", str(cert.days_left) if cert else "",
                      cert.fingerprint if cert else "", status]
            for col, value in enumerate(values):
                item = QTableWidgetItem(value)
                if color is not None and col in (5, 7):
                    item.setForeground(color)
                self.table.setItem(r, col, item)
        self.status.setText(f"{len(certificates)} array(s)")
        self.sig_loaded.emit()

    def row_texts(self) -> list[list[str]]:
        """The table as the administrator reads it (for tests and screenshots)."""
        return [[self.table.item(r, c).text() if self.table.item(r, c) else "" for c in range(self.table.columnCount())]
                for r in range(self.table.rowCount())]
