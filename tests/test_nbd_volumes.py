"""Real NBD clients against the lab's volumes: bytes written by a host reach the secondary."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from core.runtime import BlockingEngine

pytestmark = pytest.mark.slow


@pytest.fixture
def served(lab_home):
    with BlockingEngine(lab_home, purpose="pytest nbd", nbd_port=0) as c:
        c.create_group("G", "SiteA", "SiteB", sync_mode="manual")
        c.add_pair("G", "SiteA/logs", "SiteB/logs_dr")
        c.sync_now("G", wait=True, after_running=True)
        yield c


@pytest.mark.skipif(shutil.which("nbdcopy") is None, reason="nbdcopy (libnbd-bin) not installed")
def test_image_copied_to_primary_export_reaches_the_secondary(served, tmp_path):
    image = tmp_path / "disk.raw"
    image.write_bytes(os.urandom(3 << 20) + bytes(1 << 20) + os.urandom(123457))
    uri = served.volume("SiteA/logs").nbd_uri
    assert uri and uri.endswith("/logs")
    r = subprocess.run(["nbdcopy", str(image), uri], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    stats = served.sync_now("G", wait=True)
    assert stats.unique_changed_bytes <= 5 << 20  # only what the host wrote, not the 2 GiB volume
    data = image.read_bytes()
    with open(served.volume("SiteB/logs_dr").path, "rb") as f:
        assert f.read(len(data)) == data
    assert served.verify("G")["identical"]


@pytest.mark.skipif(shutil.which("qemu-io") is None, reason="qemu-io (qemu-utils) not installed")
def test_odd_offsets_and_read_only_secondary(served):
    uri = served.volume("SiteA/logs").nbd_uri
    r = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0xab 4097 12345", uri],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert served.host_read("SiteA/logs", 4097, 12345) == b"\xab" * 12345
    served.sync_now("G", wait=True)
    assert served.host_read("SiteB/logs_dr", 4097, 12345) == b"\xab" * 12345
    r = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0xcd 0 4096", served.volume("SiteB/logs_dr").nbd_uri],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0  # the secondary export is read-only to hosts
    assert served.host_read("SiteB/logs_dr", 0, 4096) != b"\xcd" * 4096
