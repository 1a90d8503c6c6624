"""Discover array daemons: scan a host or an address range on a port for ``/devmgr/utils/about``.

Like Unified Manager's discovery: the administrator gives a host, a range
(``10.0.0.10-10.0.0.40``, ``10.0.0.10-40``) or a network (``10.0.0.0/28``) and a port;
every address is asked, concurrently and with a short timeout, for the unauthenticated
``about`` page. Nothing found is trusted: the list says what answered (with the
certificate fingerprint it presented), and adding one still goes through the explicit
certificate acceptance of :mod:`core.client.contact`.
"""
from __future__ import annotations

import asyncio
import ipaddress
import ssl
from dataclasses import dataclass

import aiohttp

from core.client.certificates import fetch_certificate
from core.client.contact import DEFAULT_PORT, _is_v6
from core.client.rest import ABOUT
from core.errors import InvalidInput, MirrorError

MAX_ADDRESSES = 1024  # a /22: enough for a lab or a site's management network, not a sweep of the internet
SCAN_TIMEOUT = 1.5
CONCURRENCY = 64


@dataclass(frozen=True)
class DiscoveredArray:
    """An address that answered as an array (plain data)."""

    address: str
    port: int
    url: str
    array_name: str
    wwn: str
    version: str
    certificate_sha256: str


def parse_targets(text: str) -> list[str]:
    """Addresses from ``host``, ``a.b.c.d-a.b.c.e``, ``a.b.c.d-e``, ``net/len``; several separated by commas."""
    out: list[str] = []
    for item in (t.strip() for t in (text or "").replace(";", ",").split(",")):
        if not item:
            continue
        out.extend(_expand(item))
        if len(out) > MAX_ADDRESSES:
            raise InvalidInput(f"'{text}' is more than {MAX_ADDRESSES} addresses; scan a smaller range",
                               code="invalidRange")
    if not out:
        raise InvalidInput("give a host, an address range (10.0.0.10-10.0.0.40) or a network (10.0.0.0/28) to scan",
                           code="invalidRange")
    return list(dict.fromkeys(out))


def _expand(item: str) -> list[str]:
    if "/" in item:
        try:
            net = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise InvalidInput(f"'{item}' is not a network (for example 10.0.0.0/28)", code="invalidRange") from None
        if net.num_addresses > MAX_ADDRESSES:
            raise InvalidInput(f"{item} is {net.num_addresses} addresses; scan at most {MAX_ADDRESSES}",
                               code="invalidRange")
        hosts = list(net.hosts()) or [net.network_address]
        return [str(a) for a in hosts]
    if "-" in item and not _looks_like_name(item):
        first, _, last = item.partition("-")
        try:
            start = ipaddress.ip_address(first.strip())
            if "." in last or ":" in last:
                end = ipaddress.ip_address(last.strip())
            else:  # 10.0.0.10-40: the last octet
                end = ipaddress.ip_address(str(first.strip()).rsplit(".", 1)[0] + "." + last.strip())
        except ValueError:
            raise InvalidInput(f"'{item}' is not an address range (for example 10.0.0.10-10.0.0.40)",
                               code="invalidRange") from None
        if end.version != start.version or int(end) < int(start):
            raise InvalidInput(f"'{item}': the range must go from the lower address to the higher",
                               code="invalidRange")
        if int(end) - int(start) + 1 > MAX_ADDRESSES:
            raise InvalidInput(f"'{item}' is {int(end) - int(start) + 1} addresses; scan at most {MAX_ADDRESSES}",
                               code="invalidRange")
        return [str(ipaddress.ip_address(n)) for n in range(int(start), int(end) + 1)]
    if any(c.isspace() or c in "@?#" for c in item):
        raise InvalidInput(f"'{item}' is not a host name or address", code="invalidRange")
    return [item]


def _looks_like_name(item: str) -> bool:
    """``array-a.example.com`` is a host name with dashes, not a range."""
    first = item.partition("-")[0]
    try:
        ipaddress.ip_address(first.strip())
        return False
    except ValueError:
        return True


def parse_ports(text: str | int | None) -> list[int]:
    if text in (None, ""):
        return [DEFAULT_PORT]
    ports = []
    for part in str(text).split(","):
        part = part.strip()
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise InvalidInput(f"port '{part}' must be a number from 1 to 65535", code="invalidPort")
        ports.append(int(part))
    return ports


async def discover(addresses: list[str], ports: list[int], timeout: float = SCAN_TIMEOUT,
                   concurrency: int = CONCURRENCY) -> list[DiscoveredArray]:
    """Every (address, port) whose HTTPS ``about`` page names an array, in address order."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # discovery reads, it does not trust
    limit = asyncio.Semaphore(max(1, concurrency))
    connector = aiohttp.TCPConnector(ssl=ctx, limit=concurrency, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def probe(address: str, port: int) -> DiscoveredArray | None:
            host = f"[{address}]" if _is_v6(address) else address
            url = f"https://{host}:{port}"
            async with limit:
                try:
                    async with session.get(url + ABOUT) as resp:
                        if resp.status != 200 or resp.content_type != "application/json":
                            return None
                        about = await resp.json()
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError):
                    return None
            if not isinstance(about, dict) or not about.get("arrayName"):
                return None
            try:  # shown in the list, so the administrator can compare it before adding
                sha = (await fetch_certificate(address, port, timeout)).sha256
            except MirrorError:
                sha = ""
            return DiscoveredArray(address, port, url, str(about["arrayName"]),
                                   str(about.get("worldWideName") or ""), str(about.get("version") or ""), sha)
        found = await asyncio.gather(*(probe(a, p) for a in addresses for p in ports))
    return [f for f in found if f is not None]
