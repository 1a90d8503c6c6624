"""Frame layout of the mirroring channel (SPEC §3 "Replication channel").

Every frame starts with a fixed 16-byte header::

    magic "AMCH" | major u8 | minor u8 | type u8 | flags u8 | length u32 | crc32 u32

The magic and the version come first and never move, so an array of any version
can read a peer's header and refuse it with a clear message instead of
misreading its bytes. The CRC32 covers the whole payload of every frame (data
frames are what it is for; control frames are small, so checking them too is
free). A region frame's payload is a fixed region header, the transfer and
volume names, then the region data (raw, zstd, or nothing for a zero region).

Since protocol 1.1 a REGIONS frame carries several regions of one volume under one
header and one checksum (a batch header, the names, one segment header per region,
then the bodies), so an incremental sync of scattered 64 KiB regions does not pay
a frame, a flow-control round and a handler call per region. A sender uses it only
once the peer has shown minor version >= 1 in a frame header.
"""
from __future__ import annotations

import enum
import json
import struct

from zlib_ng.zlib_ng import crc32  # zlib's CRC-32, faster (pyproject.toml)

from core.errors import CommunicationError

MAGIC = b"AMCH"
PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 1
REGIONS_MINOR = 1  # first minor version that understands REGIONS frames

HEADER = struct.Struct("!4sBBBBII")
HEADER_SIZE = HEADER.size  # 16

# Region header: offset u64 | raw length u32 | transfer name len u16 | volume name len u16
REGION = struct.Struct("!QIHH")
REGION_SIZE = REGION.size
# Batch header: transfer name len u16 | volume name len u16 | segment count u16
REGIONS = struct.Struct("!HHH")
# Segment header: offset u64 | raw length u32 | flags u8 | body length u32
SEGMENT = struct.Struct("!QIBI")
MAX_SEGMENTS = 1024

# Largest payload accepted: a region of up to 64 MiB plus its names. Anything
# larger is a corrupt length field, not a frame worth allocating memory for.
MAX_PAYLOAD = 64 * 1024 * 1024 + 2 * 65535 + REGION_SIZE
# Before authentication only handshake frames (a few hundred bytes of JSON) are
# expected: an unauthenticated peer must not make us buffer 64 MiB per connection.
PRE_AUTH_MAX_PAYLOAD = 64 * 1024


class FrameType(enum.IntEnum):
    HELLO = 1       # client -> server: names, client nonce
    CHALLENGE = 2   # server -> client: server name, salt, server nonce
    AUTH = 3        # client -> server: client proof
    WELCOME = 4     # server -> client: server proof
    ERROR = 5       # either way: refusal or fatal error, then the sender closes
    REQUEST = 6     # JSON call
    RESPONSE = 7    # JSON result or error
    REGION = 8      # region data of a transfer
    PING = 9
    PONG = 10
    CLOSE = 11      # orderly close
    DISCARD = 12    # bandwidth test payload, dropped by the receiver
    REGION_FAILED = 13  # receiver -> sender: writing a region of a transfer failed
    REGIONS = 14    # several regions of one volume of a transfer (minor >= 1)


class Flag(enum.IntFlag):
    NONE = 0
    ZERO = 1   # region is all zeros: no data follows, only its length
    ZSTD = 2   # region data is a zstd frame


class ChannelError(CommunicationError):
    """The peer broke the channel protocol (bad magic, checksum, version, length).

    The session that sees it is closed: a corrupt stream cannot be resynchronised.
    """

    code = "arvmChannelProtocolError"


def pack_header(ftype: int, flags: int, length: int, crc: int,
                major: int = PROTOCOL_MAJOR, minor: int = PROTOCOL_MINOR) -> bytes:
    return HEADER.pack(MAGIC, major, minor, ftype, flags, length, crc)


