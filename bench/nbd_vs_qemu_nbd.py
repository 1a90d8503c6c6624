#!/usr/bin/env python3
"""Host writes over NBD to the array daemons, against qemu-nbd on the same machine (issue 14).

Targets: with a sync running, 1 MiB sequential writes (nbdcopy) reach >= 0.9x qemu-nbd's
throughput and 4 KiB random writes at queue depth 16 (fio's nbd engine) >= 1.0x its
IOPS; mirroring on costs at most 10 % of the 4 KiB random IOPS of mirroring off.

The arrays run as daemons (``mirrorctl lab up`` on a temp home); the bench writes to
their NBD servers (each volume's ``nbdUri``) and runs syncs over REST (the Fleet).
Each round measures, in alternating order, each on its own file or volume:
  qemu-nbd          qemu-nbd -f raw serving a raw file (the peer);
  ours-file         our NBD server in the bench process serving a raw file (the protocol alone);
  daemon-off        SiteA's daemon serving a volume that is not mirrored;
  daemon-on         a primary volume of a manual group, just after a sync committed; its
                    regions were rewritten by the earlier runs, so they stay in the change
                    log's activity log (steady state: no durable write-intent update),
    then at once  daemon-on-dirty: the same again, its regions already dirty (between syncs);
  daemon-on-cold    the worst case: a fresh mirrored volume per round, written once and synced,
                    so every region's first write pays the durable write-intent record;
  daemon-sync       the same primary while syncs run back to back over REST for the whole
                    measurement (PIT copy-on-write active, the receiver busy in SiteB's daemon).
Tests: (1) nbdcopy --request-size=1M of a random file into each export;
(2) fio --ioengine=nbd --rw=randwrite --bs=4k --iodepth=16 --time_based --randrepeat=0: each
run writes its own random blocks (fio's default seed wrote the same sequence every run, so
the writes under daemon-sync hit exactly the blocks the slot before had dirtied, i.e. the
very blocks the sync was sending: a worst case for copy-on-write, not random writes).
The page cache is dropped before every timed run when the bench runs as root.
Medians of ``--rounds`` (>= 3) with the range; ratios are of the medians.

Usage: .venv/bin/python bench/nbd_vs_qemu_nbd.py [--size-mib 1024] [--runtime 5] [--rounds 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.figures import Log, PageCache, add_run_options, finish, machine, ratio, spread, target  # noqa: E402
from harness.lab import DaemonLab  # noqa: E402

from core.errors import MirrorError  # noqa: E402
from core.nbd import DictProvider, FileBackend, NbdServerThread  # noqa: E402

EXPORT = "bench"
GROUP = "BENCH"
MiB = 1024 * 1024
# The daemon's volumes are larger than the measured range: a sync of all of it must
# fit the reserved capacity (at most 100 % of the volume) with its journal headers.
HEADROOM = 256 * MiB
SLOTS = ("qemu-nbd", "ours-file", "daemon-off", "daemon-on", "daemon-on-cold", "daemon-sync")
TARGETS = ("qemu-nbd", "ours-file", "daemon-off", "daemon-on", "daemon-on-dirty", "daemon-on-cold", "daemon-sync")
LABELS = {"qemu-nbd": "qemu-nbd (raw file)", "ours-file": "our NBD server, raw file (bench process)",
          "daemon-off": "array daemon, volume not mirrored",
          "daemon-on": "array daemon, mirrored, right after a sync (regions rewritten before)",
          "daemon-on-dirty": "array daemon, mirrored, regions already dirty",
          "daemon-on-cold": "array daemon, mirrored, right after a sync, regions written once (worst case)",
          "daemon-sync": "array daemon, mirrored, a sync running"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(uri: str, timeout: float = 10.0) -> None:
    """Wait until an NBD server answers a full handshake (a bare TCP probe makes qemu-nbd log a failure)."""
    deadline = time.monotonic() + timeout
    while subprocess.run(["nbdinfo", "--size", uri], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no NBD server answers at {uri}")
        time.sleep(0.05)


def make_file(path: Path, size: int, random: bool) -> None:
    with open(path, "wb") as f:
        if not random:
            f.truncate(size)
            return
        left = size
        while left:
            n = min(left, 16 * MiB)
            f.write(os.urandom(n))
            left -= n


def nbdcopy_mb_s(src: Path, uri: str, size: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["nbdcopy", "--request-size=1048576", str(src), uri], check=True)
    return size / (time.perf_counter() - t0) / 1e6


def fio_iops(uri: str, size: int, runtime: int) -> float:
    out = subprocess.run(
        ["fio", "--name=randwrite", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite",
         "--bs=4k", "--iodepth=16", f"--size={size}", f"--runtime={runtime}", "--randrepeat=0",
         "--time_based", "--output-format=json"],
        check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return float(job["write"]["iops"])


class SyncLoop:
    """Syncs a group back to back over REST on a thread until stopped (the ``daemon-sync`` case)."""

    def __init__(self, client, group: str):
        self.client, self.group = client, group
        self.syncs, self.bytes, self.busy = 0, 0, 0.0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sync-loop", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                stats = self.client.sync_now(self.group, wait=True)
            except MirrorError as e:
                self.errors.append(f"{e.code}: {e.message}")
                time.sleep(0.05)
                continue
            self.busy += time.perf_counter() - t0
            self.syncs += 1
            self.bytes += stats.unique_changed_bytes if stats else 0
            if stats and stats.outcome != "committed":
                self.errors.append(stats.outcome)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        # Measure only once the capture is taken (PIT copy-on-write armed).
        while self.client.group(self.group).progress is None and self.syncs == 0 and not self.errors:
            if time.monotonic() > deadline:
                raise RuntimeError("the background synchronization did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()  # let the synchronization in flight commit


def prepare_daemon_volumes(client, size: int) -> dict[str, str]:
    """An unmirrored volume and a mirrored primary on SiteA's daemon; their NBD URIs."""
    vol = size + HEADROOM
    client.create_volume("SiteA/bench_plain", vol)
    client.create_volume("SiteA/bench", vol)
    client.create_volume("SiteB/bench_dr", vol)
    client.create_group(GROUP, "SiteA", "SiteB", sync_mode="manual")
    client.add_pair(GROUP, "SiteA/bench", "SiteB/bench_dr", reserved_percent=100, secondary_reserved_percent=100)
    client.sync_now(GROUP, wait=True, after_running=True)  # the initial sync (sparse: quick)
    on = client.volume("SiteA/bench").nbd_uri
    return {"daemon-off": client.volume("SiteA/bench_plain").nbd_uri, "daemon-on": on, "daemon-on-dirty": on,
            "daemon-sync": on}


