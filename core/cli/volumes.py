"""mirrorctl volume ... and candidates: volumes and who may mirror them.

Host reads and writes stream through the array daemon in chunks (a 256 MiB file
must not cost 256 MiB of memory), and are checked against the volume's capacity
before the first byte moves, so a refused command changes nothing.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from core.cli import output
from core.cli.common import Result, command, with_engine
from core.cli.pairs import reserved_percent
from core.errors import InvalidInput, MirrorError, NotFound
from core.units import MiB, parse_size

CHUNK = 4 * MiB  # one host write or read per chunk: bounded memory, few enough requests


def register(sub) -> None:
    vol = sub.add_parser("volume", help="volumes (sparse files in an array's data directory)")
    vsub = vol.add_subparsers(dest="volume_command", metavar="VOLUME_COMMAND", required=True)
    p = command(vsub, "create", "create a volume", _create)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--capacity", required=True, help="e.g. 10GiB")
    p.add_argument("--pool")
    p.add_argument("--drive-type", choices=["nvme", "sas"])
    p.add_argument("--security", default="none", choices=["none", "fde", "fips"])
    p.add_argument("--drive-security", action="store_true")
    p.add_argument("--data-assurance", action="store_true")
    p.add_argument("--resource-partitioning", action="store_true")
    p.add_argument("--raid", default="6", choices=["0", "1", "5", "6", "10"])
    p.add_argument("--segment-size", default="128KiB")
    p.add_argument("--owner", choices=["A", "B"], help="preferred controller")
    p = command(vsub, "list", "list volumes", _list)
    p.add_argument("--array")
    p = command(vsub, "show", "show a volume", _show)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p = command(vsub, "resize", "grow a volume", _resize)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--capacity", required=True)
    p = command(vsub, "delete", "delete a volume (refused while mirrored)", _delete)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    register_io(vsub)
    p = command(sub, "candidates", "every remote volume: eligible as secondary, or why not", _candidates,
                engine=False)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--remote", required=True)
    p.add_argument("--channel", choices=["fc", "iscsi"])
    p.add_argument("--reserved-percent", default="20", help="of each candidate volume (more than 0, at most 100)")


def _create(client, args) -> Result:
    v = client.create_volume(args.ref, args.capacity, pool=args.pool, drive_type=args.drive_type,
                             security=args.security, drive_security=args.drive_security,
                             data_assurance=args.data_assurance, resource_partitioning=args.resource_partitioning,
                             raid_level=args.raid, segment_size=args.segment_size, owner=args.owner)
    return Result(v, f"Created {v.array}/{v.name}: {output.size(v.capacity)} in {v.pool} ({v.path})")


def _list(client, args) -> Result:
    vols = client.volumes(args.array)
    rows = [[f"{v.array}/{v.name}", output.size(v.capacity), v.drive_type.upper(), v.pool, v.raid_level,
             v.security, f"{v.current_owner}", v.mirror_group or "-", v.role or "-",
             "failed" if v.failed else ("rw" if v.host_writable else "ro")] for v in vols]
    return Result(vols, output.table(rows, ["VOLUME", "CAPACITY", "DRIVES", "POOL", "RAID", "SECURITY", "OWNER",
                                            "GROUP", "ROLE", "ACCESS"]))


def _show(client, args) -> Result:
    v = client.volume(args.ref)
    return Result(v, output.kv([
        ("Volume", f"{v.array}/{v.name}"), ("Capacity", f"{output.size(v.capacity)} ({v.capacity} bytes)"),
        ("Pool", f"{v.pool} ({v.drive_type.upper()})"), ("RAID level", v.raid_level),
        ("Segment size", output.size(v.segment_size)), ("Security", v.security),
        ("Drive Security", "on" if v.drive_security else "off"),
        ("Data Assurance", "on" if v.data_assurance else "off"),
        ("Resource Partitioning", "on" if v.resource_partitioning else "off"),
        ("Owner", f"{v.current_owner} (preferred {v.preferred_owner})"),
        ("Mirror group", v.mirror_group or "-"), ("Role", v.role or "-"),
        ("Host access", "failed" if v.failed else ("read/write" if v.host_writable else "read-only")),
        ("NBD", v.nbd_uri or "not served"), ("Backing file", v.path)]))


def _resize(client, args) -> Result:
    v = client.resize_volume(args.ref, args.capacity)
    return Result(v, f"{v.array}/{v.name} is now {output.size(v.capacity)}")


def _delete(client, args) -> Result:
    client.delete_volume(args.ref)
    return Result({"deleted": args.ref}, f"Deleted {args.ref}")


def _candidates(args) -> Result:
    percent = reserved_percent(args.reserved_percent, "--reserved-percent")
    return with_engine(args, lambda client: _list_candidates(client, args, percent))


def _list_candidates(client, args, percent: float) -> Result:
    cands = client.candidates(args.ref, args.remote, args.channel, percent)
    lines = []
    for c in cands:
        mark = "eligible" if c.eligible else "not eligible"
        lines.append(f"{c.volume.array}/{c.volume.name} ({output.size(c.volume.capacity)}, "
                     f"{c.volume.drive_type.upper()}): {mark}")
        lines.extend(f"    - {r}" for r in c.reasons)
        lines.extend(f"    ! {w}" for w in c.warnings)
    return Result(cands, "\n".join(lines) or f"{args.remote} has no volumes")


def register_io(vsub) -> None:
    p = command(vsub, "write", "host write: data from --file or stdin at --offset", _write, engine=False)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--offset", required=True, help="byte offset (units allowed, e.g. 1MiB)")
    p.add_argument("--file", help="read the data from this file (default: stdin)")
    p = command(vsub, "read", "host read: --length bytes at --offset to --file or stdout", _read, engine=False)
    p.add_argument("ref", metavar="ARRAY/VOLUME")
    p.add_argument("--offset", required=True)
    p.add_argument("--length", required=True)
    p.add_argument("--file", help="write the data to this file (default: stdout)")


# -- host write ------------------------------------------------------------------------------------
def _write(args) -> Result:
    """Check the input before reaching the arrays, then stream it."""
    offset = parse_size(args.offset, "offset")
    source = _open_input(args.file)
    try:
        return with_engine(args, lambda client: _write_stream(client, args.ref, offset, source))
    finally:
        if source is not sys.stdin.buffer:
            source.close()


def _open_input(path: str | None) -> BinaryIO:
    if path is None:
        return sys.stdin.buffer
    if os.path.isdir(path):
        raise InvalidInput(f"--file {path} is a directory; give the file whose data to write", code="fileIsDirectory")
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"--file {path} does not exist; give the path of the file whose data to write",
                       code="fileNotFound") from None
    except OSError as e:
        raise InvalidInput(f"cannot read --file {path}: {e.strerror}; check its permissions",
                           code="fileNotReadable") from None


def _input_size(source: BinaryIO) -> int | None:
    """Bytes left in a regular file (also stdin redirected from one); None for a pipe or terminal."""
    try:
        st = os.fstat(source.fileno())
        if stat.S_ISREG(st.st_mode):
            return max(0, st.st_size - source.tell())
    except (OSError, ValueError):
        pass
    return None


def _check_range(ref: str, capacity: int, offset: int, length: int) -> None:
    """The daemon's own rule (invalidRange), applied before the first chunk so a refusal writes nothing."""
    if offset + length > capacity:
        room = max(0, capacity - offset)
        raise InvalidInput(f"{length} bytes at offset {offset} go beyond the end of volume {ref} ({capacity} "
                           f"bytes); at most {room} bytes fit there", code="invalidRange")