def parse_header(raw: bytes, peer: str, max_payload: int = MAX_PAYLOAD) -> tuple[int, int, int, int, int]:
    """Validate a header; returns ``(type, flags, length, crc, minor)``.

    Raises :class:`ChannelError` for a foreign stream, another major version or
    an absurd length (more than ``max_payload``: :data:`PRE_AUTH_MAX_PAYLOAD`
    during the handshake).
    """
    magic, major, minor, ftype, flags, length, crc = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ChannelError(
            f"The connection from/to {peer} does not speak the mirroring channel "
            f"protocol (bad magic {magic!r}). Check that the address and port are "
            f"a mirroring channel port.", code="arvmChannelProtocolError")
    if major != PROTOCOL_MAJOR:
        raise version_mismatch(peer, major, minor)
    if length > max_payload and max_payload < MAX_PAYLOAD:
        raise ChannelError(
            f"{peer} sent a frame of {length} bytes before authenticating; at most "
            f"{max_payload} bytes are accepted before login.", code="arvmChannelProtocolError")
    if length > MAX_PAYLOAD:
        raise ChannelError(
            f"{peer} sent a frame of {length} bytes, larger than the protocol allows; "
            f"the channel stream is corrupt.", code="arvmChannelFrameCorrupt")
    try:
        ftype = FrameType(ftype)
    except ValueError:
        raise ChannelError(f"{peer} sent an unknown frame type {ftype}.",
                           code="arvmChannelProtocolError") from None
    return ftype, flags, length, crc, minor


def version_mismatch(peer: str, major: int, minor: int) -> ChannelError:
    return ChannelError(
        f"{peer} speaks mirroring channel protocol version {major}.{minor}, this "
        f"array speaks {PROTOCOL_MAJOR}.{PROTOCOL_MINOR}. Mirroring needs the same "
        f"major protocol version on both arrays: upgrade the firmware of the older "
        f"array.", code="arvmChannelVersionMismatch")


def checksum_error(peer: str, ftype: int) -> ChannelError:
    return ChannelError(
        f"A {FrameType(ftype).name} frame from {peer} failed its CRC32 check: data "
        f"was corrupted on the link. The session was closed; the transfer resumes "
        f"on the next session.", code="arvmChannelFrameCorrupt")


def json_frame(ftype: int, obj: dict) -> bytes:
    """A complete control frame (header + JSON payload)."""
    payload = json.dumps(obj, separators=(",", ":")).encode()
    return pack_header(ftype, 0, len(payload), crc32(payload)) + payload


def raw_frame(ftype: int, payload: bytes, flags: int = 0) -> bytes:
    return pack_header(ftype, flags, len(payload), crc32(payload)) + payload


def region_prefix(flags: int, transfer: bytes, volume: bytes, offset: int,
                  raw_len: int, body: bytes | memoryview) -> bytes:
    """Frame header + region header + names for a region whose data is ``body``.

    The data itself is written separately so a 1 MiB region is never copied to
    be framed.
    """
    meta = REGION.pack(offset, raw_len, len(transfer), len(volume)) + transfer + volume
    crc = crc32(body, crc32(meta))
    return pack_header(FrameType.REGION, flags, len(meta) + len(body), crc) + meta


def regions_prefix(transfer: bytes, volume: bytes, segments: list[tuple[int, int, int, bytes]]) -> bytes:
    """Frame header + batch header + names + segment headers of a REGIONS frame.

    ``segments`` are ``(offset, raw_len, flags, body)``; the bodies follow the
    prefix on the wire, written separately so they are not copied to be framed.
    """
    meta = b"".join([REGIONS.pack(len(transfer), len(volume), len(segments)), transfer, volume,
                     *(SEGMENT.pack(off, raw, flags, len(body)) for off, raw, flags, body in segments)])
    crc = crc32(meta)
    for *_, body in segments:
        crc = crc32(body, crc)
    size = len(meta) + sum(len(body) for *_, body in segments)
    return pack_header(FrameType.REGIONS, 0, size, crc) + meta


def parse_region_meta(meta: bytes) -> tuple[int, int, int, int]:
    """``(offset, raw_len, transfer_len, volume_len)`` of a region header."""
    return REGION.unpack(meta)


async def read_frame(reader, peer: str, max_payload: int = MAX_PAYLOAD) -> tuple[int, int, bytes]:
    """Read one whole frame as ``(type, flags, payload)``, checksum verified.

    Used during the handshake and for control frames; the session reads region
    frames piecewise to avoid copying their data. A header announcing more than
    ``max_payload`` bytes is refused before any of its payload is read.
    """
    ftype, flags, length, crc, _ = parse_header(await reader.readexactly(HEADER_SIZE), peer, max_payload)
    payload = await reader.readexactly(length) if length else b""
    if crc32(payload) != crc:
        raise checksum_error(peer, ftype)
    return ftype, flags, payload


def parse_json(payload: bytes, peer: str) -> dict:
    try:
        obj = json.loads(payload)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise ChannelError(f"{peer} sent a control frame that is not a JSON object.",
                           code="arvmChannelProtocolError")
    return obj
