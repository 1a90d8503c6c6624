"""Real NBD clients against the lab's volumes: bytes written by a host reach the secondary.

Each array daemon serves its own volumes over NBD (tests/daemon_lab.py); the hosts here
connect to the export URIs the arrays' REST APIs list.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import subprocess
from urllib.parse import unquote

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def served(client):
    """Group G: SiteA/logs (2 GiB) -> SiteB/logs_dr, initial sync done; each array serves its volumes over NBD."""
    client.create_group("G", "SiteA", "SiteB", sync_mode="manual")
    client.add_pair("G", "SiteA/logs", "SiteB/logs_dr")
    client.sync_now("G", wait=True, after_running=True)
    return client


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


# -- a raw NBD client: what a misbehaving or long-lived host sends, byte by byte ---------

NBDMAGIC, IHAVEOPT, OPT_REPLY_MAGIC = 0x4E42444D41474943, 0x49484156454F5054, 0x0003E889045565A9
REQUEST_MAGIC, SIMPLE_REPLY_MAGIC = 0x25609513, 0x67446698
OPT_GO, REP_ACK, REP_INFO = 7, 1, 3
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_WRITE_ZEROES = 0, 1, 2, 3, 4, 6
FLAG_FUA, FLAG_NO_HOLE = 1, 2
TFLAG_READ_ONLY = 1 << 1
EPERM, EINVAL, ENOSPC = 1, 22, 28


class RawNbd:
    """Fixed newstyle handshake, NBD_OPT_GO, simple replies; one request at a time.

    Deliberately independent of core.nbd, so it checks the wire format the server
    speaks rather than re-using the server's own constants.
    """

    def __init__(self, uri: str, timeout: float = 10.0):
        hostport, _, name = uri[len("nbd://"):].partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.cookie = 0
        magic, opt, _flags = struct.unpack(">QQH", self._recv(18))
        assert (magic, opt) == (NBDMAGIC, IHAVEOPT)
        self.sock.sendall(struct.pack(">I", 1 | 2))  # FIXED_NEWSTYLE | NO_ZEROES
        raw = unquote(name).encode()
        data = struct.pack(">I", len(raw)) + raw + struct.pack(">H", 0)
        self.sock.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, len(data)) + data)
        self.size = self.flags = None
        while True:
            rmagic, ropt, rep, length = struct.unpack(">QIII", self._recv(20))
            assert rmagic == OPT_REPLY_MAGIC and ropt == OPT_GO
            body = self._recv(length) if length else b""
            if rep == REP_ACK:
                break
            if rep != REP_INFO:
                raise ConnectionRefusedError(f"NBD_OPT_GO refused ({rep:#x}): {body!r}")
            if struct.unpack_from(">H", body)[0] == 0:  # NBD_INFO_EXPORT
                _, self.size, self.flags = struct.unpack(">HQH", body)

    def _recv(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError(f"server closed the connection ({len(out)} of {n} bytes read)")
            out += chunk
        return bytes(out)

    def request(self, cmd: int, offset: int = 0, length: int = 0, data: bytes = b"", flags: int = 0,
                magic: int = REQUEST_MAGIC) -> tuple[int, bytes]:
        """Send one request; returns (error, read payload)."""
        self.cookie += 1
        self.sock.sendall(struct.pack(">IHHQQI", magic, flags, cmd, self.cookie, offset, length) + data)
        rmagic, err, cookie = struct.unpack(">IIQ", self._recv(16))
        assert (rmagic, cookie) == (SIMPLE_REPLY_MAGIC, self.cookie)
        payload = self._recv(length) if cmd == CMD_READ and err == 0 else b""
        return err, payload

    def read(self, offset: int, length: int) -> bytes:
        err, data = self.request(CMD_READ, offset, length)
        assert err == 0, f"read failed with NBD error {err}"
        return data

    def write(self, offset: int, data: bytes, flags: int = 0) -> int:
        return self.request(CMD_WRITE, offset, len(data), data, flags)[0]

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        try:
            self.sock.sendall(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_DISC, 0, 0, 0))
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "RawNbd":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def digest(client, ref: str, offset: int, length: int) -> str:
    return hashlib.sha256(client.host_read(ref, offset, length)).hexdigest()


def test_malformed_requests_cost_one_connection_and_leave_the_volume_alone(served):
    size = 2 << 30
    served.host_write("SiteA/logs", size - 65536, b"\x5a" * 65536)
    served.host_write("SiteA/logs", 0, b"\x5b" * 65536)
    served.sync_now("G", wait=True)
    before = {"head": digest(served, "SiteA/logs", 0, 1 << 20), "tail": digest(served, "SiteA/logs", size - (1 << 20), 1 << 20),
              "sec": digest(served, "SiteB/logs_dr", 0, 1 << 20)}
    primary, secondary = served.volume("SiteA/logs").nbd_uri, served.volume("SiteB/logs_dr").nbd_uri
    with RawNbd(primary) as bystander, RawNbd(primary) as bad, RawNbd(primary) as c, RawNbd(secondary) as s:
        assert c.size == size and not c.flags & TFLAG_READ_ONLY
        assert s.flags & TFLAG_READ_ONLY
        # Out-of-range reads: EINVAL, and the connection lives on.
        assert c.request(CMD_READ, size - 4096, 8192)[0] == EINVAL
        assert c.request(CMD_READ, size, 1)[0] == EINVAL
        assert c.request(CMD_READ, 1 << 62, 4096)[0] == EINVAL
        assert c.request(CMD_READ, 0, 64 << 20)[0] == EINVAL  # over the 32 MiB payload limit
        # Writes past the end: ENOSPC, nothing written (not even the part that fits).
        assert c.write(size - 4096, b"\xee" * 8192) == ENOSPC
        assert c.write(size, b"\xee" * 512) == ENOSPC
        assert c.request(CMD_WRITE_ZEROES, size - 4096, 8192)[0] == ENOSPC
        assert c.request(CMD_TRIM, size - 4096, 8192)[0] == EINVAL
        assert c.write(0, b"\xee" * 512, flags=0x80) == EINVAL  # an undocumented flag
        # Hosts may not write the secondary, whatever the command.
        assert s.write(0, b"\xee" * 4096) == EPERM
        assert s.write(0, b"\xee" * 4096, flags=FLAG_FUA) == EPERM
        assert s.request(CMD_WRITE_ZEROES, 0, 65536)[0] == EPERM
        assert s.request(CMD_TRIM, 0, 65536)[0] == EPERM
        assert s.request(CMD_FLUSH)[0] == 0
        assert s.read(0, 4096) == b"\x5b" * 4096
        # A bad request magic costs that client its connection, nobody else's.
        bad.sock.sendall(struct.pack(">IHHQQI", 0xDEADBEEF, 0, CMD_WRITE, 1, 0, 4096) + b"\xee" * 4096)
        assert bad.closed_by_server()
        assert c.read(size - 65536, 4096) == b"\x5a" * 4096
        assert bystander.read(0, 4096) == b"\x5b" * 4096
        assert s.read(0, 4096) == b"\x5b" * 4096
    # Garbage instead of a handshake, then a new client: still served.
    host, port = primary[len("nbd://"):].split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as junk:
        junk.recv(18)
        junk.sendall(os.urandom(64))
    with RawNbd(primary) as after:
        assert after.read(0, 4096) == b"\x5b" * 4096
    assert os.path.getsize(served.volume("SiteA/logs").path) == size
    assert {"head": digest(served, "SiteA/logs", 0, 1 << 20), "tail": digest(served, "SiteA/logs", size - (1 << 20), 1 << 20),
            "sec": digest(served, "SiteB/logs_dr", 0, 1 << 20)} == before
    assert served.sync_now("G", wait=True).unique_changed_bytes == 0  # refused requests marked no change


@pytest.mark.skipif(shutil.which("qemu-io") is None, reason="qemu-io (qemu-utils) not installed")
def test_write_zeroes_and_trim_reach_the_secondary_as_zeros(served):
    uri = served.volume("SiteA/logs").nbd_uri
    r = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0xab 0 4M", uri], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    served.sync_now("G", wait=True)
    assert served.host_read("SiteB/logs_dr", 0, 4 << 20) == b"\xab" * (4 << 20)
    # write -z sends NBD_CMD_WRITE_ZEROES; discard (with unmap allowed) NBD_CMD_TRIM;
    # -f asks for FUA; flush NBD_CMD_FLUSH. Odd, unaligned ranges on purpose.
    r = subprocess.run(["qemu-io", "-f", "raw", "--discard=unmap",
                        "-c", "write -z 65536 131072", "-c", "write -z -f 300000 5000",
                        "-c", "discard 1M 512K", "-c", "write -f -P 0xcd 3M 4096", "-c", "flush", uri],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "error" not in r.stdout.lower(), r.stdout + r.stderr
    expected = bytearray(b"\xab" * (4 << 20))
    for off, n in ((65536, 131072), (300000, 5000), (1 << 20, 512 << 10)):
        expected[off:off + n] = bytes(n)
    expected[3 << 20:(3 << 20) + 4096] = b"\xcd" * 4096
    assert served.host_read("SiteA/logs", 0, 4 << 20) == expected
    stats = served.sync_now("G", wait=True)
    assert stats.outcome == "committed"
    assert served.host_read("SiteB/logs_dr", 0, 4 << 20) == expected
    assert served.verify("G")["identical"]


def test_flush_fua_and_zeroing_flags_accepted_over_a_raw_session(served):
    uri = served.volume("SiteA/logs").nbd_uri
    with RawNbd(uri) as c:
        assert c.write(8192, b"\x11" * 8192, flags=FLAG_FUA) == 0
        assert c.request(CMD_FLUSH)[0] == 0
        assert c.request(CMD_WRITE_ZEROES, 12288, 1024, flags=FLAG_FUA | FLAG_NO_HOLE)[0] == 0
        assert c.request(CMD_TRIM, 8192, 512, flags=FLAG_FUA)[0] == 0
        assert c.request(CMD_WRITE_ZEROES, 0, 0)[0] == 0  # zero length: a no-op, not an error
        assert c.request(CMD_FLUSH, flags=FLAG_FUA)[0] == EINVAL  # FUA is not a flush flag
        assert c.read(8192, 8192) == bytes(512) + b"\x11" * 3584 + bytes(1024) + b"\x11" * 3072
    served.sync_now("G", wait=True)
    assert served.host_read("SiteB/logs_dr", 8192, 8192) == bytes(512) + b"\x11" * 3584 + bytes(1024) + b"\x11" * 3072


def test_several_connections_to_one_export(served):
    uri = served.volume("SiteA/logs").nbd_uri
    clients = [RawNbd(uri) for _ in range(6)]
    try:
        for i, c in enumerate(clients):  # interleaved 64 KiB writes, one region each
            for k in range(8):
                assert c.write((k * len(clients) + i) * 65536, bytes([i + 1]) * 65536) == 0
        for i, c in enumerate(clients):  # every connection sees every other's writes
            other = clients[(i + 1) % len(clients)]
            assert other.request(CMD_FLUSH)[0] == 0
            assert c.read(((i + 1) % len(clients)) * 65536, 65536) == bytes([(i + 1) % len(clients) + 1]) * 65536
    finally:
        for c in clients:
            c.close()
    if shutil.which("qemu-io"):
        procs = [subprocess.Popen(["qemu-io", "-f", "raw", "-c", f"write -P {0x40 + i} {(100 + i) << 20} 1M", uri],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(4)]
        for p in procs:
            assert p.wait(timeout=60) == 0, p.stderr.read()
    stats = served.sync_now("G", wait=True)
    assert stats.outcome == "committed"
    expected = b"".join(bytes([(r % 6) + 1]) * 65536 for r in range(48))
    assert served.host_read("SiteB/logs_dr", 0, len(expected)) == expected
    assert served.verify("G")["identical"]


def test_role_change_updates_access_for_connected_clients(served):
    old_primary, old_secondary = served.volume("SiteA/logs").nbd_uri, served.volume("SiteB/logs_dr").nbd_uri
    with RawNbd(old_primary) as a, RawNbd(old_secondary) as b:
        assert b.write(0, b"\xb0" * 4096) == EPERM
        assert a.write(0, b"\xa0" * 4096) == 0
        served.role_change("G", "SiteB")
        # The same connections, no reconnect: access follows the new roles.
        assert b.write(65536, b"\xb1" * 4096) == 0
        assert b.request(CMD_WRITE_ZEROES, 131072, 4096)[0] == 0
        assert a.write(65536, b"\xa1" * 4096) == EPERM
        assert a.request(CMD_TRIM, 0, 4096)[0] == EPERM
        assert a.read(0, 4096) == b"\xa0" * 4096  # reads still work on the new secondary
        assert b.read(0, 4096) == b"\xa0" * 4096  # the final sync carried the old primary's write
        served.sync_now("G", wait=True)
        assert a.read(65536, 4096) == b"\xb1" * 4096  # the new primary's write is mirrored back
        # And back again, still on the same connections.
        served.role_change("G", "SiteA")
        assert a.write(65536, b"\xa2" * 4096) == 0
        assert b.write(65536, b"\xb2" * 4096) == EPERM
    assert served.host_read("SiteA/logs", 65536, 4096) == b"\xa2" * 4096


def test_forced_promotion_makes_a_connected_secondary_client_writable(served):
    with RawNbd(served.volume("SiteB/logs_dr").nbd_uri) as b:
        assert b.write(0, b"\xb0" * 4096) == EPERM
        served.lab_link(True)
        try:
            served.promote("G", "SiteB", force=True)
            assert b.write(0, b"\xb1" * 4096) == 0
            assert served.host_read("SiteB/logs_dr", 0, 4096) == b"\xb1" * 4096
        finally:
            served.lab_link(False)