def cold_volume(client, size: int, src: Path, serial: int) -> str:
    """A fresh mirrored volume written once and synced: no region is in the activity log. Its NBD URI."""
    vol, group = f"cold{serial}", f"COLD{serial}"
    client.create_volume(f"SiteA/{vol}", size + HEADROOM)
    client.create_volume(f"SiteB/{vol}_dr", size + HEADROOM)
    client.create_group(group, "SiteA", "SiteB", sync_mode="manual")
    client.add_pair(group, f"SiteA/{vol}", f"SiteB/{vol}_dr", reserved_percent=100, secondary_reserved_percent=100)
    client.sync_now(group, wait=True, after_running=True)
    uri = client.volume(f"SiteA/{vol}").nbd_uri
    nbdcopy_mb_s(src, uri, size)
    client.sync_now(group, wait=True)
    return uri


def run(args, log: Log, cache: PageCache, workdir: Path) -> dict:
    size = args.size_mib * MiB
    src, ours_img, qemu_img = workdir / "src.img", workdir / "ours.img", workdir / "qemu.img"
    log(f"preparing {size // MiB} MiB files in {workdir} ...")
    make_file(src, size, random=True)
    make_file(ours_img, size, random=False)
    make_file(qemu_img, size, random=False)
    results: dict[str, dict[str, list[float]]] = {k: {"mb_s": [], "iops": []} for k in TARGETS}
    loops = {"syncs": 0, "changed_bytes": 0, "busy_fraction": [], "errors": []}
    qport = free_port()
    qemu = subprocess.Popen(["qemu-nbd", "-f", "raw", "-t", "-x", EXPORT, "--persistent",
                             "-p", str(qport), "-b", "127.0.0.1", str(qemu_img)])
    backend = FileBackend(EXPORT, str(ours_img))
    ours = NbdServerThread(DictProvider({EXPORT: backend}))
    try:
        ours.start()
        with DaemonLab("bench-nbd-", workdir=str(workdir)) as lab, lab.client("bench nbd") as client:
            uris = {"qemu-nbd": f"nbd://127.0.0.1:{qport}/{EXPORT}", "ours-file": ours.uri(EXPORT),
                    **prepare_daemon_volumes(client, size)}
            wait_listening(uris["qemu-nbd"])
            log(f"lab up in {lab.up_seconds:.1f} s; SiteA daemon pid {lab.pid('SiteA')}, NBD {uris['daemon-on']}")
            # Warm-up: every file's and volume's blocks allocated the same way before timing.
            for name in ("qemu-nbd", "ours-file", "daemon-off", "daemon-on"):
                nbdcopy_mb_s(src, uris[name], size)

            def timed(name: str, fn: Callable[[str], float]) -> float:
                cache.drop()
                return fn(uris[name])

            serial = iter(range(1, 1000))

            def slot(name: str, metric: str, fn: Callable[[str], float]) -> None:
                if name == "daemon-on-cold":
                    uris[name] = cold_volume(client, size, src, next(serial))
                    results[name][metric].append(timed(name, fn))
                    return
                if name == "daemon-on":
                    client.sync_now(GROUP, wait=True)  # regions clean: the first write of each pays the intent
                    results["daemon-on"][metric].append(timed("daemon-on", fn))
                    results["daemon-on-dirty"][metric].append(timed("daemon-on-dirty", fn))
                    return
                if name != "daemon-sync":
                    results[name][metric].append(timed(name, fn))
                    return
                cache.drop()
                loop = SyncLoop(client, GROUP)
                loop.start()
                t0 = time.perf_counter()
                try:
                    results[name][metric].append(fn(uris[name]))
                finally:
                    elapsed = time.perf_counter() - t0
                    loop.stop()
                    loops["syncs"] += loop.syncs
                    loops["changed_bytes"] += loop.bytes
                    loops["busy_fraction"].append(min(loop.busy, elapsed) / elapsed)
                    loops["errors"] += loop.errors

            tests = (("mb_s", "MB/s", lambda u: nbdcopy_mb_s(src, u, size)),
                     ("iops", "IOPS", lambda u: fio_iops(u, size, args.runtime)))
            for metric, unit, fn in tests:
                for i in range(args.rounds):
                    order = SLOTS if i % 2 == 0 else tuple(reversed(SLOTS))
                    for name in order:
                        slot(name, metric, fn)
                    log(f"  {'nbdcopy' if metric == 'mb_s' else 'fio':8s} round {i + 1}: " + ", ".join(
                        f"{k} {results[k][metric][-1]:,.0f}" for k in TARGETS) + f" {unit}")
    finally:
        ours.stop()
        qemu.terminate()
        qemu.wait(timeout=10)
        close = getattr(backend, "close", None)
        if close:
            close()
    return {"results": results, "sync_loop": loops}


