"""Comparing a secondary's recovery point with the primary's image at that instant, by block digests.

Both sides run :func:`volume_digests` over the same regions; regions changed since
the recovery point are excluded on both sides. The report says how much was
compared and skipped: "identical" after skipping everything would be a lie.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import numpy as np

from core.channel.codec import is_zero
from core.datapath.extents import allocated_regions

DIGEST_BLOCK_REGIONS = 256
VERIFY_ATTEMPTS = 3


def pair_not_comparable(p, hv) -> str:
    """Why a pair's secondary holds no recovery point to compare with, or ''."""
    if p.incomplete or p.orphan:
        return f"the pair is {'incomplete' if p.incomplete else 'an orphan'}: it has no secondary to compare"
    if not p.initial_sync_done:
        return "no recovery point yet: its initial synchronization has not finished"
    if hv.failed:
        return "the primary volume has failed: it cannot be read"
    if hv.changelog is None:
        return "the primary's change log is not open"
    return ""


def region_bytes(regions: np.ndarray, region_size: int, size: int) -> int:
    """Bytes of ``regions``, the last region of the volume clamped at its end."""
    if not len(regions):
        return 0
    ends = np.minimum((regions + 1) * region_size, size)
    return int((ends - regions * region_size).sum())


def counts(regions: int, skipped: int, skipped_bytes: int, size: int) -> dict:
    return {"regionsCompared": regions - skipped, "regionsSkipped": skipped, "bytesCompared": size - skipped_bytes,
            "bytesSkipped": skipped_bytes, "regionsSkippedChangedSinceRecoveryPoint": skipped}


def verify_report(g, pairs: list[dict], group_status: str) -> dict:
    """The group's verdict: any mismatch wins; a pair with nothing compared is not verified."""
    for p in pairs:
        p["identical"] = p["outcome"] == "identical"
    outcomes = {p["outcome"] for p in pairs}
    outcome = "mismatch" if "mismatch" in outcomes else "notVerified" if "notVerified" in outcomes else "identical"
    age = (datetime.now(timezone.utc) - g.last_recovery_point).total_seconds()
    return {"group": g.name, "recoveryPoint": g.last_recovery_point.isoformat(),
            "recoveryPointId": g.last_recovery_point_id, "recoveryPointAgeSeconds": max(0.0, age),
            "groupStatus": group_status, "outcome": outcome, "identical": outcome == "identical",
            "compared": {"regions": sum(p["regionsCompared"] for p in pairs),
                         "bytes": sum(p["bytesCompared"] for p in pairs)},
            "skipped": {"regions": sum(p["regionsSkipped"] for p in pairs),
                        "bytes": sum(p["bytesSkipped"] for p in pairs)},
            "pairs": pairs}


def volume_digests(path: str, size: int, region_size: int, exclude) -> list[str]:
    """BLAKE2b per block of regions, over the first ``size`` bytes; holes are not read.

    Each region enters its block's digest as a tag: excluded, zero (a hole, or
    written zeros: both sides must agree whichever way they hold them), or its bytes.
    Tags keep an excluded region nearly free, so a caller may exclude a long prefix
    to compare one range (``core.replication.online_verify``) without either side
    reading or hashing it. Both sides of a comparison run this same function.
    """
    excluded = np.zeros(-(-size // region_size), dtype=bool)
    if len(exclude):
        excluded[np.asarray(exclude, dtype=np.int64)] = True
    allocated = np.zeros_like(excluded)
    allocated[allocated_regions(path, size, region_size)] = True
    read = allocated & ~excluded
    out = []
    with open(path, "rb", buffering=0) as f:
        for b in range(0, len(excluded), DIGEST_BLOCK_REGIONS):
            h = hashlib.blake2b(digest_size=16)
            end = min(b + DIGEST_BLOCK_REGIONS, len(excluded))
            if not read[b:end].any():  # nothing to read: the tags alone
                h.update(np.where(excluded[b:end], _EXCLUDED, _ZERO).astype(np.uint8).tobytes())
                out.append(h.hexdigest())
                continue
            for r in range(b, end):
                if excluded[r]:
                    h.update(_TAG_EXCLUDED)
                    continue
                data = b""
                if allocated[r]:
                    f.seek(r * region_size)
                    data = f.read(min((r + 1) * region_size, size) - r * region_size)
                if not data or is_zero(data):
                    h.update(_TAG_ZERO)
                else:
                    h.update(_TAG_DATA)
                    h.update(data)
            out.append(h.hexdigest())
    return out


_ZERO, _EXCLUDED, _DATA = 0, 1, 2
_TAG_ZERO, _TAG_EXCLUDED, _TAG_DATA = bytes([_ZERO]), bytes([_EXCLUDED]), bytes([_DATA])
