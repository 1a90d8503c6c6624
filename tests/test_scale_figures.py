"""A pair's figures at scale (issue 14): computed cheaply, and still exactly what the data path holds."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from core.replication import sync_figures

RS = 64 << 10


def reference(pending, written_since_capture, transfer_pair, size: int) -> int:
    """The rule in sets: pending regions, less those sent that no host rewrote since the capture."""
    left = set(pending.tolist())
    if transfer_pair is not None:
        sent = set(transfer_pair.regions[transfer_pair.sent].tolist())
        left -= sent - set(written_since_capture.tolist())
    return sum(min((r + 1) * RS, size) - r * RS for r in left)


def test_the_unsynchronized_bytes_during_a_sync_follow_the_rule_for_any_regions():
    rng = np.random.default_rng(14)
    for case in range(300):
        n = int(rng.integers(1, 3000))
        size = n * RS - int(rng.integers(0, RS))
        pending = np.flatnonzero(rng.random(n) < rng.random()).astype(np.int64)
        captured = np.flatnonzero(rng.random(n) < rng.random()).astype(np.int64)
        pair = SimpleNamespace(regions=captured, sent=rng.random(len(captured)) < rng.random())
        written = np.flatnonzero(rng.random(n) < rng.random() / 4).astype(np.int64)
        for transfer_pair in (pair, None):
            assert sync_figures.unsynchronized_bytes(pending, written, transfer_pair, RS, size) == \
                reference(pending, written, transfer_pair, size), case
