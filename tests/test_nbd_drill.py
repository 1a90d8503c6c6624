"""DR drills over NBD: a writable copy of the secondary's recovery point, mirroring undisturbed."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from test_nbd_volumes import EPERM, RawNbd  # the raw client lives with the volume tests

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-io") is None or shutil.which("nbdinfo") is None,
                       reason="qemu-io (qemu-utils) and nbdinfo (libnbd-bin) needed"),
]

MiB = 1 << 20
DRILL = "SiteB/logs_dr-drill"


@pytest.fixture
def served(client):
    """Group G: SiteA/logs -> SiteB/logs_dr, initial sync done; the drill runs on SiteB's daemon."""
    client.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    client.add_pair("G", "SiteA/logs", "SiteB/logs_dr")
    client.sync_now("G", wait=True, after_running=True)
    return client


def qemu_io(uri: str, *commands: str) -> str:
    """Run qemu-io commands against an export; fail on any failed command or pattern mismatch."""
    args = ["qemu-io", "-f", "raw"]
    for c in commands:
        args += ["-c", c]
    r = subprocess.run(args + [uri], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "failed" not in out.lower() and "error" not in out.lower(), out
    return out


def exports(client, array: str = "SiteB") -> list[str]:
    uri = client.volume(f"{array}/logs_dr" if array == "SiteB" else f"{array}/logs").nbd_uri
    base = uri.rsplit("/", 1)[0]
    r = subprocess.run(["nbdinfo", "--list", "--json", base], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    import json

    return [e["export-name"] for e in json.loads(r.stdout)["exports"]]


def test_drill_shows_its_recovery_point_and_its_own_writes_while_syncs_go_on(served, lab_home):
    # Recovery point 1: 0x11 over [0, 2 MiB), 0x12 over [8 MiB, 9 MiB).
    served.host_write("SiteA/logs", 0, b"\x11" * (2 * MiB))
    served.host_write("SiteA/logs", 8 * MiB, b"\x12" * MiB)
    served.sync_now("G", wait=True)

    drill = served.drill_start("G")
    uri = drill["exports"][DRILL]
    assert uri and uri.endswith("/logs_dr-drill")
    assert "logs_dr-drill" in exports(served)
    assert len(list(lab_home.rglob("drill.overlay"))) == 1
    qemu_io(uri, "read -P 0x11 0 2M", "read -P 0x12 8M 1M", "read -P 0 9M 1M")

    # The drill writes inside regions the next recovery point will also change
    # (4 KiB at 1 MiB + 4 KiB) and in a region it leaves alone (at 20 MiB).
    qemu_io(uri, "write -P 0x77 1052672 4096", "write -P 0x78 20M 64K", "flush")

    # Recovery point 2 on the secondary while the drill runs: a multi-region write, a
    # write next to the drill's own bytes, zeroes over the second region range.
    served.host_write("SiteA/logs", 0, b"\x21" * (2 * MiB))
    served.host_write("SiteA/logs", 20 * MiB + 65536, b"\x22" * 65536)
    served.host_trim("SiteA/logs", 8 * MiB, MiB)
    stats = served.sync_now("G", wait=True)
    assert stats.outcome == "committed"

    # The secondary holds recovery point 2 ...
    assert served.host_read("SiteB/logs_dr", 0, 2 * MiB) == b"\x21" * (2 * MiB)
    assert served.host_read("SiteB/logs_dr", 8 * MiB, MiB) == bytes(MiB)
    assert served.host_read("SiteB/logs_dr", 20 * MiB, 65536) == bytes(65536)
    assert served.host_read("SiteB/logs_dr", 20 * MiB + 65536, 65536) == b"\x22" * 65536
    # ... the drill still recovery point 1 plus its own writes.
    qemu_io(uri, "read -P 0x11 0 1052672", "read -P 0x77 1052672 4096",
            "read -P 0x11 1056768 1040384", "read -P 0x12 8M 1M",
            "read -P 0x78 20M 64K", "read -P 0 20544K 64K")
    assert served.verify("G")["identical"]  # the drill did not disturb mirroring

    # Stopping the drill discards it: gone from the list, no connection, no overlay.
    served.drill_stop("G")
    assert "logs_dr-drill" not in exports(served)
    assert subprocess.run(["nbdinfo", uri], capture_output=True, timeout=30).returncode != 0
    assert list(lab_home.rglob("drill.overlay")) == []
    assert served.host_read("SiteB/logs_dr", 0, 2 * MiB) == b"\x21" * (2 * MiB)


def test_drill_export_is_writable_while_the_secondary_stays_read_only(served):
    served.host_write("SiteA/logs", 0, b"\x31" * 65536)
    served.sync_now("G", wait=True)
    drill = served.drill_start("G")
    try:
        with RawNbd(drill["exports"][DRILL]) as d, RawNbd(served.volume("SiteB/logs_dr").nbd_uri) as s:
            assert d.write(0, b"\x99" * 4096) == 0
            assert s.write(0, b"\x99" * 4096) == EPERM
            assert d.read(0, 8192) == b"\x99" * 4096 + b"\x31" * 4096
            assert s.read(0, 8192) == b"\x31" * 8192
    finally:
        served.drill_stop("G")
    # A second drill starts from the recovery point again, without the first one's writes.
    drill = served.drill_start("G")
    try:
        qemu_io(drill["exports"][DRILL], "read -P 0x31 0 64K")
    finally:
        served.drill_stop("G")


def test_a_client_still_connected_when_the_drill_stops_cannot_touch_other_volumes(served):
    served.host_write("SiteA/logs", 0, b"\x41" * 65536)
    served.sync_now("G", wait=True)
    drill = served.drill_start("G")
    with RawNbd(drill["exports"][DRILL]) as d:
        assert d.write(0, b"\x42" * 4096) == 0  # the clone now holds region 0 in its overlay
        served.drill_stop("G")
        # Volumes created next may be opened under the stopped clone's descriptors.
        for name, fill in (("scratch1", b"\x51"), ("scratch2", b"\x52")):
            served.create_volume(f"SiteB/{name}", "64MiB")
            served.host_write(f"SiteB/{name}", 0, fill * (2 * 65536))
        try:
            write_err = d.write(0, b"\x43" * 65536)
            read_err, data = d.request(0, 65536, 16)  # region 1: never copied into the overlay
        except ConnectionError:
            write_err, read_err, data = None, None, b""  # closing the connection is a fine answer
        assert served.host_read("SiteB/scratch1", 0, 2 * 65536) == b"\x51" * (2 * 65536)
        assert served.host_read("SiteB/scratch2", 0, 2 * 65536) == b"\x52" * (2 * 65536)
        assert write_err != 0, "a write to a stopped drill was acknowledged"
        assert read_err != 0 and data not in (b"\x51" * 16, b"\x52" * 16), "a stopped drill served another volume"
