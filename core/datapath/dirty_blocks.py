"""Dirty blocks inside regions (issue 14): which blocks of a region a host wrote, as a bit mask.

The change log keeps, in memory, a mask per dirty region; the PIT store copies and the
sender reads only the blocks set, as runs. A mask of 0 means the whole region (its
blocks are not known, e.g. after a restart: the durable log knows regions only).
"""
from __future__ import annotations

import numpy as np

DIRTY_BLOCK = 4096  # the host block the in-memory masks track (larger when a region holds more than 64)
MAX_MASK_BLOCKS = 64


def dirty_block_size(region_size: int) -> int:
    """The block size of a region's dirty mask; ``region_size`` itself when blocks cannot be tracked."""
    n = min(MAX_MASK_BLOCKS, max(1, region_size // DIRTY_BLOCK))
    if region_size % n or (region_size // n) % 512:
        return region_size
    return region_size // n


def mask_dtype(blocks: int):
    """The smallest unsigned numpy type with a bit for each of ``blocks``."""
    return next(t for t, bits in ((np.uint8, 8), (np.uint16, 16), (np.uint32, 32), (np.uint64, 64))
                if blocks <= bits)


def block_runs(mask: int, block: int, start: int, end: int) -> list[tuple[int, int]]:
    """The ``(offset, length)`` runs of set bits of ``mask`` in the region ``[start, end)``.

    Bit ``i`` is the block at ``start + i * block``; runs are clipped at ``end`` (the
    volume's end in its last region). A mask of 0 is the whole region.
    """
    if not mask:
        return [(start, end - start)]
    out = []
    i = 0
    while mask:
        if not mask & 1:
            low = (mask & -mask).bit_length() - 1  # skip to the next set bit
            mask >>= low
            i += low
            continue
        run = (~mask & (mask + 1)).bit_length() - 1  # length of the run of ones at the bottom
        a, b = start + i * block, min(end, start + (i + run) * block)
        if a < b:
            out.append((a, b - a))
        mask >>= run
        i += run
    return out


def written_bytes(*sets: tuple[np.ndarray, np.ndarray], region_size: int, block: int, volume_size: int) -> int:
    """Bytes of the blocks written in the union of ``sets``, each ``(regions flagged, their masks)``.

    A flagged region whose mask is 0 counts whole (clipped at the volume's end); a region
    flagged in several sets counts the union of its masks.
    """
    flagged = np.logical_or.reduce([f for f, _ in sets])
    idx = np.flatnonzero(flagged)
    if not idx.size:
        return 0
    whole, bits = np.zeros(idx.size, dtype=bool), 0
    for f, masks in sets:
        on, m = f[idx], masks[idx]
        whole |= on & (m == 0)
        bits = bits | np.where(on, m, 0)
    total = int(np.count_nonzero(whole)) * region_size + int(np.bitwise_count(bits[~whole]).sum()) * block
    regions = -(-volume_size // region_size)  # the bitmaps may be longer (padded)
    if whole[-1] and idx[-1] == regions - 1:  # the last region may be short
        total -= regions * region_size - volume_size
    return total
