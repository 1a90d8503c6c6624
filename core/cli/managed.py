"""mirrorctl array add | list | remove | rename | discover: the arrays managed over the network.

The same store the console's Storage arrays page uses (core.client.managed). ``array
add`` never trusts a certificate silently: it shows the certificate the address
presents and needs ``--accept-certificate SHA256``, ``--ca-file``, ``--yes`` or a
"y" typed at the prompt. ``mirrorctl --array NAME <command>`` then manages that array,
its certificate checked against the saved one on every connection.
"""
from __future__ import annotations

import asyncio
import getpass
import sys
import time

from core.cli import output
from core.cli.common import Result
from core.errors import InvalidInput, MirrorError

PROBE_TIMEOUT = 3.0


def register(asub, details_handler) -> None:
    """The managed-array subcommands of ``mirrorctl array``; ``details_handler``: the old per-array listing."""
    p = asub.add_parser("add", help="manage an array over the network: check its certificate and password, save it",
                        description="Contact the array at --url, show its certificate, log in, and save it as NAME.")
    p.add_argument("name", help="the display name to give it (mirrorctl --array NAME ...)")
    p.add_argument("--url", required=True, help="its REST API: https://HOST:PORT, HOST:PORT or HOST (port 8443)")
    p.add_argument("--password", dest="add_password", help="its admin password (asked for when omitted on a terminal)")
    trust = p.add_mutually_exclusive_group()
    trust.add_argument("--accept-certificate", dest="add_fingerprint", metavar="SHA256",
                       help="trust the certificate with this SHA-256 fingerprint (refused if it presents another)")
    trust.add_argument("--ca-file", dest="add_ca_file", metavar="PEM",
                       help="trust the CA certificate, or the array's own certificate, in this file")
    trust.add_argument("--yes", action="store_true",
                       help="trust the certificate the array presents now (shown first); for scripts on a trusted path")
    p.set_defaults(run=_add)
    p = asub.add_parser("list", help="list the managed arrays, whether each answers, and the lab's arrays",
                        description="The managed arrays (mirrorctl array add) and the lab's, with their state.")
    p.add_argument("--details", action="store_true",
                   help="model, firmware, WWN, controllers of the arrays being managed (the lab or --array)")
    p.add_argument("--no-check", action="store_true", help="do not contact the arrays (no STATE column)")
    p.set_defaults(run=lambda args: details_handler(args) if args.details else _list(args))
    p = asub.add_parser("remove", help="stop managing an array (the array itself is not touched)")
    p.add_argument("name")
    p.set_defaults(run=_remove)
    p = asub.add_parser("rename", help="change a managed array's display name")
    p.add_argument("name")
    p.add_argument("new_name")
    p.set_defaults(run=_rename)
    p = asub.add_parser("discover", help="scan a host or an address range for array daemons",
                        description="Ask every address for /devmgr/utils/about over HTTPS (nothing is trusted).")
    p.add_argument("targets", help="HOST, A.B.C.D-A.B.C.E, A.B.C.D-E or NET/LEN; several separated by commas")
    p.add_argument("--port", default="8443", help="port(s) to ask, comma-separated (default 8443)")
    p.add_argument("--timeout", type=float, default=1.5, help="seconds to wait for each address (default 1.5)")
    p.set_defaults(run=_discover)


def _store():
    from core.client.managed import ManagedArrayStore

    return ManagedArrayStore()


def _add(args) -> Result:
    from core.client.contact import add_array, inspect_array, parse_array_url

    url = parse_array_url(args.url)
    password = args.add_password or args.password or _ask_password(args.name)
    store = _store()
    fingerprint = args.add_fingerprint
    if not fingerprint and not args.add_ca_file:
        contact = asyncio.run(inspect_array(url))
        cert = contact.certificate
        if not args.json:
            print(f"The array {contact.array_name} at {url} presents this certificate:\n{cert.describe()}")
        if not args.yes and not _confirmed():
            raise MirrorError(f"the certificate of {url} (SHA-256 {cert.sha256}) was not accepted; check it and run "
                              f"again with --accept-certificate {cert.sha256}", code="certificateNotAccepted")
        fingerprint = cert.sha256
    entry = asyncio.run(add_array(store, args.name, url, password, fingerprint=fingerprint, ca_file=args.add_ca_file))
    data = {**entry.to_json(), "passwordsStoredIn": store.password_location}
    return Result(data, f"added {entry.name}: array {entry.array_name} at {entry.url}, trusted by {entry.trust}\n"
                        f"passwords stored in: {store.password_location}")


