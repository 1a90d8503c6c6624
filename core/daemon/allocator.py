"""Let a data-moving process reuse the memory it frees (issue 14: initial sync at disk speed).

The array daemon and the link relay move data in pieces of about 1 MiB (channel frame
bodies, TLS records, NBD requests, PIT runs), each a fresh allocation freed a moment
later. With glibc's defaults the top of the heap goes back to the kernel as soon as a
few hundred KiB of it are free, so every such piece paid ``brk`` up and down and a page
fault for every 4 KiB it touched: a third of the receiving daemon's time in an initial
sync (perf: page faults 14 % and brk 2.5 % of all samples), and the initial sync ran at
half its speed. Keeping up to 16 MiB free at the top of each heap, and serving requests
below 8 MiB from the heap instead of fresh mappings, makes those pieces reuse warm pages.
A daemon's resident memory grows by at most that much per malloc arena, and there are at
most two (glibc makes up to 8 per core, one per busy thread: a 64 x 8 run showed 188 MiB).

Elsewhere than glibc (musl, macOS) there is nothing to tune and nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENA_MAX = 2  # the loop's and one shared by the worker threads (they mostly wait on the GIL or I/O)
TRIM_THRESHOLD = 16 << 20
MMAP_THRESHOLD = 8 << 20


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above; False where there is no glibc ``mallopt``."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # Setting the mmap threshold also stops glibc from moving both thresholds by itself.
    return all(mallopt(option, value) for option, value in (
        (M_ARENA_MAX, ARENA_MAX), (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
