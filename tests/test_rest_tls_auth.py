"""HTTPS with the generated certificate, HTTP basic auth, the open about page, the password change."""
from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
import stat

import pytest
from cryptography import x509

from core.rest.tls import ensure_certificate, fingerprint_sha256
from test_rest_support import PASSWORD, basic, rest  # noqa: F401  (fixture)


def test_certificate_is_made_once_with_a_private_key_and_every_name(tmp_path):
    cert, key = ensure_certificate(tmp_path, "SiteA", addresses=["10.9.8.7", "array.example"])
    assert (cert, key) == (tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pem = cert.read_bytes()
    assert ensure_certificate(tmp_path, "SiteA") == (cert, key) and cert.read_bytes() == pem  # kept: pins survive
    san = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", socket.gethostname(), "array.example"} <= set(san.get_values_for_type(x509.DNSName))
    assert {"127.0.0.1", "10.9.8.7"} <= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    digest = fingerprint_sha256(pem)
    assert digest == hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()
    assert len(digest) == 64 and digest == digest.lower()


def test_https_is_verified_against_the_generated_certificate(rest, tmp_path):
    assert rest.get("").status == 200  # rest verifies against the generated cert.pem
    other_cert, _ = ensure_certificate(tmp_path / "other", "SiteA")
    for ctx in (ssl.create_default_context(), ssl.create_default_context(cafile=str(other_cert))):
        conn = http.client.HTTPSConnection("localhost", rest.port, context=ctx, timeout=10)
        with pytest.raises(ssl.SSLCertVerificationError):
            conn.request("GET", "/devmgr/utils/about")
        conn.close()


@pytest.mark.parametrize("auth", [None, basic("admin", "wrong"), basic("root", PASSWORD), "Basic !!notbase64",
                                  "Bearer abc"])
def test_a_failed_login_gets_a_bare_401(rest, auth):
    r = rest.get("async-mirrors", auth=auth)
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith('Basic realm="')
    assert r.body == b""


def test_about_answers_without_a_login(rest, client):
    about = rest.ok("GET", "/devmgr/utils/about", auth=None)
    assert about["runningAsProxy"] is False and about["version"] and about["systemId"]
    assert about["arrayName"] == "SiteA" and about["worldWideName"] == client.array("SiteA").wwn


def test_password_change_takes_effect_at_once(rest, client):
    r = rest.post("passwords", {"currentAdminPassword": "not-it", "newPassword": "n3w"})
    assert r.status == 422 and r.error["retcode"] == "invalidPassword"
    assert rest.post("passwords", {"currentAdminPassword": PASSWORD, "newPassword": "n3w",
                                   "adminPassword": True}).status == 204
    assert rest.get("").status == 401  # the old password was verified before: no longer good
    assert rest.get("", auth=basic("admin", "n3w")).status == 200
    events = rest.ok("GET", "events", auth=basic("admin", "n3w"))  # a client must now give the new one
    assert any(e["code"] == "passwordChanged" for e in events)
