"""The mirroring channel between two arrays (SPEC §3 "Replication channel").

A versioned, checksummed framed protocol over TCP (optionally TLS), authenticated
by challenge-response from the array passwords, carrying JSON calls and region
data (zero markers, zstd where it pays), shared between group syncs by priority.
"""
from core.channel.auth import new_salt, password_hash, verify_password
from core.channel.bandwidth import LinkScheduler
from core.channel.codec import CodecStats, EncodedRegion, RegionDecoder, RegionEncoder, is_zero
from core.channel.frames import PROTOCOL_MAJOR, PROTOCOL_MINOR, ChannelError
from core.channel.connect import ChannelClient, ChannelServer
from core.channel.session import ChannelHandler, Session

__all__ = [
    "ChannelClient", "ChannelError", "ChannelHandler", "ChannelServer", "CodecStats",
    "EncodedRegion", "LinkScheduler", "PROTOCOL_MAJOR", "PROTOCOL_MINOR", "RegionDecoder",
    "RegionEncoder", "Session", "is_zero", "new_salt", "password_hash", "verify_password",
]