def _write_stream(client, ref: str, offset: int, source: BinaryIO) -> Result:
    """Send ``source`` in chunks of :data:`CHUNK`, then flush.

    A file's size is known, so a write that would not fit is refused whole. Data from
    a pipe is checked chunk by chunk: input that fits in one chunk is refused whole
    too; longer input that runs past the end stops there and says what was written.
    """
    capacity = client.volume(ref).capacity
    size = _input_size(source)
    if size is not None:
        _check_range(ref, capacity, offset, size)
    pos = 0
    while size is None or pos < size:
        chunk = source.read(CHUNK if size is None else min(CHUNK, size - pos))
        if not chunk:
            break
        if offset + pos + len(chunk) > capacity:  # only from a pipe
            if pos == 0:
                _check_range(ref, capacity, offset, len(chunk))
            raise InvalidInput(f"the data goes beyond the end of volume {ref} ({capacity} bytes): its first {pos} "
                               f"bytes were written at offset {offset}, the rest was not", code="invalidRange")
        try:
            client.host_write(ref, offset + pos, chunk)
        except MirrorError as e:
            if pos:
                raise MirrorError(f"{e.message} ({pos} bytes were written at offset {offset} before that)",
                                  code=e.code) from None
            raise
        pos += len(chunk)
    client.host_flush(ref)
    return Result({"volume": ref, "offset": offset, "bytesWritten": pos},
                  f"Wrote {pos} bytes to {ref} at offset {offset}")


# -- host read -------------------------------------------------------------------------------------
def _read(args) -> Result | None:
    """Check the destination before reaching the arrays, then stream into it."""
    offset, length = parse_size(args.offset, "offset"), parse_size(args.length, "length")
    if args.file:
        _check_output(args.file)
    return with_engine(args, lambda client: _read_stream(client, args, offset, length))


def _check_output(path: str) -> None:
    if os.path.isdir(path):
        raise InvalidInput(f"--file {path} is a directory; give the path of a file to write the data to",
                           code="fileIsDirectory")
    parent = Path(path).parent
    if not parent.is_dir():
        raise NotFound(f"directory {parent} of --file {path} does not exist; create it or give another path",
                       code="fileNotFound")


def _read_stream(client, args, offset: int, length: int) -> Result | None:
    """Read in chunks into --file (opened only once the first chunk arrived) or stdout.

    A refused read (range, failed volume, unreachable array) therefore leaves an
    existing --file as it was.
    """
    ref = args.ref
    _check_range(ref, client.volume(ref).capacity, offset, length)
    out: BinaryIO | None = None if args.file else sys.stdout.buffer
    pos = 0
    try:
        while pos < length or out is None:
            chunk = client.host_read(ref, offset + pos, min(CHUNK, length - pos))
            if out is None:
                out = _open_output(args.file)
            out.write(chunk)
            pos += len(chunk)
            if not chunk:
                break
        out.flush()
    except MirrorError as e:
        if pos and args.file:
            raise MirrorError(f"{e.message} ({args.file} holds the first {pos} bytes)", code=e.code) from None
        raise
    finally:
        if out is not None and out is not sys.stdout.buffer:
            out.close()
    if not args.file:
        return None
    return Result({"volume": ref, "offset": offset, "bytesRead": pos, "file": args.file},
                  f"Read {pos} bytes from {ref} into {args.file}")


def _open_output(path: str) -> BinaryIO:
    try:
        return open(path, "wb")
    except OSError as e:
        raise InvalidInput(f"cannot write --file {path}: {e.strerror}; check its permissions or give another path",
                           code="fileNotWritable") from None
