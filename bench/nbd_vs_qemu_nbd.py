#!/usr/bin/env python3
"""Host writes over NBD: our asyncio server and the engine's volumes against qemu-nbd.

SPEC section 5 quality bar: serving a raw file on the same machine, our server must
reach >= 0.9x qemu-nbd's throughput for 1 MiB sequential writes (nbdcopy) and
>= 1.0x its IOPS for 4 KiB random writes at queue depth 16 (fio's nbd engine);
mirroring on adds at most 10 % over mirroring off.

Five targets are measured side by side in one run, each on its own copy of the data:
  qemu-nbd       qemu-nbd -f raw serving a raw file (the reference);
  ours-file      our NbdServer serving the same kind of raw file (FileBackend);
  engine-off     a lab volume served by the engine (BlockingEngine(home, nbd_port=0)),
                 not mirrored: the HostVolume write path without change tracking;
  engine-on      a primary volume of a pair in a manual mirror group: every write
                 marks the change log;
  engine-sync    the same volume while synchronizations run back to back for the
                 whole measurement (started just before it, with the previous runs'
                 writes dirty), so PIT copy-on-write is active.
Tests: (1) nbdcopy --request-size=1M of a random file into each export;
(2) fio --ioengine=nbd --rw=randwrite --bs=4k --iodepth=16 --time_based.
The order of the targets alternates between runs, the best of ``--repeat`` runs is
kept (medians are printed too), so page-cache warm-up does not favour any side.

Usage: .venv/bin/python bench/nbd_vs_qemu_nbd.py [--size-mib 1024] [--runtime 5] [--repeat 2]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.errors import MirrorError  # noqa: E402
from core.lab import init_lab  # noqa: E402
from core.nbd import DictProvider, FileBackend, NbdServerThread  # noqa: E402
from core.nbd.backend import ExportBackend  # noqa: E402
from core.runtime import BlockingEngine  # noqa: E402

EXPORT = "bench"
GROUP = "BENCH"
MiB = 1024 * 1024
# The engine's volumes are larger than the measured range: a sync of all of it must
# fit the reserved capacity (at most 100 % of the volume) with its journal headers.
ENGINE_HEADROOM = 256 * MiB
TARGETS = ("qemu-nbd", "ours-file", "engine-off", "engine-on", "engine-sync")


def make_backend(path: str) -> ExportBackend:
    """The backend the plain server exports (``ours-file``)."""
    return FileBackend(EXPORT, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(uri: str, timeout: float = 10.0) -> None:
    """Wait until an NBD server answers a full handshake (a bare TCP probe makes
    qemu-nbd log a failed negotiation)."""
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
         "--bs=4k", "--iodepth=16", f"--size={size}", f"--runtime={runtime}",
         "--time_based", "--output-format=json"],
        check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return float(job["write"]["iops"])


class SyncLoop:
    """Synchronizes a group back to back on a thread until stopped (the ``engine-sync`` case)."""

    def __init__(self, client: BlockingEngine, group: str):
        self.client = client
        self.group = group
        self.syncs = 0
        self.bytes = 0
        self.busy = 0.0
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
        deadline = time.monotonic() + 10
        # Measure only once the capture is taken (PIT copy-on-write armed).
        while self.client.group(self.group).progress is None and self.syncs == 0 and not self.errors:
            if time.monotonic() > deadline:
                raise RuntimeError("the background synchronization did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()  # let the synchronization in flight commit


@contextlib.contextmanager
def engine_targets(home: Path, size: int) -> Iterator[tuple[BlockingEngine, dict[str, str]]]:
    """The engine with an unmirrored volume and a mirrored primary, served over NBD."""
    init_lab(home)
    vol = size + ENGINE_HEADROOM
    with BlockingEngine(home, purpose="bench nbd", nbd_port=0) as client:
        client.create_volume("SiteA/bench_plain", vol)
        client.create_volume("SiteA/bench", vol)
        client.create_volume("SiteB/bench_dr", vol)
        client.create_group(GROUP, "SiteA", "SiteB", sync_mode="manual")
        client.add_pair(GROUP, "SiteA/bench", "SiteB/bench_dr", reserved_percent=100,
                        secondary_reserved_percent=100)
        client.sync_now(GROUP, wait=True, after_running=True)  # the initial sync (sparse: quick)
        on = client.volume("SiteA/bench").nbd_uri
        yield client, {"engine-off": client.volume("SiteA/bench_plain").nbd_uri, "engine-on": on,
                       "engine-sync": on}


def run_benchmark(size: int, runtime: int, repeat: int, workdir: Path,
                  backend_factory: Callable[[str], ExportBackend] = make_backend) -> dict:
    src, ours_img, qemu_img = workdir / "src.img", workdir / "ours.img", workdir / "qemu.img"
    print(f"preparing {size // MiB} MiB files in {workdir} ...", flush=True)
    make_file(src, size, random=True)
    make_file(ours_img, size, random=False)
    make_file(qemu_img, size, random=False)

    backend = backend_factory(str(ours_img))
    qport = free_port()
    qemu = subprocess.Popen(["qemu-nbd", "-f", "raw", "-t", "-x", EXPORT, "--persistent",
                             "-p", str(qport), "-b", "127.0.0.1", str(qemu_img)])
    ours = NbdServerThread(DictProvider({EXPORT: backend}))
    results: dict[str, dict] = {k: {"mb_s": [], "iops": [], "syncs": 0, "sync_bytes": 0, "sync_busy": 0.0,
                                    "sync_errors": []} for k in TARGETS}
    try:
        ours.start()
        with engine_targets(workdir / "lab", size) as (client, engine_uris):
            uris = {"qemu-nbd": f"nbd://127.0.0.1:{qport}/{EXPORT}", "ours-file": ours.uri(EXPORT),
                    **engine_uris}
            wait_listening(uris["qemu-nbd"])

            def measure(name: str, run: Callable[[], float]) -> float:
                os.sync()  # the previous run's dirty pages must not be written back during this one
                if name != "engine-sync":
                    return run()
                loop = SyncLoop(client, GROUP)
                loop.start()
                t0 = time.perf_counter()
                try:
                    return run()
                finally:
                    elapsed = time.perf_counter() - t0
                    loop.stop()
                    r = results[name]
                    r["syncs"] += loop.syncs
                    r["sync_bytes"] += loop.bytes
                    r["sync_busy"] += min(loop.busy, elapsed) / elapsed / (repeat * 2)
                    r["sync_errors"] += loop.errors

            # Warm-up: allocate every file's blocks and page cache the same way.
            for name in ("qemu-nbd", "ours-file", "engine-off", "engine-on"):
                nbdcopy_mb_s(src, uris[name], size)
            for metric, unit, run in (
                    ("mb_s", "MB/s", lambda u: nbdcopy_mb_s(src, u, size)),
                    ("iops", "IOPS", lambda u: fio_iops(u, size, runtime))):
                for i in range(repeat):
                    order = TARGETS if i % 2 == 0 else tuple(reversed(TARGETS))
                    for name in order:
                        value = measure(name, lambda: run(uris[name]))
                        results[name][metric].append(value)
                        print(f"  {'nbdcopy' if metric == 'mb_s' else 'fio':8s} {name:12s} run {i + 1}: "
                              f"{value:9.1f} {unit}", flush=True)
        return results
    finally:
        ours.stop()
        qemu.terminate()
        qemu.wait(timeout=10)
        close = getattr(backend, "close", None)
        if close:
            close()


def report(results: dict, size: int, runtime: int) -> None:
    best = {k: {m: max(results[k][m]) for m in ("mb_s", "iops")} for k in TARGETS}
    med = {k: {m: statistics.median(results[k][m]) for m in ("mb_s", "iops")} for k in TARGETS}
    q = best["qemu-nbd"]
    runs = len(results["qemu-nbd"]["iops"])
    s = results["engine-sync"]
    print(f"\nmedians: " + "; ".join(f"{k} {med[k]['mb_s']:.0f} MB/s, {med[k]['iops']:.0f} IOPS" for k in TARGETS))
    print(f"engine-sync: {s['syncs']} synchronizations committed during its runs "
          f"({s['sync_bytes'] / MiB:.0f} MiB of changes), a sync running {100 * s['sync_busy']:.0f} % of the "
          f"measured time" + (f"; errors: {s['sync_errors'][:3]}" if s["sync_errors"] else ""))

    def ok(good: bool) -> str:
        return "ok" if good else "**MISSED**"

    print(f"\nBest of {runs} runs each, {size // MiB} MiB export, fio {runtime} s per run, "
          f"{os.cpu_count()} CPUs, loopback:\n")
    print("| Target | nbdcopy 1 MiB seq write | vs qemu-nbd (>= 0.90) | fio 4 KiB randwrite QD16 "
          "| vs qemu-nbd (>= 1.00) |")
    print("|---|---:|---:|---:|---:|")
    labels = {"qemu-nbd": "qemu-nbd (raw file)", "ours-file": "ours, FileBackend (raw file)",
              "engine-off": "engine volume, mirroring off", "engine-on": "engine volume, mirroring on",
              "engine-sync": "engine volume, mirroring on + sync running"}
    for k in TARGETS:
        seq, rnd = best[k]["mb_s"] / q["mb_s"], best[k]["iops"] / q["iops"]
        ref = k == "qemu-nbd"
        print(f"| {labels[k]} | {best[k]['mb_s']:.0f} MB/s | {'1.00' if ref else f'{seq:.2f} {ok(seq >= 0.9)}'} "
              f"| {best[k]['iops']:,.0f} IOPS | {'1.00' if ref else f'{rnd:.2f} {ok(rnd >= 1.0)}'} |")
    print("\n| Mirroring overhead vs mirroring off (<= 10 %) | 1 MiB seq | 4 KiB random |")
    print("|---|---:|---:|")
    off = best["engine-off"]
    for k in ("engine-on", "engine-sync"):
        adds = {m: 100 * (off[m] / best[k][m] - 1) for m in ("mb_s", "iops")}
        print(f"| {labels[k]} | {adds['mb_s']:+.1f} % {ok(adds['mb_s'] <= 10)} "
              f"| {adds['iops']:+.1f} % {ok(adds['iops'] <= 10)} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="export size (default 1024)")
    ap.add_argument("--runtime", type=int, default=5, help="fio seconds per run (default 5)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per target, best kept (default 2)")
    ap.add_argument("--workdir", help="directory for the image files (default: a temp dir)")
    args = ap.parse_args(argv)
    missing = [b for b in ("qemu-nbd", "nbdcopy", "nbdinfo", "fio") if shutil.which(b) is None]
    if missing:
        print(f"missing tools: {', '.join(missing)}", file=sys.stderr)
        return 2
    size = args.size_mib * MiB
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nbd-bench-", dir=args.workdir) as tmp:
        results = run_benchmark(size, args.runtime, args.repeat, Path(tmp))
    report(results, size, args.runtime)
    print(f"\n(total {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
