"""A sync's figures: what it is called and what the primary counts as unsynchronized while it runs."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from core.replication import sync_figures

RS = 64 << 10


def _transfer(kind="interval", manual=False):
    return SimpleNamespace(kind=kind, manual=manual, started=0.0, started_at=None)


def test_a_sync_asked_for_by_a_person_is_manual():
    assert sync_figures.progress("interval", 1, 2, _transfer(manual=True)).kind == "manual"
    assert sync_figures.progress("interval", 1, 2, _transfer()).kind == "interval"
    assert sync_figures.progress("initial", 1, 2, _transfer("initial", manual=True)).kind == "initial"
    assert sync_figures.sync_kind("interval", object()) == "interval"  # a transfer that does not say


def test_the_primary_counts_down_what_the_transfer_sent():
    regions = np.array([0, 1, 2, 3], dtype=np.int64)
    pt = SimpleNamespace(regions=regions, sent=np.array([True, True, False, False]))
    pending = np.array([0, 1, 2, 3, 9], dtype=np.int64)  # 9: written after the capture
    size = 10 * RS
    assert sync_figures.unsynchronized_bytes(pending, np.array([9]), None, RS, size) == 5 * RS
    # Regions 0 and 1 are on the secondary: three regions are not.
    assert sync_figures.unsynchronized_bytes(pending, np.array([9]), pt, RS, size) == 3 * RS
    # A host rewrote region 1 after it was sent: it is unsynchronized again.
    assert sync_figures.unsynchronized_bytes(pending, np.array([1, 9]), pt, RS, size) == 4 * RS


def test_the_last_region_is_clamped_at_the_volume_end():
    size = 3 * RS + 100
    assert sync_figures.unsynchronized_bytes(np.array([3]), np.array([], dtype=np.int64), None, RS, size) == 100
    assert sync_figures.unsynchronized_bytes(np.array([], dtype=np.int64), np.array([]), None, RS, size) == 0
