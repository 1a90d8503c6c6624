"""Real things for the managed-array tests: array daemons as processes, servers that are not arrays, a CA.

No tests here (shared by tests/test_managed_arrays.py and tests/gui/test_storage_arrays.py).
"""
from __future__ import annotations

import datetime as dt
import http.server
import json
import os
import ssl
import subprocess
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.lab import init_lab
from core.lab.processes import mirrorctl_command
from core.rest.tls import ensure_certificate


class Daemon:
    """``mirrorctl array serve`` of one data directory, as an administrator runs it on a host."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).resolve()
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.port = 0
        self.channel_port = 0  # kept across restarts: the other array's remote entry points at it

    def start(self, *extra: str) -> "Daemon":
        info_file = self.data_dir / "daemon.json"
        info_file.unlink(missing_ok=True)
        cmd = mirrorctl_command("array", "serve", "--data-dir", str(self.data_dir), "--rest-port", str(self.port),
                                "--channel-port", str(self.channel_port), "--nbd-port", "0", *extra)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        with open(self.data_dir / "daemon.log", "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if info_file.exists():
                info = json.loads(info_file.read_text() or "{}")
                if info.get("pid") == self.proc.pid:
                    self.info = info
                    self.port = int(info["restUrl"].rsplit(":", 1)[1])
                    self.channel_port = int(info["channelAddress"].rsplit(":", 1)[1])
                    return self
            assert self.proc.poll() is None, (self.data_dir / "daemon.log").read_text()[-2000:]
            time.sleep(0.05)
        raise AssertionError(f"daemon of {self.data_dir} did not start")

    @property
    def url(self) -> str:
        return self.info["restUrl"]

    @property
    def sha(self) -> str:
        return self.info["certificateSha256"]

    def kill(self) -> None:
        """SIGKILL: the array's host lost power (no clean stop, daemon.json left behind)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None



def lab_array_daemons(tmp_path_factory):
    """SiteA and SiteB of a fresh lab, each served by its own daemon (no lab supervisor, no relay); a fixture body."""
    home = tmp_path_factory.mktemp("arrays") / "lab"
    init_lab(home)
    started = {name: Daemon(home / "arrays" / name) for name in ("SiteA", "SiteB")}
    try:
        for d in started.values():
            d.start()
        yield started
    finally:
        for d in started.values():
            d.stop()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Serving:
    def __init__(self, server):
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self) -> int:
        self.thread.start()
        return self.server.server_address[1]

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def plain_http_server() -> _Serving:
    return _Serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet))


def https_server_that_is_not_an_array(tmp_path) -> _Serving:
    """A web server with a proper certificate but no /devmgr/utils/about (404 there)."""
    cert, key = ensure_certificate(tmp_path / "web", "www")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return _Serving(server)


def ca_signed_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """An administrator's CA and a server certificate for localhost signed by it: (ca.pem, cert.pem, key.pem)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Storage Team CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "site-a.example")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths
