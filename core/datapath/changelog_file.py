"""The change log's file: its format, its checksums, and reading it back whatever happened to it.

File layout (version 2): a 512-byte header sector (magic, version, region size,
volume size, region count, block size, CRC32 of the header), then the bitmap in
512-byte blocks, each 508 bytes of bits (4064 regions; bit ``i`` of byte ``i // 8``,
little bit order) and the CRC32 of those bytes seeded with the block's index. A block
is one sector, rewritten whole, so a torn write or a zeroed, flipped or misplaced
block fails its CRC. A zeroed bitmap once read as "nothing changed": the next sync
sent nothing and the secondary diverged silently. Now a block that fails its check
is taken as all changed (a delta resync of its regions, never clean), rewritten, and
counted in ``repaired_blocks`` for the engine to report; a damaged header rebuilds
the whole log as changed. Version 1 (a 64-byte header and a bare bitmap) is read and
upgraded in place.
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from core.datapath.extents import FormatMismatch
from core.domain import DEFAULT_REGION_SIZE

MAGIC = b"AMCHGLOG"
VERSION = 2
HEADER_SIZE = 512
BLOCK_SIZE = 512
BLOCK_BYTES = BLOCK_SIZE - 4  # bitmap bytes per block; the CRC32 takes the rest
BLOCK_REGIONS = BLOCK_BYTES * 8
_HEADER = struct.Struct("<8sIIQQI")  # magic, version, region size, volume size, regions, block size
_V1_HEADER = struct.Struct("<8sIIQQ")  # version 1: no block size
V1_HEADER_SIZE = 64
_CRC = struct.Struct("<I")


def header_bytes(region_size: int, volume_size: int, regions: int) -> bytes:
    head = _HEADER.pack(MAGIC, VERSION, region_size, volume_size, regions, BLOCK_SIZE)
    head += _CRC.pack(zlib.crc32(head))
    return head.ljust(HEADER_SIZE, b"\0")


def blocks_for(regions: int) -> int:
    return -(-regions // BLOCK_REGIONS)


def _block_crc(index: int, bitmap: bytes) -> int:
    """Seeded with the block's index: a block written at the wrong place fails too."""
    return zlib.crc32(bitmap, zlib.crc32(index.to_bytes(8, "little")))


def encode_blocks(bits: np.ndarray, first: int, last: int) -> bytes:
    """Blocks ``first..last`` (inclusive) of ``bits`` (padded to whole blocks), with their CRCs."""
    return encode_span(bits[first * BLOCK_REGIONS:(last + 1) * BLOCK_REGIONS], first)


def encode_span(span: np.ndarray, first: int) -> bytes:
    """Whole blocks from ``first`` of the bits ``span`` (a multiple of BLOCK_REGIONS long), with their CRCs."""
    last = first + span.size // BLOCK_REGIONS - 1
    packed = np.packbits(span, bitorder="little").tobytes()
    parts = []
    for i in range(last - first + 1):
        chunk = packed[i * BLOCK_BYTES:(i + 1) * BLOCK_BYTES]
        parts += (chunk, _CRC.pack(_block_crc(first + i, chunk)))
    return b"".join(parts)


