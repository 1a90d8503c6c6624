"""The harness's oracle: every host write in order, and which instant an image can be.

One writer issues host writes one at a time (queue depth 1), each a whole 64 KiB
block of data unique to the write. So at any instant each primary volume holds a
*prefix* of the write log: the writes 1..k for some k (the write in flight is in or
not). A recovery point is such an instant for every volume of the group at once.

Given an image (the content of every block of every volume), :meth:`WriteLog.admissible`
finds the k for which "writes 1..k" gives exactly that image, as an interval
``[lo, hi]``: a block holding write j constrains k to ``[j, next write to that
block - 1]``. An empty intersection means the image is a mix of two instants (or a
block holds bytes nobody wrote): the failure the harness exists to catch. An
acknowledged write is lost when the image cannot be the instant after it.
"""
from __future__ import annotations

import bisect
import hashlib
import struct
import time
from dataclasses import dataclass, field

import numpy as np

BLOCK = 64 * 1024  # one write = one region of the mirror (DEFAULT_REGION_SIZE)
INFINITY = 1 << 62
_HEAD = struct.Struct("<8sQ")
ZERO_DIGEST = hashlib.blake2b(bytes(BLOCK), digest_size=16).digest()


def digest(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def block_data(seed: int, index: int) -> bytes:
    """The 64 KiB that write ``index`` puts on its block: unique, incompressible, reproducible."""
    body = np.random.default_rng([seed, index]).bytes(BLOCK - _HEAD.size)
    return _HEAD.pack(b"AMADVWR1", index) + body


@dataclass
class Write:
    index: int
    volume: str
    block: int
    data: bytes


@dataclass
class WriteLog:
    """Every host write the harness issued, in order; which were acknowledged."""

    volumes: dict[str, int]  # primary volume name -> capacity in bytes
    seed: int = 1
    issued: int = 0
    acked: int = 0
    inflight: Write | None = None
    ack_times: list[float] = field(default_factory=list)  # wall clock of each ack, in ack order
    ack_indices: list[int] = field(default_factory=list)
    _history: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    _contents: dict[tuple[str, int], dict[bytes, int]] = field(default_factory=dict)

    def blocks(self, volume: str) -> int:
        return self.volumes[volume] // BLOCK

    def begin(self, volume: str, block: int) -> Write:
        """A new write, recorded before it is sent (its data may reach a volume before the ack)."""
        assert self.inflight is None, "one write at a time"
        self.issued += 1
        w = Write(self.issued, volume, block, block_data(self.seed, self.issued))
        self._record(volume, block, w.index, digest(w.data))
        self.inflight = w
        return w

    def ack(self, w: Write) -> None:
        assert self.inflight is w
        self.acked = w.index
        self.inflight = None
        self.ack_times.append(time.time())
        self.ack_indices.append(w.index)

    def acked_before(self, wall: float) -> int:
        """The last write whose acknowledgement reached the host before ``wall`` (time.time()).

        A recovery point captured at ``wall`` must hold it: the array applied it earlier still.
        """
        pos = bisect.bisect_left(self.ack_times, wall)
        return self.ack_indices[pos - 1] if pos else 0

    def _record(self, volume: str, block: int, index: int, d: bytes) -> None:
        self._history.setdefault((volume, block), []).append(index)
        self._contents.setdefault((volume, block), {})[d] = index

    def settle_inflight(self, primary: dict[str, bytes]) -> str:
        """After a crash: the unacknowledged write is whatever the primary holds now.

        Returns "landed", "not landed" or "torn" (bytes of both: allowed for a write
        never acknowledged; the torn bytes are then that write's content). No write
        in flight: "none".
        """
        w = self.inflight
        if w is None:
            return "none"
        self.inflight = None
        key = (w.volume, w.block)
        now = digest(memoryview(primary[w.volume])[w.block * BLOCK:(w.block + 1) * BLOCK])
        if now == digest(w.data):
            self.acked = w.index
            return "landed"
        history = self._history[key]
        before = history[-2] if len(history) > 1 else 0
        before_digest = ZERO_DIGEST if before == 0 else next(d for d, i in self._contents[key].items() if i == before)
        if now == before_digest:
            history.pop()
            del self._contents[key][digest(w.data)]
            return "not landed"
        self._contents[key][now] = w.index
        self.acked = w.index
        return "torn"

    def admissible(self, images: dict[str, bytes]) -> tuple[int, int] | None:
        """``(lo, hi)``: the image is "writes 1..k" for any k in [lo, hi]; None for a mix."""
        lo, hi = 0, INFINITY
        for volume, image in images.items():
            view = memoryview(image)
            for block in range(self.blocks(volume)):
                key = (volume, block)
                d = digest(view[block * BLOCK:(block + 1) * BLOCK])
                history = self._history.get(key, [])
                j = self._contents.get(key, {}).get(d)
                if j is None:
                    if d != ZERO_DIGEST:
                        return None  # bytes no single write put there: torn or mixed
                    j = 0
                pos = bisect.bisect_right(history, j)
                nxt = history[pos] if pos < len(history) else INFINITY
                lo, hi = max(lo, j), min(hi, nxt - 1)
                if lo > hi:
                    return None
        return lo, hi

    def blocks_missing(self, images: dict[str, bytes], k: int) -> list[str]:
        """Blocks whose content is not "writes 1..k" (for a report: which writes were lost)."""
        out = []
        for volume, image in images.items():
            view = memoryview(image)
            for block in range(self.blocks(volume)):
                history = self._history.get((volume, block), [])
                pos = bisect.bisect_right(history, k)
                want = history[pos - 1] if pos else 0
                d = digest(view[block * BLOCK:(block + 1) * BLOCK])
                have = self._contents.get((volume, block), {}).get(d, 0 if d == ZERO_DIGEST else -1)
                if have != want:
                    out.append(f"{volume}@{block * BLOCK}: holds write {have}, expected {want}")
        return out
