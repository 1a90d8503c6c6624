#!/usr/bin/env python3
"""Host writes over NBD: our asyncio server against qemu-nbd, side by side.

SPEC section 5 quality bar: serving a raw file on the same machine, our server must
reach >= 0.9x qemu-nbd's throughput for 1 MiB sequential writes (nbdcopy) and
>= 1.0x its IOPS for 4 KiB random writes at queue depth 16 (fio's nbd engine).

Both servers serve their own copy of a raw file in the same run:
  (1) nbdcopy --request-size=1M of a random file into each export;
  (2) fio --ioengine=nbd --rw=randwrite --bs=4k --iodepth=16 --time_based.
Runs alternate between the servers and the best of ``--repeat`` runs is kept, so
page-cache warm-up does not favour either side.

To measure another backend (e.g. an engine volume with mirroring on), replace
``make_backend`` or pass ``backend_factory`` to :func:`run_benchmark`.

Usage: .venv/bin/python bench/nbd_vs_qemu_nbd.py [--size-mib 1024] [--runtime 10]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.nbd import DictProvider, FileBackend, NbdServerThread  # noqa: E402
from core.nbd.backend import ExportBackend  # noqa: E402

EXPORT = "bench"
MiB = 1024 * 1024


def make_backend(path: str) -> ExportBackend:
    """The backend our server exports for the benchmark (swap to compare engines)."""
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
    os.sync()  # the previous run's dirty pages must not be written back during this one
    t0 = time.perf_counter()
    subprocess.run(["nbdcopy", "--request-size=1048576", str(src), uri], check=True)
    return size / (time.perf_counter() - t0) / 1e6


def fio_iops(uri: str, size: int, runtime: int) -> float:
    os.sync()
    out = subprocess.run(
        ["fio", "--name=randwrite", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite",
         "--bs=4k", "--iodepth=16", f"--size={size}", f"--runtime={runtime}",
         "--time_based", "--output-format=json"],
        check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return float(job["write"]["iops"])


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
    try:
        ours.start()
        uris = {"ours": ours.uri(EXPORT), "qemu-nbd": f"nbd://127.0.0.1:{qport}/{EXPORT}"}
        wait_listening(uris["qemu-nbd"])
        results: dict[str, dict[str, list[float]]] = {k: {"mb_s": [], "iops": []} for k in uris}
        # Warm-up: allocate both files' page cache the same way before measuring.
        for name, uri in uris.items():
            nbdcopy_mb_s(src, uri, size)
        for i in range(repeat):
            order = list(uris) if i % 2 == 0 else list(reversed(uris))
            for name in order:
                results[name]["mb_s"].append(nbdcopy_mb_s(src, uris[name], size))
                print(f"  nbdcopy  {name:9s} run {i + 1}: {results[name]['mb_s'][-1]:8.1f} MB/s",
                      flush=True)
        for i in range(repeat):
            order = list(uris) if i % 2 == 0 else list(reversed(uris))
            for name in order:
                results[name]["iops"].append(fio_iops(uris[name], size, runtime))
                print(f"  fio      {name:9s} run {i + 1}: {results[name]['iops'][-1]:8.0f} IOPS",
                      flush=True)
        return results
    finally:
        ours.stop()
        qemu.terminate()
        qemu.wait(timeout=10)
        close = getattr(backend, "close", None)
        if close:
            close()


def report(results: dict) -> None:
    best = {k: {m: max(v) for m, v in r.items()} for k, r in results.items()}
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
    seq = best["ours"]["mb_s"] / best["qemu-nbd"]["mb_s"]
    rnd = best["ours"]["iops"] / best["qemu-nbd"]["iops"]
    print(f"\nmedians: nbdcopy ours {med['ours']['mb_s']:.1f} MB/s, qemu-nbd "
          f"{med['qemu-nbd']['mb_s']:.1f} MB/s (ratio "
          f"{med['ours']['mb_s'] / med['qemu-nbd']['mb_s']:.2f}); fio ours "
          f"{med['ours']['iops']:.0f} IOPS, qemu-nbd {med['qemu-nbd']['iops']:.0f} IOPS (ratio "
          f"{med['ours']['iops'] / med['qemu-nbd']['iops']:.2f})")
    print(f"best of {len(results['ours']['iops'])} runs each, on {os.cpu_count()} CPUs:")
    print(f"{'':28s}{'ours':>12s}{'qemu-nbd':>12s}{'ratio':>8s}{'target':>9s}")
    print(f"{'nbdcopy 1 MiB seq write':28s}{best['ours']['mb_s']:>9.1f}MB/s"
          f"{best['qemu-nbd']['mb_s']:>8.1f}MB/s{seq:>8.2f}{'>=0.90':>9s}"
          f"  {'ok' if seq >= 0.9 else 'MISSED'}")
    print(f"{'fio 4 KiB randwrite QD16':28s}{best['ours']['iops']:>8.0f}IOPS"
          f"{best['qemu-nbd']['iops']:>8.0f}IOPS{rnd:>8.2f}{'>=1.00':>9s}"
          f"  {'ok' if rnd >= 1.0 else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="export size (default 1024)")
    ap.add_argument("--runtime", type=int, default=10, help="fio seconds per run (default 10)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per server, best kept")
    ap.add_argument("--workdir", help="directory for the image files (default: a temp dir)")
    args = ap.parse_args(argv)
    missing = [b for b in ("qemu-nbd", "nbdcopy", "nbdinfo", "fio") if shutil.which(b) is None]
    if missing:
        print(f"missing tools: {', '.join(missing)}", file=sys.stderr)
        return 2
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="nbd-bench-", dir=args.workdir) as tmp:
        results = run_benchmark(size, args.runtime, args.repeat, Path(tmp))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
