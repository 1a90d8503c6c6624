"""Adding an array by address: the first contact, the login check, the entry in the managed-arrays store.

The order matters, and is the same for mirrorctl and the console:

1. :func:`parse_array_url` — what was typed (``host``, ``host:port``, ``https://host:port``)
   becomes the REST URL; ``http://`` is refused (basic auth in clear text);
2. :func:`inspect_array` — the certificate the address presents (subject, validity,
   SHA-256) and its ``about`` page, read over that very certificate; a server without
   ``/devmgr/utils/about`` is not an array;
3. the administrator accepts the certificate (or imported a CA / the array's certificate);
4. :func:`add_array` — logs in with the trust decided in 3 (a wrong password is refused
   here, before anything is stored), then records the entry.

Every refusal is a :class:`MirrorError` with a stable code, one line a person can act on.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from core.client.certificates import CertificateInfo, fetch_certificate, load_certificate_file
from core.client.managed import ManagedArray, ManagedArrayStore, check_display_name
from core.client.rest import API_ROOT, ArrayClient, normalise_fingerprint
from core.errors import InvalidInput, MirrorError, NotFound

DEFAULT_PORT = 8443
CONTACT_TIMEOUT = 5.0


@dataclass(frozen=True)
class FirstContact:
    """What an address answered before it is trusted: its certificate and its identity."""

    url: str
    certificate: CertificateInfo
    array_name: str
    wwn: str
    version: str


def parse_array_url(text: str, port: int | None = None) -> str:
    """``https://host:port`` from ``host``, ``host:port``, ``[v6]:port`` or a URL; ``port`` fills a missing one."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidInput("give the array's address (host, host:port or https://host:port)", code="invalidAddress")
    if "://" in raw:
        parts = urlsplit(raw)
        if parts.scheme.lower() == "http":
            raise MirrorError(f"'{raw}' is plain HTTP; an array's REST API is HTTPS only (https://...)",
                              code="notHttps")
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise InvalidInput(f"'{raw}' is not an https:// address of an array", code="invalidAddress")
        if parts.path not in ("", "/") or parts.query:
            raise InvalidInput(f"'{raw}': give the array's address without a path (https://host:port)",
                               code="invalidAddress")
        host = parts.hostname
        try:
            given = parts.port
        except ValueError:
            raise InvalidInput(f"'{raw}' has no valid port (1-65535)", code="invalidPort") from None
    else:
        host, given = _split_host_port(raw)
    chosen = given or port or DEFAULT_PORT
    if not 0 < int(chosen) < 65536:
        raise InvalidInput(f"port {chosen} is not 1-65535", code="invalidPort")
    if not host or any(c.isspace() or c in "/@?#" for c in host):
        raise InvalidInput(f"'{raw}' is not a host name or IP address", code="invalidAddress")
    shown = f"[{host}]" if _is_v6(host) else host
    return f"https://{shown}:{int(chosen)}"


def _split_host_port(raw: str) -> tuple[str, int | None]:
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        tail = rest[1:] if rest.startswith(":") else ""
    elif raw.count(":") == 1:
        host, _, tail = raw.partition(":")
    else:  # a bare IPv6 address or a bare host
        host, tail = raw, ""
    if tail and not tail.isdigit():
        raise InvalidInput(f"'{raw}': the port must be a number from 1 to 65535", code="invalidPort")
    return host, int(tail) if tail else None


def _is_v6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or DEFAULT_PORT


async def inspect_array(url: str, timeout: float = CONTACT_TIMEOUT) -> FirstContact:
    """The certificate ``url`` presents and the array it says it is (no password, nothing trusted yet)."""
    host, port = host_port(url)
    cert = await fetch_certificate(host, port, timeout)
    async with ArrayClient(url, "", fingerprint=cert.sha256, timeout=timeout) as client:
        about = await _about(client)
    return FirstContact(url, cert, about["arrayName"], str(about.get("worldWideName") or ""),
                        str(about.get("version") or ""))


async def _about(client: ArrayClient) -> dict:
    """The ``about`` page, or ``notAnArray`` for any HTTPS server that has none."""
    try:
        about = await client.about()
    except NotFound:
        about = None
    except MirrorError as e:
        if getattr(e, "http_status", None) is None:
            raise  # unreachable, certificate refused: said as such
        about = None
    if not isinstance(about, dict) or not about.get("arrayName"):
        raise MirrorError(f"{client.base_url} answers HTTPS but is not a storage array (it has no "
                          "/devmgr/utils/about naming an array)", code="notAnArray")
    return about


def trust_for(fingerprint: str | None = None, ca_file: str | Path | None = None) -> dict:
    """ArrayClient trust options from what the administrator chose.

    An imported file holding the array's own (self-signed, not a CA) certificate is
    pinned by its fingerprint: it then works whatever address the array is reached by.
    A CA certificate verifies the chain and the host name as any HTTPS client does.
    """
    if fingerprint and ca_file:
        raise InvalidInput("give the certificate's fingerprint or a certificate file, not both", code="invalidInput")
    if fingerprint:
        return {"fingerprint": normalise_fingerprint(fingerprint).hex()}
    if ca_file:
        info = load_certificate_file(ca_file)
        if not info.is_ca:
            return {"fingerprint": info.sha256}
        return {"cafile": str(ca_file)}
    raise MirrorError("the array's certificate is not trusted yet: accept its fingerprint or import its "
                      "certificate", code="certificateNotAccepted")


async def verify_login(url: str, password: str, timeout: float = CONTACT_TIMEOUT, **trust) -> dict:
    """Log in with ``trust``; the array's ``about`` page when the password is right."""
    async with ArrayClient(url, password, timeout=timeout, **trust) as client:
        about = await _about(client)
        await client.get(API_ROOT.rstrip("/"))  # authenticated: a wrong password is refused here
    return about


async def add_array(store: ManagedArrayStore, name: str, url: str, password: str, *, fingerprint: str | None = None,
                    ca_file: str | Path | None = None, timeout: float = CONTACT_TIMEOUT) -> ManagedArray:
    """Log in to the array with the trust the administrator decided, then record it in ``store``."""
    check_display_name(name)
    if not password:
        raise InvalidInput("give the array's admin password", code="passwordMissing")
    trust = trust_for(fingerprint, ca_file)
    about = await verify_login(url, password, timeout=timeout, **trust)
    return store.add(name, url, password, array_name=about["arrayName"], wwn=str(about.get("worldWideName") or ""),
                     certificate_sha256=trust.get("fingerprint"), ca_file=trust.get("cafile"))


def client_for(store: ManagedArrayStore, entry: ManagedArray, timeout: float = 30) -> ArrayClient:
    """A client of a stored array: its password from the vault, its certificate checked on every connection."""
    trust = {"fingerprint": entry.certificate_sha256} if entry.certificate_sha256 else {"cafile": entry.ca_file}
    return ArrayClient(entry.url, store.password(entry), timeout=timeout, saved_as=entry.name, **trust)
