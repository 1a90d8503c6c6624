"""The array daemon's HTTPS certificate: generated once, self-signed, pinned by fingerprint.

An administrator who has no certificate of their own still gets HTTPS: the first
start writes ``data_dir/tls/cert.pem`` and ``key.pem`` and every later start reuses
them, so a client that accepted (pinned) the certificate's SHA-256 fingerprint
keeps trusting the daemon across restarts. That is also why the certificate is
never renewed behind the administrator's back: a new key would break every pin.

The key is ECDSA P-256: generated in a millisecond (tests and first starts do not
wait on RSA prime search) and accepted by every TLS client in use.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TLS_DIR = "tls"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALID_DAYS = 3650  # pinned by fingerprint, so it must outlive the installation


def ensure_certificate(data_dir: Path, name: str, addresses: list[str] | None = None) -> tuple[Path, Path]:
    """``(cert, key)`` under ``data_dir/tls``, created on the first call only.

    The certificate names ``localhost``, 127.0.0.1, ::1, this host's name and every
    entry of ``addresses`` (IP addresses or DNS names the daemon is reached by), so
    a client that verifies host names accepts it on any of them.
    """
    tls = Path(data_dir) / TLS_DIR
    cert, key = tls / CERT_FILE, tls / KEY_FILE
    if cert.exists() and key.exists():
        return cert, key
    tls.mkdir(parents=True, exist_ok=True)
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = _self_signed(private_key, name, _subject_names(addresses or []))
    # Key first, then certificate, each written whole and renamed into place: a crash
    # in between leaves no certificate, so the next start makes a matching pair.
    _write_atomic(key, private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()), mode=0o600)
    _write_atomic(cert, pem, mode=0o644)
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or later with the certificate and its key."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def fingerprint_sha256(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER bytes, lower-case hex without colons (what clients pin)."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def _subject_names(addresses: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for entry in ["localhost", "127.0.0.1", "::1", socket.gethostname(), *addresses]:
        entry = entry.strip()
        if not entry:
            continue
        try:
            general: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(entry))
        except ValueError:
            general = x509.DNSName(entry)
        if general not in names:
            names.append(general)
    return names


def _self_signed(private_key, name: str, san: list[x509.GeneralName]) -> bytes:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64] or "array"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Async Mirror Console")])
    now = dt.datetime.now(dt.timezone.utc)
    public = private_key.public_key()
    # Key identifiers and an explicit end-entity BasicConstraints keep strict
    # verifiers (OpenSSL 3 with X509_STRICT, Python 3.13's default) accepting it.
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .sign(private_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # the key is never readable by others
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)  # the umask may have narrowed it; state it exactly
    os.replace(tmp, path)
