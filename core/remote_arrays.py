"""The remote arrays an array mirrors with: where each is reached and its password (SPEC §2 "Channel").

An array keeps a list of remote arrays; a group names its remote by that entry. The
channel dials the entry's addresses in order and the first that connects carries all
traffic to that remote. Entries are configuration of the local array, kept in its own
database, and changed over REST or the CLI.
"""
from __future__ import annotations

from sqlalchemy import select

from core.array import StorageArray
from core.names import check_name
from core.domain import Severity
from core.errors import CommunicationError, InvalidInput, NotFound
from core.store.schema import RemoteArrayRow


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) -> (host, port); a bad one is refused in one line."""
    host, sep, port = str(text).strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"channel address '{text}' is not host:port with a port from 1 to 65535",
                           code="invalidChannelAddress")
    return host, int(port)


def remote_entries(array: StorageArray) -> list[dict]:
    rows = array.db.scalars(select(RemoteArrayRow).order_by(RemoteArrayRow.name))
    return [{"name": r.name, "wwn": r.wwn, "addresses": [a for a in r.addresses.split(",") if a]} for r in rows]


def set_remote(array: StorageArray, name: str, addresses: list[str], password: str, wwn: str = "") -> dict:
    """Add or replace the entry for ``name`` (replacing keeps the groups that name it)."""
    check_name(name, "remote array")
    if name == array.name:
        raise InvalidInput(f"{name} is this array; a remote array is another one", code="arvmInvalidRemoteArray")
    if not addresses:
        raise InvalidInput("give at least one channel address (host:port) of the remote array",
                           code="invalidChannelAddress")
    parsed = [parse_address(a) for a in addresses]
    text = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in parsed)
    row = array.db.get(RemoteArrayRow, name)
    if row is None:
        row = RemoteArrayRow(name=name)
        array.db.add(row)
    row.addresses, row.wwn = text, wwn or row.wwn or ""
    if password:
        row.password = password
    array.db.commit()
    array.log(Severity.INFO, name, "arvmRemoteArraySet", f"Remote array {name} reached at {text}")
    return {"name": name, "wwn": row.wwn, "addresses": text.split(",")}


def remove_remote(array: StorageArray, name: str) -> None:
    row = array.db.get(RemoteArrayRow, name)
    if row is None:
        raise NotFound(f"{array.name} has no remote array named '{name}'", code="arvmRemoteArrayUnknown")
    in_use = sorted(g.name for g in array.groups() if g.remote_array == name)
    if in_use:
        raise InvalidInput(f"remote array {name} is used by mirror group(s) {', '.join(in_use)}; delete them first",
                           code="arvmRemoteArrayInUse")
    array.db.delete(row)
    array.db.commit()
    array.log(Severity.INFO, name, "arvmRemoteArrayRemoved", f"Remote array {name} removed")


def addresses_of(array: StorageArray, remote: str) -> list[tuple[str, int]]:
    row = array.db.get(RemoteArrayRow, remote)
    if row is None or not row.addresses:
        raise CommunicationError(f"array {array.name} does not know where {remote} is; add the remote array with "
                                 "its address and password", code="arvmRemoteArrayUnknown")
    return [parse_address(a) for a in row.addresses.split(",") if a]


def password_of(array: StorageArray, remote: str) -> str | None:
    row = array.db.get(RemoteArrayRow, remote)
    return row.password if row is not None and row.password else None
