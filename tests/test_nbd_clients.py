"""Real NBD clients (qemu-img, qemu-io, nbdcopy, nbdinfo, fio) against our server."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading

import pytest

from core.nbd import DictProvider, FileBackend, NbdServerThread

pytestmark = pytest.mark.slow

SIZE = 16 * 1024 * 1024


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed")
    return path


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=check)


@pytest.fixture(autouse=True)
def no_server_thread_left():
    """A server thread outliving its test would serve stale exports to later tests."""
    yield
    left = [t.name for t in threading.enumerate() if t.name == "nbd-server"]
    assert not left, f"NBD server threads still running: {left}"


@pytest.fixture
def served(tmp_path):
    """Two empty exports, "disk" (writable) and "ro", served in a background thread."""
    backends = {}
    for name, ro in (("disk", False), ("ro", True)):
        path = tmp_path / f"{name}.img"
        with open(path, "wb") as f:
            f.truncate(SIZE)
        backends[name] = FileBackend(name, path, read_only=ro)
    with NbdServerThread(DictProvider(backends)) as st:
        yield st, backends
    for b in backends.values():
        b.close()


@pytest.fixture
def random_image(tmp_path):
    path = tmp_path / "source.img"
    data = bytearray(os.urandom(SIZE))
    data[SIZE // 2:SIZE // 2 + 1024 * 1024] = bytes(1024 * 1024)  # a zero run to detect
    path.write_bytes(data)
    return path, bytes(data)


def test_qemu_img_convert_into_export(served, random_image):
    qemu_img = need("qemu-img")
    st, backends = served
    src, data = random_image
    run(qemu_img, "convert", "-n", "-f", "raw", "-O", "raw", str(src), st.uri("disk"))
    with open(backends["disk"].path, "rb") as f:
        assert f.read() == data


def test_nbdcopy_into_and_out_of_export(served, random_image, tmp_path):
    nbdcopy = need("nbdcopy")
    st, backends = served
    src, data = random_image
    run(nbdcopy, "--request-size=1048576", str(src), st.uri("disk"))
    with open(backends["disk"].path, "rb") as f:
        assert f.read() == data
    out = tmp_path / "copy.img"
    out.write_bytes(b"")
    run(nbdcopy, st.uri("disk"), str(out))
    assert out.read_bytes() == data


def test_qemu_io_odd_offsets(served):
    qemu_io = need("qemu-io")
    st, backends = served
    uri = st.uri("disk")
    run(qemu_io, "-f", "raw", uri,
        "-c", "write -P 0xab 4097 12345",
        "-c", "write -P 0xcd 1000001 3",
        "-c", "write -z 4200 100",
        "-c", f"write -P 0x11 {SIZE - 7} 7")
    result = run(qemu_io, "-f", "raw", uri,
                 "-c", "read -P 0xab 4097 103",
                 "-c", "read -P 0 4200 100",
                 "-c", "read -P 0xab 4300 12142",
                 "-c", "read -P 0xcd 1000001 3",
                 "-c", f"read -P 0x11 {SIZE - 7} 7")
    assert "Pattern verification failed" not in result.stdout + result.stderr
    with open(backends["disk"].path, "rb") as f:
        img = f.read()
    assert img[4097:4200] == b"\xab" * 103
    assert img[4200:4300] == bytes(100)
    assert img[4300:4097 + 12345] == b"\xab" * (4097 + 12345 - 4300)
    assert img[4096] == 0 and img[4097 + 12345] == 0
    assert img[1000001:1000004] == b"\xcd" * 3
    assert img[-7:] == b"\x11" * 7


def test_nbdinfo_lists_exports(served):
    nbdinfo = need("nbdinfo")
    st, _ = served
    out = run(nbdinfo, "--list", "--json", f"nbd://127.0.0.1:{st.port}").stdout
    exports = {e["export-name"]: e for e in json.loads(out)["exports"]}
    assert set(exports) == {"disk", "ro"}
    assert exports["disk"]["export-size"] == SIZE
    assert exports["disk"]["is_read_only"] is False
    assert exports["ro"]["is_read_only"] is True
    assert exports["disk"]["can_multi_conn"] is True


def test_write_to_read_only_export_fails(served, random_image):
    qemu_io = need("qemu-io")
    st, backends = served
    result = run(qemu_io, "-f", "raw", st.uri("ro"), "-c", "write -P 0xab 0 4096", check=False)
    assert result.returncode != 0 or "error" in (result.stdout + result.stderr).lower()
    with open(backends["ro"].path, "rb") as f:
        assert f.read(4096) == bytes(4096)
    if shutil.which("nbdcopy"):
        src, _ = random_image
        assert run("nbdcopy", str(src), st.uri("ro"), check=False).returncode != 0
        with open(backends["ro"].path, "rb") as f:
            assert f.read() == bytes(SIZE)


def test_fio_nbd_engine_random_writes_verify(served):
    fio = need("fio")
    st, _ = served
    if "nbd" not in run(fio, "--enghelp", check=False).stdout:
        pytest.skip("fio lacks the nbd engine")
    result = run(fio, "--name=verify", "--ioengine=nbd", f"--uri={st.uri('disk')}",
                 "--rw=randwrite", "--bs=4k", "--iodepth=16", f"--size={SIZE}",
                 "--verify=crc32c", "--do_verify=1", "--output-format=json")
    job = json.loads(result.stdout[result.stdout.index("{"):])["jobs"][0]
    assert job["error"] == 0
    assert job["write"]["total_ios"] == SIZE // 4096