def report(args, measured: dict, cache: PageCache, started: float, meta: dict) -> dict:
    res = measured["results"]
    med = {k: {m: spread(res[k][m])["median"] for m in ("mb_s", "iops")} for k in TARGETS}
    per_round = lambda k, m, ref: spread([a / b for a, b in zip(res[k][m], res[ref][m])])  # noqa: E731
    loops = measured["sync_loop"]
    overhead = lambda k: None if not med[k]["iops"] else 100 * (1 - med[k]["iops"] / med["daemon-off"]["iops"])  # noqa
    out = {
        "bench": "nbd_vs_qemu_nbd", "machine": meta, "page_cache": cache.describe(),
        "config": {"size_mib": args.size_mib, "fio_runtime_s": args.runtime, "rounds": args.rounds,
                   "shape": "array daemons (mirrorctl lab up), NBD to the daemons, syncs over REST"},
        "figures": {
            "seq_write_1MiB_mb_s": {k: spread(res[k]["mb_s"]) for k in TARGETS},
            "randwrite_4KiB_qd16_iops": {k: spread(res[k]["iops"]) for k in TARGETS},
            "vs_qemu_nbd_per_round": {
                "seq_write": {k: per_round(k, "mb_s", "qemu-nbd") for k in TARGETS[1:]},
                "randwrite": {k: per_round(k, "iops", "qemu-nbd") for k in TARGETS[1:]}},
            "mirroring_overhead_pct": {
                "randwrite_after_sync": overhead("daemon-on"), "randwrite_dirty": overhead("daemon-on-dirty"),
                "randwrite_cold_worst_case": overhead("daemon-on-cold"),
                "randwrite_sync_running": overhead("daemon-sync"),
                "seq_write_after_sync": None if not med["daemon-on"]["mb_s"] else
                100 * (1 - med["daemon-on"]["mb_s"] / med["daemon-off"]["mb_s"])},
            "sync_loop": {"syncs_committed": loops["syncs"], "changed_mib": loops["changed_bytes"] / MiB,
                          "sync_running_fraction": spread(loops["busy_fraction"]),
                          "errors": loops["errors"][:5]},
        },
        "targets": {
            "seq_write_1MiB_sync_running_vs_qemu_nbd": target(ratio(med["daemon-sync"]["mb_s"],
                                                                    med["qemu-nbd"]["mb_s"]), 0.9),
            "randwrite_4KiB_qd16_sync_running_vs_qemu_nbd": target(ratio(med["daemon-sync"]["iops"],
                                                                         med["qemu-nbd"]["iops"]), 1.0),
            "mirroring_on_vs_off_randwrite_iops_overhead_pct": target(overhead("daemon-on"), 10, at_least=False),
        },
    }
    return out


