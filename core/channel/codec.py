"""How region data travels: zero marker, zstd where it pays, raw otherwise.

Sparse volumes and freshly formatted filesystems are mostly zeros, so an
all-zero region costs only its length. zstd (level 1) is kept only when it saves
at least 10 %; encrypted or already compressed data does not compress, and trying
on every region would cost CPU for nothing, so after a failure the encoder backs
off (1, 2, 4, 8 then 16 regions between probes) and resumes on the first success.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import zstandard

from core.channel.frames import ChannelError, Flag

ZSTD_LEVEL = 1
PAYS_RATIO = 0.9          # keep compressed data only when < 90 % of raw
MIN_COMPRESS = 512        # tiny regions: headers dominate, do not bother
MAX_BACKOFF = 16          # after failures, probe every 16th region at most

Data = bytes | bytearray | memoryview


def is_zero(data: Data) -> bool:
    """True when every byte is zero. Random data is rejected on its first bytes."""
    n = len(data)
    if n == 0:
        return True
    mv = memoryview(data)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
        n = len(mv)
    if mv[0] or mv[n - 1] or mv[n // 2]:
        return False
    return not np.count_nonzero(np.frombuffer(mv, dtype=np.uint8))


@dataclass(frozen=True)
class EncodedRegion:
    """One region ready to frame: ``flags`` say how ``body`` encodes ``raw_size`` bytes."""

    flags: int
    raw_size: int
    body: Data

    @property
    def body_size(self) -> int:
        return len(self.body)


@dataclass
class CodecStats:
    """Counters per encoder, for statistics and the benchmarks."""

    regions: int = 0
    zero_regions: int = 0
    compressed_regions: int = 0
    raw_regions: int = 0
    compress_attempts: int = 0
    raw_bytes: int = 0
    body_bytes: int = 0
    zero_bytes: int = 0  # of raw_bytes, those sent as zero markers

    def add(self, other: "CodecStats") -> None:
        for f in self.__dataclass_fields__:
            setattr(self, f, getattr(self, f) + getattr(other, f))


@dataclass
class RegionEncoder:
    """Encodes the regions of one transfer (one stream of similar data)."""

    level: int = ZSTD_LEVEL
    stats: CodecStats = field(default_factory=CodecStats)
    _backoff: int = 0
    _skip: int = 0
    _zstd: zstandard.ZstdCompressor | None = None

    def encode(self, data: Data) -> EncodedRegion:
        if isinstance(data, memoryview) and (data.format != "B" or data.ndim != 1):
            data = data.cast("B")  # len() must count bytes, not items
        n = len(data)
        st = self.stats
        st.regions += 1
        st.raw_bytes += n
        if is_zero(data):
            st.zero_regions += 1
            st.zero_bytes += n
            return EncodedRegion(Flag.ZERO, n, b"")
        if n >= MIN_COMPRESS:
            if self._skip:
                self._skip -= 1
            else:
                st.compress_attempts += 1
                if self._zstd is None:
                    self._zstd = zstandard.ZstdCompressor(level=self.level)
                packed = self._zstd.compress(data)
                if len(packed) < n * PAYS_RATIO:
                    self._backoff = 0
                    st.compressed_regions += 1
                    st.body_bytes += len(packed)
                    return EncodedRegion(Flag.ZSTD, n, packed)
                self._backoff = min(MAX_BACKOFF, max(1, self._backoff * 2))
                self._skip = self._backoff - 1
        st.raw_regions += 1
        st.body_bytes += n
        return EncodedRegion(Flag.NONE, n, data)


class RegionDecoder:
    """Turns a received region body back into its bytes (``None`` for zeros)."""

    def __init__(self) -> None:
        self._zstd = zstandard.ZstdDecompressor()

    def decode(self, flags: int, raw_len: int, body: Data, peer: str) -> Data | None:
        if flags & Flag.ZERO:
            if body:
                raise ChannelError(f"{peer} sent a zero region with a body.",
                                   code="arvmChannelFrameCorrupt")
            return None
        if flags & Flag.ZSTD:
            try:
                data = self._zstd.decompress(body, max_output_size=raw_len)
            except zstandard.ZstdError as exc:
                raise ChannelError(f"{peer} sent a region that does not decompress: {exc}",
                                   code="arvmChannelFrameCorrupt") from None
        else:
            data = body
        if len(data) != raw_len:
            raise ChannelError(
                f"{peer} sent a region of {len(data)} bytes announced as {raw_len}.",
                code="arvmChannelFrameCorrupt")
        return data
