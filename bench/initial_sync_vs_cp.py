#!/usr/bin/env python3
"""Initial synchronization between the array daemons, against cp + sync and nbdcopy qemu-nbd -> qemu-nbd (issue 14).

Targets: the initial sync of 1 GiB of random data reaches >= 0.7x the throughput of
``cp`` of the volume's backing file followed by ``sync`` (a committed sync is durable),
and >= 1.0x ``nbdcopy --flush`` from a qemu-nbd export of that file to a qemu-nbd
export of an empty file (block copy between two NBD servers, as a host would do it).
Also shown: ``cp`` alone, and that a sparse volume costs only its written data (a
16 GiB volume with 256 MiB written against a fully written 256 MiB volume).

The arrays run as daemons (``mirrorctl lab up`` on a temp home). Every round gets its
own primary (filled over NBD with nbdcopy), secondary and group; in alternating order,
each after dropping the page cache (root):
  ours         add_pair over REST, until the group's first recovery point is committed
               and the group is Optimal (polled over REST every 50 ms);
  cp + sync    cp of that round's primary file to a new file, then sync;
  nbdcopy      qemu-nbd -r of that file -> qemu-nbd of a new file, ``nbdcopy --flush``.
Medians of ``--rounds`` (>= 3) with the range; ratios are of the medians.

Usage: .venv/bin/python bench/initial_sync_vs_cp.py [--size-mib 1024] [--sparse-capacity-gib 16]
       [--sparse-written-mib 256] [--rounds 3] [--json]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.figures import Log, PageCache, add_run_options, finish, machine, ratio, spread, target  # noqa: E402
from harness.lab import DaemonLab  # noqa: E402

MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_nbd(path: Path, readonly: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = ["qemu-nbd", "-f", "raw", "-t", "-x", "x", "-p", str(port), "-b", "127.0.0.1"]
    proc = subprocess.Popen(cmd + (["-r"] if readonly else []) + [str(path)])
    uri = f"nbd://127.0.0.1:{port}/x"
    deadline = time.monotonic() + 10
    while subprocess.run(["nbdinfo", "--size", uri], capture_output=True).returncode != 0:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"qemu-nbd did not answer at {uri}")
        time.sleep(0.05)
    return proc, uri


def random_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(0, size, 16 * MiB):
            f.write(os.urandom(16 * MiB))
        f.truncate(size)


def initial_sync(c, group: str, primary: str, secondary: str, timeout: float = 1800) -> tuple[float, object]:
    """add_pair, then wait until the group committed its first recovery point and is Optimal."""
    t0 = time.monotonic()
    c.add_pair(group, primary, secondary)
    end = t0 + timeout
    while time.monotonic() < end:
        done = [s for s in c.sync_history(group) if s.outcome == "committed"]
        if done and c.group(group).status == "optimal":
            return time.monotonic() - t0, done[-1]
        time.sleep(0.05)
    raise RuntimeError(f"the initial sync of {group} did not finish in {timeout:.0f} s")


def run(args, log: Log, cache: PageCache, tmp: Path) -> dict:
    size = args.size_mib * MiB
    written = args.sparse_written_mib * MiB
    sparse_cap = args.sparse_capacity_gib * 1024 * MiB
    rows: list[dict] = []
    with DaemonLab("bench-init-", workdir=str(tmp)) as lab, lab.client("bench initial sync") as c:
        log(f"lab up in {lab.up_seconds:.1f} s; filling {args.rounds} primaries of {args.size_mib} MiB over NBD ...")
        src = tmp / "random.img"
        random_file(src, size)
        for i in range(args.rounds):
            c.create_volume(f"SiteA/rand{i}", size, drive_type="nvme")
            c.create_volume(f"SiteB/rand{i}", size, drive_type="nvme")
            c.create_group(f"G{i}", "SiteA", "SiteB", sync_mode="manual")
            subprocess.run(["nbdcopy", "--request-size=8388608", str(src), c.volume(f"SiteA/rand{i}").nbd_uri],
                           check=True)
            # The sparse case: the same amount written, spread over a large volume, and a full small one.
            for name, cap, kind in ((f"sparse{i}", sparse_cap, "sas"), (f"full{i}", written, "nvme")):
                c.create_volume(f"SiteA/{name}", cap, drive_type=kind)
                c.create_volume(f"SiteB/{name}", cap, drive_type=kind)
                c.create_group(f"{name.upper()}", "SiteA", "SiteB", sync_mode="manual")
                chunk = 8 * MiB
                stride = cap // max(1, written // chunk)
                for off in range(0, cap, stride)[: written // chunk]:
                    c.host_write(f"SiteA/{name}", off, os.urandom(chunk))
        src.unlink()
        for i in range(args.rounds):
            row: dict = {}
            primary_file = Path(c.volume(f"SiteA/rand{i}").path)

            def ours() -> None:
                cache.drop()
                row["ours_s"], stats = initial_sync(c, f"G{i}", f"SiteA/rand{i}", f"SiteB/rand{i}")
                row.update(engine_seconds=stats.duration_seconds, bytes_payload=stats.bytes_payload,
                           bytes_sent=stats.bytes_sent)

            def cp_sync() -> None:
                dst = tmp / "cp.img"
                cache.drop()
                t0 = time.monotonic()
                subprocess.run(["cp", str(primary_file), str(dst)], check=True)
                row["cp_s"] = time.monotonic() - t0
                subprocess.run(["sync"], check=True)
                row["cp_sync_s"] = time.monotonic() - t0
                dst.unlink()

            def nbdcopy() -> None:
                dst = tmp / "nbdcopy.img"
                with open(dst, "wb") as f:
                    f.truncate(size)
                procs = []
                try:
                    s_proc, s_uri = qemu_nbd(primary_file, readonly=True)
                    procs.append(s_proc)
                    d_proc, d_uri = qemu_nbd(dst, readonly=False)
                    procs.append(d_proc)
                    cache.drop()
                    t0 = time.monotonic()
                    subprocess.run(["nbdcopy", "--flush", s_uri, d_uri], check=True)
                    row["nbdcopy_s"] = time.monotonic() - t0
                finally:
                    for p in procs:
                        p.terminate()
                        p.wait(timeout=10)
                    dst.unlink(missing_ok=True)

            steps = (ours, cp_sync, nbdcopy)
            for step in (steps if i % 2 == 0 else tuple(reversed(steps))):
                step()
            row["verify_identical"] = bool(c.verify(f"G{i}").get("identical"))
            sparse_first = i % 2 == 0
            for name in ((f"sparse{i}", f"full{i}") if sparse_first else (f"full{i}", f"sparse{i}")):
                cache.drop()
                t, stats = initial_sync(c, name.upper(), f"SiteA/{name}", f"SiteB/{name}")
                row[f"{name.rstrip('0123456789')}_s"] = t
                row[f"{name.rstrip('0123456789')}_payload"] = stats.bytes_payload
            rows.append(row)
            log(f"round {i + 1}: ours {row['ours_s']:.2f} s ({size / MiB / row['ours_s']:.0f} MiB/s, identical "
                f"{row['verify_identical']}), cp {row['cp_s']:.2f} s, cp+sync {row['cp_sync_s']:.2f} s, "
                f"nbdcopy {row['nbdcopy_s']:.2f} s; sparse {row['sparse_s']:.2f} s vs full {row['full_s']:.2f} s")
    return {"size": size, "rounds": rows}


def report(args, m: dict, cache: PageCache, meta: dict) -> dict:
    rows, mib = m["rounds"], m["size"] / MiB
    fig = {k: spread([r[k] for r in rows]) for k in ("ours_s", "cp_s", "cp_sync_s", "nbdcopy_s", "sparse_s", "full_s")}
    rate = {k: mib / fig[k]["median"] for k in ("ours_s", "cp_s", "cp_sync_s", "nbdcopy_s")}
    return {
        "bench": "initial_sync_vs_cp", "machine": meta, "page_cache": cache.describe(),
        "config": {"size_mib": args.size_mib, "rounds": args.rounds, "sparse_capacity_gib": args.sparse_capacity_gib,
                   "sparse_written_mib": args.sparse_written_mib,
                   "shape": "array daemons (mirrorctl lab up), fill over NBD, pairs and progress over REST"},
        "figures": {
            "seconds": fig, "mib_s_of_medians": {k[:-2]: v for k, v in rate.items()},
            "vs_cp_sync_per_round": spread([r["cp_sync_s"] / r["ours_s"] for r in rows]),
            "vs_nbdcopy_per_round": spread([r["nbdcopy_s"] / r["ours_s"] for r in rows]),
            "vs_cp_alone": ratio(fig["cp_s"]["median"], fig["ours_s"]["median"]),
            "sparse_over_full_time": ratio(fig["sparse_s"]["median"], fig["full_s"]["median"]),
            "all_identical": all(r["verify_identical"] for r in rows), "rounds": rows,
        },
        "targets": {
            "initial_sync_vs_cp_and_sync": target(ratio(fig["cp_sync_s"]["median"], fig["ours_s"]["median"]), 0.7),
            "initial_sync_vs_nbdcopy_qemu_nbd": target(ratio(fig["nbdcopy_s"]["median"], fig["ours_s"]["median"]),
                                                       1.0),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="random data per round (default 1024)")
    ap.add_argument("--sparse-capacity-gib", type=int, default=16, help="the sparse volume's capacity (default 16)")
    ap.add_argument("--sparse-written-mib", type=int, default=256, help="written into it, and the full volume's size")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of ours / cp+sync / nbdcopy (default 3)")
    add_run_options(ap, "the lab and the copies")
    args = ap.parse_args(argv)
    started, meta = time.monotonic(), machine()
    log, cache = Log(args.json), PageCache(not args.keep_page_cache)
    with tempfile.TemporaryDirectory(prefix="bench-init-", dir=args.workdir) as tmp:
        m = run(args, log, cache, Path(tmp))
    r = report(args, m, cache, meta)
    if not args.json:
        f, s = r["figures"], r["figures"]["seconds"]
        print(f"\nmedians of {args.rounds} rounds (range), {args.size_mib} MiB of random data:")
        for k, label in (("ours_s", "initial sync (daemons)"), ("cp_s", "cp"), ("cp_sync_s", "cp + sync"),
                         ("nbdcopy_s", "nbdcopy qemu-nbd -> qemu-nbd")):
            print(f"  {label:30s} {s[k]['median']:7.2f} s ({s[k]['min']:.2f}-{s[k]['max']:.2f})  "
                  f"{f['mib_s_of_medians'][k[:-2]]:7.0f} MiB/s")
        print(f"  {args.sparse_capacity_gib} GiB sparse volume with {args.sparse_written_mib} MiB written "
              f"{s['sparse_s']['median']:.2f} s vs a full {args.sparse_written_mib} MiB volume "
              f"{s['full_s']['median']:.2f} s: {f['sparse_over_full_time']:.2f}x; all identical: {f['all_identical']}")
    finish(r, args.json, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
