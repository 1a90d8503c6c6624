#!/usr/bin/env python3
"""Initial synchronization against cp of the same file (SPEC §5).

Quality bars: the initial sync of 1 GiB of random data between two arrays on
loopback reaches >= 0.7x the throughput of ``cp`` of the volume's backing file
(also shown: ``cp`` followed by ``sync``, since a committed sync is durable); and a
sparse volume costs only its written data: a 16 GiB volume with 256 MiB written
syncs in about the time of a fully written 256 MiB volume. Prints, asserts nothing.

Usage: .venv/bin/python bench/initial_sync_vs_cp.py [--size-mib 1024] [--sparse-written-mib 256]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.lab import init_lab  # noqa: E402
from core.runtime import BlockingEngine  # noqa: E402

MiB = 1 << 20


def fill_random(c, ref: str, offsets, chunk: int = 8 * MiB) -> None:
    for off in offsets:
        c.host_write(ref, off, os.urandom(chunk))
    c.host_flush(ref)


def timed_initial_sync(c, group: str, name: str) -> tuple[float, object]:
    """add_pair, then wait until the group committed its first recovery point."""
    c.create_group(group, "SiteA", "SiteB", sync_mode="manual")
    t0 = time.monotonic()
    c.add_pair(group, f"SiteA/{name}", f"SiteB/{name}")
    while True:
        done = [s for s in c.sync_history(group) if s.outcome == "committed"]
        if done and c.group(group).status == "optimal":
            return time.monotonic() - t0, done[-1]
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--sparse-capacity-gib", type=int, default=16)
    ap.add_argument("--sparse-written-mib", type=int, default=256)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-init-"))
    try:
        home = tmp / "lab"
        init_lab(home)
        size = args.size_mib * MiB
        w = args.sparse_written_mib * MiB
        with BlockingEngine(home, purpose="bench") as c:
            # part 1: 1 GiB of random data
            c.create_volume("SiteA/rand", size, drive_type="nvme")
            c.create_volume("SiteB/rand", size, drive_type="nvme")
            fill_random(c, "SiteA/rand", range(0, size, 8 * MiB))
            src = c.volume("SiteA/rand").path
            subprocess.run(["sync"], check=True)
            ours, stats = timed_initial_sync(c, "G1", "rand")
            ok = c.verify("G1")["identical"]
            # part 2: sparse 16 GiB with 256 MiB written (spread) vs a full 256 MiB volume
            c.create_volume("SiteA/sparse", f"{args.sparse_capacity_gib}GiB", drive_type="sas")
            c.create_volume("SiteB/sparse", f"{args.sparse_capacity_gib}GiB", drive_type="sas")
            stride = args.sparse_capacity_gib * 1024 * MiB // (w // (8 * MiB))
            fill_random(c, "SiteA/sparse", range(0, args.sparse_capacity_gib * 1024 * MiB, stride))
            c.create_volume("SiteA/full", w, drive_type="nvme")
            c.create_volume("SiteB/full", w, drive_type="nvme")
            fill_random(c, "SiteA/full", range(0, w, 8 * MiB))
            subprocess.run(["sync"], check=True)
            t_sparse, s_sparse = timed_initial_sync(c, "G2", "sparse")
            t_full, s_full = timed_initial_sync(c, "G3", "full")
        dst = tmp / "copy.img"
        t0 = time.monotonic()
        subprocess.run(["cp", src, str(dst)], check=True)
        t_cp = time.monotonic() - t0
        os.unlink(dst)
        t0 = time.monotonic()
        subprocess.run(["cp", src, str(dst)], check=True)
        subprocess.run(["sync"], check=True)
        t_cp_sync = time.monotonic() - t0
        mb = size / MiB
        print(f"part 1: initial sync of {mb:.0f} MiB of random data: {ours:.2f} s = {mb / ours:.0f} MiB/s "
              f"(engine duration {stats.duration_seconds:.2f} s, payload {stats.bytes_payload}, wire "
              f"{stats.bytes_sent}; verify identical: {ok})")
        print(f"        cp:        {t_cp:.2f} s = {mb / t_cp:.0f} MiB/s  -> ratio ours/cp {t_cp / ours:.2f}x "
              "(target >= 0.7x)")
        print(f"        cp + sync: {t_cp_sync:.2f} s = {mb / t_cp_sync:.0f} MiB/s  -> ratio ours/(cp+sync) "
              f"{t_cp_sync / ours:.2f}x")
        print(f"part 2: {args.sparse_capacity_gib} GiB sparse volume with {args.sparse_written_mib} MiB written: "
              f"{t_sparse:.2f} s (payload {s_sparse.bytes_payload})")
        print(f"        {args.sparse_written_mib} MiB volume fully written:           {t_full:.2f} s "
              f"(payload {s_full.bytes_payload})  -> sparse/full time {t_sparse / t_full:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