def _ask_password(name: str) -> str:
    if not sys.stdin.isatty():
        raise InvalidInput("give the array's admin password with --password", code="passwordMissing")
    return getpass.getpass(f"{name} admin password: ")


def _confirmed() -> bool:
    if not sys.stdin.isatty():
        return False
    return input("Trust this certificate? [y/N] ").strip().lower() in ("y", "yes")


def _remove(args) -> Result:
    store = _store()
    entry = store.remove(args.name)
    return Result({"removed": entry.name, "url": entry.url},
                  f"{entry.name} ({entry.array_name} at {entry.url}) is no longer managed; its password was removed "
                  f"from {store.password_location}")


def _rename(args) -> Result:
    entry = _store().rename(args.name, args.new_name)
    return Result(entry.to_json(), f"{args.name} is now called {entry.name}")


def _list(args) -> Result:
    from core.lab import array_dirs

    store = _store()
    entries = store.list()
    states = {} if args.no_check or not entries else asyncio.run(_probe_all(store, entries))
    managed = [{**e.to_json(), **({"state": states[e.name]} if e.name in states else {})} for e in entries]
    lab = []
    if array_dirs(args.home):
        from core.lab.supervisor import lab_status

        lab = [{"name": a["name"], "url": a["restUrl"], "certificateSha256": a["certificateSha256"],
                "state": "running" if a["running"] else "stopped"} for a in lab_status(args.home)["arrays"]]
    rows = [[e["name"], e["arrayName"], e["url"], _short_trust(e), e.get("state", "-"), e["addedAt"]] for e in managed]
    rows += [[a["name"], a["name"], a["url"] or "-", "lab", a["state"], "-"] for a in lab]
    text = output.table(rows, ["NAME", "ARRAY", "URL", "TRUST", "STATE", "ADDED"]) if rows else \
        "no managed arrays; add one with 'mirrorctl array add NAME --url https://HOST:PORT --password ...'"
    text += f"\npasswords stored in: {store.password_location}"
    return Result({"managed": managed, "lab": lab, "passwordsStoredIn": store.password_location}, text)


def _short_trust(entry: dict) -> str:
    sha = entry.get("certificateSha256")
    return f"sha256 {sha[:16]}\u2026" if sha else "CA file"


async def _probe_all(store, entries) -> dict[str, str]:
    """Each array's state in a few words; all asked at once, a short timeout each."""
    from core.client.contact import client_for

    async def probe(entry) -> str:
        try:
            async with client_for(store, entry, timeout=PROBE_TIMEOUT) as client:
                await client.get("")
            return "reachable"
        except MirrorError as e:
            return f"unreachable: {e.message} [{e.code}]"
    answers = await asyncio.gather(*(probe(e) for e in entries))
    return {e.name: a for e, a in zip(entries, answers)}


def _discover(args) -> Result:
    from core.client.discovery import discover, parse_ports, parse_targets

    addresses, ports = parse_targets(args.targets), parse_ports(args.port)
    if not 0 < args.timeout <= 30:
        raise InvalidInput("--timeout must be more than 0 and at most 30 seconds", code="invalidInput")
    started = time.monotonic()
    found = asyncio.run(discover(addresses, ports, timeout=args.timeout))
    managed = {e.wwn: e.name for e in _store().list()}
    data = [{"address": f.address, "port": f.port, "url": f.url, "arrayName": f.array_name, "wwn": f.wwn,
             "version": f.version, "certificateSha256": f.certificate_sha256, "managedAs": managed.get(f.wwn)}
            for f in found]
    rows = [[d["url"], d["arrayName"], d["wwn"], d["certificateSha256"][:16] + "\u2026", d["managedAs"] or "-"]
            for d in data]
    summary = (f"asked {len(addresses) * len(ports)} address(es) in {time.monotonic() - started:.1f} s: "
               f"{len(found)} array(s) answered")
    text = (output.table(rows, ["URL", "ARRAY", "WWN", "CERTIFICATE", "MANAGED AS"]) + "\n" if rows else "") + summary
    return Result(data, text)
