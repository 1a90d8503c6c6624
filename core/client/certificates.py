"""What an administrator must see before trusting an array: its certificate, read with cryptography's x509.

An array daemon's certificate is usually self-signed, so nothing vouches for it: the
administrator accepts it by its SHA-256 fingerprint after seeing its subject and
validity, or imports a CA (or the array's own certificate) from a file. This module
reads certificates — from a file or from a server's TLS handshake, without trusting
it — into a plain :class:`CertificateInfo`; it never decides trust.
"""
from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from core.errors import CommunicationError, MirrorError

EXPIRY_WARNING_DAYS = 30  # the Certificates view warns under this many days left


@dataclass(frozen=True)
class CertificateInfo:
    """One certificate as shown to the administrator (plain data)."""

    subject: str
    issuer: str
    not_before: str  # ISO 8601, UTC
    not_after: str
    sha256: str  # lower-case hex, no colons (what clients pin)
    self_signed: bool
    is_ca: bool
    pem: str

    @property
    def days_left(self) -> int:
        end = datetime.fromisoformat(self.not_after)
        return int((end - datetime.now(timezone.utc)).total_seconds() // 86400)

    @property
    def expires_soon(self) -> bool:
        return self.days_left < EXPIRY_WARNING_DAYS

    @property
    def fingerprint(self) -> str:
        """``AB:CD:...`` as browsers and the array's about page show a SHA-256."""
        return colon_fingerprint(self.sha256)

    def describe(self) -> str:
        """Subject, validity and fingerprint on a few lines, for the CLI's confirmation and the dialog."""
        return (f"Subject:     {self.subject}\nIssuer:      {self.issuer}"
                f"{' (self-signed)' if self.self_signed else ''}\n"
                f"Valid:       {self.not_before} to {self.not_after} ({self.days_left} days left)\n"
                f"SHA-256:     {self.fingerprint}")

    def to_json(self) -> dict:
        return {"subject": self.subject, "issuer": self.issuer, "notBefore": self.not_before,
                "notAfter": self.not_after, "sha256": self.sha256, "selfSigned": self.self_signed,
                "ca": self.is_ca, "daysLeft": self.days_left}


def colon_fingerprint(hexdigest: str) -> str:
    h = hexdigest.replace(":", "").upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def certificate_info(cert: x509.Certificate) -> CertificateInfo:
    der = cert.public_bytes(serialization.Encoding.DER)
    try:
        is_ca = bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        is_ca = False
    return CertificateInfo(
        subject=cert.subject.rfc4514_string() or "(empty)", issuer=cert.issuer.rfc4514_string() or "(empty)",
        not_before=cert.not_valid_before_utc.isoformat(timespec="seconds"),
        not_after=cert.not_valid_after_utc.isoformat(timespec="seconds"),
        sha256=hashlib.sha256(der).hexdigest(), self_signed=cert.subject == cert.issuer, is_ca=is_ca,
        pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))


def from_der(der: bytes) -> CertificateInfo:
    return certificate_info(x509.load_der_x509_certificate(der))


def load_certificate_file(path: str | Path) -> CertificateInfo:
    """The (first) certificate in a PEM or DER file; a missing or unreadable file is one line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MirrorError(f"cannot read the certificate file {path}: {e.strerror or e}",
                          code="invalidCertificateFile") from None
    try:
        if b"-----BEGIN" in data:
            return certificate_info(x509.load_pem_x509_certificates(data)[0])
        return from_der(data)
    except (ValueError, IndexError):
        raise MirrorError(f"{path} holds no certificate (expected a PEM or DER X.509 certificate)",
                          code="invalidCertificateFile") from None


def _unverified_context() -> ssl.SSLContext:
    """TLS that reads whatever certificate the server presents: only to *show* it, never to trust it."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def fetch_certificate(host: str, port: int, timeout: float = 5.0) -> CertificateInfo:
    """The certificate the server at ``host:port`` presents in its TLS handshake.

    A server that answers in plain HTTP is refused as ``notHttps`` (an array's API is
    HTTPS only; basic auth in clear text would give its password away).
    """
    where = f"{host}:{port}"
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=_unverified_context(), server_hostname=host or None), timeout)
    except ssl.SSLError:
        if await _speaks_plain_http(host, port, timeout):
            raise MirrorError(f"{where} answers in plain HTTP, not HTTPS; an array's REST API is HTTPS only "
                              "(give the array daemon's HTTPS port)", code="notHttps") from None
        raise MirrorError(f"{where} does not complete a TLS handshake; it is not an array's HTTPS port",
                          code="notAnArray") from None
    except asyncio.TimeoutError:
        raise CommunicationError(f"cannot reach {where}: no answer within {timeout:g} s",
                                 code="arrayUnreachable") from None
    except ConnectionRefusedError:
        raise CommunicationError(f"cannot reach {where}: connection refused (nothing listens on that port)",
                                 code="arrayUnreachable") from None
    except OSError as e:
        raise CommunicationError(f"cannot reach {where}: {e.strerror or e}", code="arrayUnreachable") from None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass
    if not der:
        raise MirrorError(f"{where} presented no certificate", code="notAnArray")
    return from_der(der)


async def _speaks_plain_http(host: str, port: int, timeout: float) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        first = await asyncio.wait_for(reader.read(5), timeout)
        return first == b"HTTP/"
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()