def file_bytes(region_size: int, volume_size: int, bits: np.ndarray) -> bytes:
    regions = -(-volume_size // region_size)
    n = blocks_for(regions)
    return header_bytes(region_size, volume_size, regions) + (encode_blocks(bits, 0, n - 1) if n else b"")


def padded_bits(regions: int) -> np.ndarray:
    return np.zeros(blocks_for(regions) * BLOCK_REGIONS, dtype=bool)


@dataclass(frozen=True)
class LogImage:
    """What a change log file holds, read without changing it (``open`` repairs, ``inspect`` reports).

    ``bits`` is padded to whole blocks; the regions of a damaged block are all set.
    """

    version: int  # as found on disk (0: the header was unreadable)
    region_size: int
    volume_size: int
    bits: np.ndarray
    damaged_blocks: tuple[int, ...] = ()
    header_damaged: bool = False

    @property
    def regions(self) -> int:
        return -(-self.volume_size // self.region_size)

    @property
    def repaired_regions(self) -> int:
        if self.header_damaged:
            return self.regions
        return sum(min(self.regions, (b + 1) * BLOCK_REGIONS) - b * BLOCK_REGIONS for b in self.damaged_blocks)


def _rebuilt(volume_size: int, region_size: int, version: int) -> LogImage:
    """Nothing on disk can be trusted: every region is changed (a resync of the whole delta)."""
    regions = -(-volume_size // region_size)
    bits = padded_bits(regions)
    bits[:regions] = True
    return LogImage(version, region_size, volume_size, bits, tuple(range(blocks_for(regions))), True)


def read_image(fd: int, path, volume_size: int, region_size: int) -> LogImage:
    """Read a change log of either version; damage becomes set bits, a foreign file an error.

    ``volume_size``/``region_size`` are used only when the header itself is damaged.
    """
    head = os.pread(fd, HEADER_SIZE, 0)
    if len(head) < V1_HEADER_SIZE or not any(head[:12]):  # truncated, or zeroed where the magic was
        return _rebuilt(volume_size, region_size, 0)
    if head[:8] != MAGIC:
        raise FormatMismatch(f"{path} is not a change log (magic {head[:8]!r}, expected {MAGIC!r}); "
                             "check the reserved capacity path or restore the file")
    version = _CRC.unpack_from(head, 8)[0]
    if version == 1:
        return _read_v1(fd, head, volume_size, region_size)
    if version != VERSION:
        raise FormatMismatch(f"{path}: change log format version {version} is not supported (this engine "
                             f"reads versions 1 and {VERSION}); upgrade the engine or recreate the reserved capacity")
    if len(head) < _HEADER.size + 4 or _CRC.unpack_from(head, _HEADER.size)[0] != zlib.crc32(head[:_HEADER.size]):
        return _rebuilt(volume_size, region_size, version)
    _, _, stored_region, stored_size, regions, block_size = _HEADER.unpack_from(head)
    if block_size != BLOCK_SIZE or regions != -(-stored_size // max(1, stored_region)):
        return _rebuilt(volume_size, region_size, version)
    n = blocks_for(regions)
    raw = os.pread(fd, n * BLOCK_SIZE, HEADER_SIZE).ljust(n * BLOCK_SIZE, b"\0")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(n, BLOCK_SIZE)
    bits = np.unpackbits(blocks[:, :BLOCK_BYTES].reshape(-1), bitorder="little").astype(bool)
    damaged = []
    for b in range(n):
        block = raw[b * BLOCK_SIZE:(b + 1) * BLOCK_SIZE]
        if _CRC.unpack_from(block, BLOCK_BYTES)[0] != _block_crc(b, block[:BLOCK_BYTES]):
            damaged.append(b)
            bits[b * BLOCK_REGIONS:(b + 1) * BLOCK_REGIONS] = True
    bits[regions:] = False
    return LogImage(version, stored_region, stored_size, bits, tuple(damaged))


def _read_v1(fd: int, head: bytes, volume_size: int, region_size: int) -> LogImage:
    """Version 1: a CRC on the header only. Missing bitmap bytes count as damage."""
    if _CRC.unpack_from(head, _V1_HEADER.size)[0] != zlib.crc32(head[:_V1_HEADER.size]):
        return _rebuilt(volume_size, region_size, 1)
    _, _, stored_region, stored_size, regions = _V1_HEADER.unpack_from(head)
    nbytes = (regions + 7) // 8
    raw = os.pread(fd, nbytes, V1_HEADER_SIZE)
    bits = padded_bits(regions)
    got = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little").astype(bool)
    bits[:got.size] = got
    damaged = ()
    if len(raw) < nbytes:
        bits[len(raw) * 8:regions] = True
        damaged = tuple(range(len(raw) * 8 // BLOCK_REGIONS, blocks_for(regions)))
    bits[regions:] = False
    return LogImage(1, stored_region, stored_size, bits, damaged)


def inspect(path, volume_size: int, region_size: int = DEFAULT_REGION_SIZE) -> LogImage:
    """Read a change log without repairing it (``mirrorctl array check``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_image(fd, path, volume_size, region_size)
    finally:
        os.close(fd)