def print_tables(r: dict) -> None:
    f = r["figures"]
    seq, rnd = f["seq_write_1MiB_mb_s"], f["randwrite_4KiB_qd16_iops"]
    q_seq, q_rnd = seq["qemu-nbd"]["median"], rnd["qemu-nbd"]["median"]
    print(f"\nmedians of {r['config']['rounds']} rounds (range), {r['config']['size_mib']} MiB export, "
          f"fio {r['config']['fio_runtime_s']} s per run:\n")
    print("| target | nbdcopy 1 MiB seq write MB/s | vs qemu-nbd | fio 4 KiB randwrite QD16 IOPS | vs qemu-nbd |")
    print("|---|---:|---:|---:|---:|")
    for k in TARGETS:
        s, i = seq[k], rnd[k]
        print(f"| {LABELS[k]} | {s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f}) | {s['median'] / q_seq:.2f} "
              f"| {i['median']:,.0f} ({i['min']:,.0f}-{i['max']:,.0f}) | {i['median'] / q_rnd:.2f} |")
    o, loop = f["mirroring_overhead_pct"], f["sync_loop"]
    print(f"\nmirroring on vs off, share of the 4 KiB random IOPS lost (negative: gained): after a sync "
          f"{o['randwrite_after_sync']:.1f} %, regions dirty {o['randwrite_dirty']:.1f} %, regions written once "
          f"(worst case) {o['randwrite_cold_worst_case']:.1f} %, a sync running "
          f"{o['randwrite_sync_running']:.1f} %")
    print(f"daemon-sync: {loop['syncs_committed']} syncs committed ({loop['changed_mib']:.0f} MiB of changes), a sync "
          f"running {100 * (loop['sync_running_fraction']['median'] or 0):.0f} % of the measured time"
          + (f"; errors: {loop['errors']}" if loop["errors"] else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="export size (default 1024)")
    ap.add_argument("--runtime", type=int, default=5, help="fio seconds per run (default 5)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of every target, medians reported (default 3)")
    add_run_options(ap, "the image files and the lab")
    args = ap.parse_args(argv)
    missing = [b for b in ("qemu-nbd", "nbdcopy", "nbdinfo", "fio") if shutil.which(b) is None]
    if missing:
        print(f"missing tools: {', '.join(missing)}", file=sys.stderr)
        return 2
    started, meta = time.monotonic(), machine()
    log, cache = Log(args.json), PageCache(not args.keep_page_cache)
    with tempfile.TemporaryDirectory(prefix="nbd-bench-", dir=args.workdir) as tmp:
        measured = run(args, log, cache, Path(tmp))
    r = report(args, measured, cache, started, meta)
    if not args.json:
        print_tables(r)
    finish(r, args.json, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
