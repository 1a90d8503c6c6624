"""Socket-level tests of the NBD server: handshake, every command, misbehaving clients."""
from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time

import pytest

from core.nbd import DictProvider, FileBackend, NbdServer, NbdServerThread
from core.nbd import protocol as P

SIZE = 8 * 1024 * 1024


# --- a minimal raw NBD client ----------------------------------------------
class RawClient:
    """Speaks the wire protocol byte by byte so tests can also speak it badly."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._cookie = 0

    def close(self) -> None:
        self.sock.close()

    def recv_exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(n - got)
            if not chunk:
                raise ConnectionError(f"server closed after {got}/{n} bytes")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def is_closed_by_server(self) -> bool:
        """True when the server closed the connection (EOF or reset)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def greeting(self, client_flags: int = P.CLIENT_FLAG_FIXED_NEWSTYLE | P.CLIENT_FLAG_NO_ZEROES):
        magic, opt_magic, flags = P.GREETING.unpack(self.recv_exact(18))
        assert (magic, opt_magic) == (P.NBDMAGIC, P.IHAVEOPT)
        assert flags & P.FLAG_FIXED_NEWSTYLE
        self.sock.sendall(struct.pack(">I", client_flags))
        return flags

    def send_option(self, opt: int, data: bytes = b"") -> None:
        self.sock.sendall(P.OPTION_HEADER.pack(P.IHAVEOPT, opt, len(data)) + data)

    def option_reply(self) -> tuple[int, int, bytes]:
        magic, opt, rep, length = P.OPTION_REPLY.unpack(self.recv_exact(20))
        assert magic == P.OPT_REPLY_MAGIC
        return opt, rep, self.recv_exact(length)

    def info(self, name: str, opt: int = P.OPT_GO, requests: tuple[int, ...] = ()):
        """Send NBD_OPT_GO/INFO; return (reply type of the last reply, {info type: data})."""
        raw = name.encode()
        body = struct.pack(">I", len(raw)) + raw + struct.pack(">H", len(requests))
        body += b"".join(struct.pack(">H", r) for r in requests)
        self.send_option(opt, body)
        infos = {}
        while True:
            ropt, rep, data = self.option_reply()
            assert ropt == opt
            if rep == P.REP_INFO:
                (itype,) = struct.unpack_from(">H", data)
                infos[itype] = data[2:]
                continue
            return rep, infos

    def connect(self, name: str) -> tuple[int, int]:
        """Full handshake with NBD_OPT_GO; returns (size, transmission flags)."""
        self.greeting()
        rep, infos = self.info(name)
        assert rep == P.REP_ACK
        return struct.unpack(">QH", infos[P.INFO_EXPORT])

    def send_request(self, cmd: int, offset: int = 0, length: int = 0, flags: int = 0,
                     payload: bytes = b"", magic: int = P.REQUEST_MAGIC) -> int:
        self._cookie += 1
        self.sock.sendall(P.REQUEST.pack(magic, flags, cmd, self._cookie, offset, length) + payload)
        return self._cookie

    def reply(self, data_length: int = 0) -> tuple[int, int, bytes]:
        magic, err, cookie = P.SIMPLE_REPLY.unpack(self.recv_exact(16))
        assert magic == P.SIMPLE_REPLY_MAGIC
        data = self.recv_exact(data_length) if (data_length and not err) else b""
        return err, cookie, data

    def call(self, cmd: int, offset: int = 0, length: int = 0, flags: int = 0,
             payload: bytes = b"") -> tuple[int, bytes]:
        cookie = self.send_request(cmd, offset, length, flags, payload)
        err, rcookie, data = self.reply(length if cmd == P.CMD_READ else 0)
        assert rcookie == cookie
        return err, data

    def write(self, offset: int, data: bytes, flags: int = 0) -> int:
        return self.call(P.CMD_WRITE, offset, len(data), flags, data)[0]

    def read(self, offset: int, length: int) -> tuple[int, bytes]:
        return self.call(P.CMD_READ, offset, length)


# --- fixtures -----------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_server_thread_left():
    """A server thread outliving its test would serve stale exports to later tests."""
    yield
    left = [t.name for t in threading.enumerate() if t.name == "nbd-server"]
    assert not left, f"NBD server threads still running: {left}"


class FailingBackend:
    """A backend whose every call raises the exception it is given."""

    name = "failing"
    size = SIZE
    read_only = False

    def __init__(self):
        self.exc: BaseException = OSError(errno.EIO, "disk on fire")

    def read(self, offset, length):
        raise self.exc

    def write(self, offset, data, fua=False):
        raise self.exc

    def write_zeroes(self, offset, length, fua=False):
        raise self.exc

    def trim(self, offset, length):
        raise self.exc

    def flush(self):
        raise self.exc


@pytest.fixture
def exports(tmp_path):
    backends = {}
    for name, ro in (("disk", False), ("ro", True)):
        path = tmp_path / f"{name}.img"
        with open(path, "wb") as f:
            f.truncate(SIZE)
        backends[name] = FileBackend(name, path, read_only=ro)
    backends["failing"] = FailingBackend()
    yield backends
    for b in backends.values():
        if isinstance(b, FileBackend):
            b.close()


@pytest.fixture
def server(exports):
    with NbdServerThread(DictProvider(exports)) as st:
        yield st


@pytest.fixture
def client(server):
    clients = []

    def make() -> RawClient:
        c = RawClient(server.port)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def file_bytes(backend: FileBackend, offset: int, length: int) -> bytes:
    with open(backend.path, "rb") as f:
        f.seek(offset)
        return f.read(length)


# --- handshake ----------------------------------------------------------------
def test_list_names_every_export(client):
    c = client()
    c.greeting()
    c.send_option(P.OPT_LIST)
    names = []
    while True:
        opt, rep, data = c.option_reply()
        assert opt == P.OPT_LIST
        if rep == P.REP_ACK:
            break
        assert rep == P.REP_SERVER
        (n,) = struct.unpack_from(">I", data)
        names.append(data[4:4 + n].decode())
    assert sorted(names) == ["disk", "failing", "ro"]


def test_go_advertises_size_and_flags(client):
    c = client()
    c.greeting()
    rep, infos = c.info("disk", requests=(P.INFO_BLOCK_SIZE, P.INFO_NAME))
    assert rep == P.REP_ACK
    size, flags = struct.unpack(">QH", infos[P.INFO_EXPORT])
    assert size == SIZE
    expected = (P.TFLAG_HAS_FLAGS | P.TFLAG_SEND_FLUSH | P.TFLAG_SEND_FUA | P.TFLAG_SEND_TRIM
                | P.TFLAG_SEND_WRITE_ZEROES | P.TFLAG_CAN_MULTI_CONN)
    assert flags == expected
    assert struct.unpack(">III", infos[P.INFO_BLOCK_SIZE]) == (1, 4096, 32 * 1024 * 1024)
    assert infos[P.INFO_NAME] == b"disk"
    assert c.write(0, b"x" * 512) == 0


def test_read_only_export_advertises_read_only(client):
    c = client()
    _, flags = c.connect("ro")
    assert flags & P.TFLAG_READ_ONLY


def test_info_then_go_and_unknown_export(client):
    c = client()
    c.greeting()
    rep, infos = c.info("nope")
    assert rep == P.REP_ERR_UNKNOWN and not infos
    rep, infos = c.info("disk", opt=P.OPT_INFO)
    assert rep == P.REP_ACK and P.INFO_EXPORT in infos
    rep, _ = c.info("disk", opt=P.OPT_GO)
    assert rep == P.REP_ACK
    assert c.read(0, 4096) == (0, bytes(4096))


@pytest.mark.parametrize("opt", [P.OPT_STRUCTURED_REPLY, P.OPT_STARTTLS, 9, 10, 11, 4242])
def test_unknown_or_unsupported_option_gets_err_unsup(client, opt):
    c = client()
    c.greeting()
    c.send_option(opt, b"")
    assert c.option_reply()[:2] == (opt, P.REP_ERR_UNSUP)
    assert c.info("disk")[0] == P.REP_ACK  # the negotiation goes on


@pytest.mark.parametrize("body", [
    b"",                                         # too short
    struct.pack(">I", 100) + b"disk" + b"\0\0",  # name longer than the option
    struct.pack(">I", 4) + b"disk" + struct.pack(">H", 3),  # info count mismatch
    struct.pack(">I", 4) + b"disk" + b"\0\0" + b"extra",
])
def test_malformed_go_gets_err_invalid(client, body):
    c = client()
    c.greeting()
    c.send_option(P.OPT_GO, body)
    assert c.option_reply()[1] == P.REP_ERR_INVALID
    assert c.info("disk")[0] == P.REP_ACK


def test_list_with_data_is_invalid(client):
    c = client()
    c.greeting()
    c.send_option(P.OPT_LIST, b"junk")
    assert c.option_reply()[1] == P.REP_ERR_INVALID


def test_abort_acks_and_closes(client):
    c = client()
    c.greeting()
    c.send_option(P.OPT_ABORT)
    assert c.option_reply()[:2] == (P.OPT_ABORT, P.REP_ACK)
    assert c.is_closed_by_server()


@pytest.mark.parametrize("client_flags,reply_len", [
    (P.CLIENT_FLAG_FIXED_NEWSTYLE | P.CLIENT_FLAG_NO_ZEROES, 10),
    (P.CLIENT_FLAG_FIXED_NEWSTYLE, 134),
])
def test_export_name_option(client, exports, client_flags, reply_len):
    c = client()
    c.greeting(client_flags)
    c.send_option(P.OPT_EXPORT_NAME, b"disk")
    reply = c.recv_exact(reply_len)
    size, flags = struct.unpack_from(">QH", reply)
    assert size == SIZE and flags & P.TFLAG_HAS_FLAGS
    assert reply[10:] == bytes(reply_len - 10)
    assert c.write(100, b"hello") == 0
    assert file_bytes(exports["disk"], 100, 5) == b"hello"


def test_export_name_unknown_closes(client):
    c = client()
    c.greeting()
    c.send_option(P.OPT_EXPORT_NAME, b"nope")
    assert c.is_closed_by_server()


def test_bad_client_flags_or_option_magic_closes(client):
    c = client()
    c.greeting(client_flags=0x80)
    assert c.is_closed_by_server()
    c = client()
    c.greeting()
    c.sock.sendall(struct.pack(">QII", 0x1234, P.OPT_LIST, 0))
    assert c.is_closed_by_server()


def test_oversize_option_closes(client):
    c = client()
    c.greeting()
    c.sock.sendall(P.OPTION_HEADER.pack(P.IHAVEOPT, P.OPT_GO, 1 << 30))
    assert c.is_closed_by_server()


def test_default_export_needs_a_single_export(tmp_path):
    path = tmp_path / "only.img"
    path.write_bytes(b"\1" * 4096)
    with FileBackend("only", path) as b, NbdServerThread(DictProvider({"only": b})) as st:
        c = RawClient(st.port)
        try:
            assert c.connect("") == (4096, P.BASE_TRANSMISSION_FLAGS)
        finally:
            c.close()


# --- transmission ---------------------------------------------------------------
def test_write_read_flush_fua(client, exports):
    c = client()
    c.connect("disk")
    data = os.urandom(12345)
    assert c.write(4097, data) == 0
    assert c.write(70000, b"fua!", flags=P.CMD_FLAG_FUA) == 0
    assert c.read(4097, len(data)) == (0, data)
    assert c.call(P.CMD_FLUSH)[0] == 0
    assert file_bytes(exports["disk"], 4097, len(data)) == data
    assert file_bytes(exports["disk"], 70000, 4) == b"fua!"


def test_write_zeroes_and_trim(client, exports):
    c = client()
    c.connect("disk")
    assert c.write(0, b"\xff" * 65536) == 0
    assert c.call(P.CMD_WRITE_ZEROES, 1000, 5000)[0] == 0
    assert c.call(P.CMD_WRITE_ZEROES, 20000, 5000, flags=P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FUA)[0] == 0
    err, data = c.read(0, 65536)
    assert err == 0
    assert data[:1000] == b"\xff" * 1000 and data[1000:6000] == bytes(5000)
    assert data[6000:20000] == b"\xff" * 14000 and data[20000:25000] == bytes(5000)
    assert data[25000:] == b"\xff" * (65536 - 25000)
    # Whole-export write_zeroes larger than the 32 MiB payload limit is fine: no payload.
    assert c.call(P.CMD_TRIM, 0, 4096)[0] == 0
    assert c.call(P.CMD_TRIM, 0, SIZE, flags=P.CMD_FLAG_FUA)[0] == 0
    assert c.call(P.CMD_WRITE_ZEROES, 0, SIZE)[0] == 0
    assert c.read(0, 65536) == (0, bytes(65536))


def test_large_and_split_writes(client, exports):
    c = client()
    c.connect("disk")
    big = os.urandom(4 * 1024 * 1024 + 3)
    small = os.urandom(4096)
    # Pipelined: a small write, a large one, a small one in one burst.
    cookies = [c.send_request(P.CMD_WRITE, 0, len(small), payload=small),
               c.send_request(P.CMD_WRITE, 8192, len(big), payload=big),
               c.send_request(P.CMD_WRITE, SIZE - 4096, len(small), payload=small)]
    assert [c.reply() for _ in cookies] == [(0, k, b"") for k in cookies]
    # A request dribbled a few bytes at a time.
    msg = P.REQUEST.pack(P.REQUEST_MAGIC, 0, P.CMD_WRITE, 99, 5000, 3000) + b"z" * 3000
    for i in range(0, len(msg), 7):
        c.sock.sendall(msg[i:i + 7])
    assert c.reply() == (0, 99, b"")
    assert file_bytes(exports["disk"], 8192, len(big)) == big
    assert file_bytes(exports["disk"], SIZE - 4096, 4096) == small
    assert c.read(5000, 3000) == (0, b"z" * 3000)
    assert c.read(8192, len(big)) == (0, big)


def test_pipelined_small_requests_answer_every_cookie(client, exports):
    c = client()
    c.connect("disk")
    blob = b"".join(P.REQUEST.pack(P.REQUEST_MAGIC, 0, P.CMD_WRITE, 1000 + i, i * 4096, 4096)
                    + bytes([i % 256]) * 4096 for i in range(500))
    c.sock.sendall(blob)
    replies = [c.reply() for _ in range(500)]
    assert replies == [(0, 1000 + i, b"") for i in range(500)]
    assert file_bytes(exports["disk"], 499 * 4096, 4096) == bytes([499 % 256]) * 4096


def test_out_of_range_and_malformed_requests(client):
    c = client()
    c.connect("disk")
    assert c.read(SIZE - 10, 11)[0] == P.NBD_EINVAL
    assert c.read(SIZE * 4, 1)[0] == P.NBD_EINVAL
    assert c.read(0, 33 * 1024 * 1024)[0] == P.NBD_EINVAL
    assert c.write(SIZE - 10, b"x" * 11) == P.NBD_ENOSPC
    assert c.call(P.CMD_WRITE_ZEROES, SIZE, 1)[0] == P.NBD_ENOSPC
    assert c.call(P.CMD_TRIM, SIZE - 1, 2)[0] == P.NBD_EINVAL
    assert c.call(5, 0, 4096)[0] == P.NBD_EINVAL          # CACHE: not offered
    assert c.call(77, 0, 0)[0] == P.NBD_EINVAL            # unknown command
    assert c.call(P.CMD_READ, 0, 512, flags=P.CMD_FLAG_FUA)[0] == P.NBD_EINVAL
    assert c.write(0, b"abc", flags=0x40) == P.NBD_EINVAL  # unknown flag, payload consumed
    assert c.call(P.CMD_FLUSH, flags=P.CMD_FLAG_NO_HOLE)[0] == P.NBD_EINVAL
    # Still in sync after all of that.
    assert c.write(0, b"ok") == 0
    assert c.read(0, 2) == (0, b"ok")


def test_oversize_write_is_refused(client):
    c = client()
    c.connect("disk")
    c.send_request(P.CMD_WRITE, 0, 33 * 1024 * 1024)
    err, _, _ = c.reply()
    assert err == P.NBD_EINVAL
    assert c.is_closed_by_server()


def test_bad_request_magic_closes_only_that_connection(client):
    good = client()
    good.connect("disk")
    bad = client()
    bad.connect("disk")
    bad.send_request(P.CMD_READ, 0, 512, magic=0xDEADBEEF)
    assert bad.is_closed_by_server()
    assert good.write(0, b"alive") == 0
    assert good.read(0, 5) == (0, b"alive")


def test_disc_closes_after_finishing_earlier_requests(client, exports):
    c = client()
    c.connect("disk")
    c.sock.sendall(P.REQUEST.pack(P.REQUEST_MAGIC, 0, P.CMD_WRITE, 1, 0, 4) + b"last"
                   + P.REQUEST.pack(P.REQUEST_MAGIC, 0, P.CMD_DISC, 2, 0, 0))
    assert c.reply() == (0, 1, b"")
    assert c.is_closed_by_server()
    assert file_bytes(exports["disk"], 0, 4) == b"last"


def test_read_only_export_refuses_writes_with_eperm(client):
    c = client()
    c.connect("ro")
    assert c.write(0, b"nope") == P.NBD_EPERM
    assert c.call(P.CMD_TRIM, 0, 4096)[0] == P.NBD_EPERM
    assert c.call(P.CMD_WRITE_ZEROES, 0, 4096)[0] == P.NBD_EPERM
    assert c.read(0, 4) == (0, bytes(4))
    assert c.call(P.CMD_FLUSH)[0] == 0


def test_read_only_flips_live_on_an_open_connection(client, exports):
    c = client()
    _, flags = c.connect("disk")
    assert not flags & P.TFLAG_READ_ONLY
    assert c.write(0, b"primary") == 0
    exports["disk"].read_only = True   # role change: now a secondary
    assert c.write(0, b"secondary") == P.NBD_EPERM
    big = os.urandom(2 * 1024 * 1024)   # the large-payload path checks too
    assert c.write(0, big) == P.NBD_EPERM
    assert c.call(P.CMD_WRITE_ZEROES, 0, 7)[0] == P.NBD_EPERM
    assert c.read(0, 7) == (0, b"primary")
    exports["disk"].read_only = False
    assert c.write(0, b"again") == 0
    # A connection made while read-only is told so in its flags.
    exports["disk"].read_only = True
    c2 = client()
    assert c2.connect("disk")[1] & P.TFLAG_READ_ONLY


@pytest.mark.parametrize("exc,code", [
    (OSError(errno.EIO, "io"), P.NBD_EIO),
    (OSError(errno.ENOSPC, "full"), P.NBD_ENOSPC),
    (OSError(errno.EDQUOT, "quota"), P.NBD_ENOSPC),
    (OSError(errno.ENOENT, "odd"), P.NBD_EIO),
    (PermissionError("secondary"), P.NBD_EPERM),
    (ValueError("bad"), P.NBD_EINVAL),
    (RuntimeError("bug"), P.NBD_EIO),
])
def test_backend_errors_become_error_replies(client, exports, exc, code):
    exports["failing"].exc = exc
    c = client()
    c.connect("failing")
    assert c.read(0, 512)[0] == code
    assert c.write(0, b"x" * 512) == code
    assert c.write(0, os.urandom(1024 * 1024)) == code
    assert c.call(P.CMD_FLUSH)[0] == code
    assert c.call(P.CMD_TRIM, 0, 512)[0] == code
    assert c.call(P.CMD_WRITE_ZEROES, 0, 512)[0] == code
    # The connection survives every one of them.
    assert c.read(0, 512)[0] == code


def test_concurrent_connections_on_one_export(client, exports):
    clients = [client() for _ in range(8)]
    for c in clients:
        c.connect("disk")
    chunks = {i: os.urandom(64 * 1024) for i in range(len(clients))}
    # Every client's burst is in flight before anyone reads a reply.
    for i, c in enumerate(clients):
        for j in range(4):
            c.send_request(P.CMD_WRITE, i * 262144 + j * 65536, 65536, payload=chunks[i])
    for c in clients:
        assert [c.reply()[0] for _ in range(4)] == [0, 0, 0, 0]
    # Each client sees its neighbour's writes (one export, many connections).
    for i, c in enumerate(clients):
        n = (i + 1) % len(clients)
        assert c.read(n * 262144 + 3 * 65536, 65536) == (0, chunks[n])


def test_garbage_and_mid_request_disconnect_do_not_hurt_others(server, client):
    good = client()
    good.connect("disk")
    junk = client()
    junk.recv_exact(18)
    junk.sock.sendall(os.urandom(4096))
    half = client()
    half.connect("disk")
    half.sock.sendall(P.REQUEST.pack(P.REQUEST_MAGIC, 0, P.CMD_WRITE, 1, 0, 1 << 20)
                      + b"q" * 100000)
    half.close()
    midhdr = client()
    midhdr.connect("disk")
    midhdr.sock.sendall(b"\x25\x60\x95")
    midhdr.close()
    early = client()
    early.sock.recv(5)
    early.close()
    assert junk.is_closed_by_server()
    assert good.write(0, b"fine") == 0
    assert good.read(0, 4) == (0, b"fine")
    wait_until(lambda: server.server.connection_count == 1)


def test_stop_closes_client_connections(exports):
    st = NbdServerThread(DictProvider(exports)).start()
    c = RawClient(st.port)
    try:
        c.connect("disk")
        assert st.server.connection_count == 1
        st.stop()
        assert c.is_closed_by_server()
    finally:
        c.close()
        st.stop()


def test_uri_and_async_api(exports):
    import asyncio

    async def scenario():
        async with NbdServer(DictProvider(exports), port=0) as srv:
            assert srv.port > 0
            assert srv.uri("disk") == f"nbd://127.0.0.1:{srv.port}/disk"
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            greeting = await reader.readexactly(18)
            assert greeting[:8] == b"NBDMAGIC"
            writer.close()
            await writer.wait_closed()

    asyncio.run(scenario())


def test_client_that_reads_replies_late_gets_them_all(client, exports):
    """Flow control: a burst of pipelined reads is answered in order once drained."""
    c = client()
    c.connect("disk")
    pattern = os.urandom(SIZE)
    assert c.write(0, pattern[:4 * 1024 * 1024]) == 0
    assert c.write(4 * 1024 * 1024, pattern[4 * 1024 * 1024:]) == 0
    n, length = 160, 1024 * 1024
    c.sock.sendall(b"".join(P.REQUEST.pack(P.REQUEST_MAGIC, 0, P.CMD_READ, i, (i % 8) * length,
                                           length) for i in range(n)))
    time.sleep(0.3)  # let the server hit its write high-water mark
    for i in range(n):
        err, cookie, data = c.reply(length)
        assert (err, cookie) == (0, i)
        assert data == pattern[(i % 8) * length:(i % 8 + 1) * length]


# --- hostile or greedy clients: time-outs and connection caps ---------------------
def test_idle_handshake_is_closed_after_the_timeout(exports, caplog):
    """An unauthenticated client that never chooses an export costs its slot only briefly."""
    caplog.set_level("INFO", logger="core.nbd.server")
    with NbdServerThread(DictProvider(exports), handshake_timeout=0.3) as st:
        idle, silent, working = RawClient(st.port), RawClient(st.port), RawClient(st.port)
        try:
            idle.greeting()  # flags sent, then nothing
            working.connect("disk")
            start = time.monotonic()
            assert idle.is_closed_by_server()
            assert silent.recv_exact(18)[:8] == b"NBDMAGIC" and silent.is_closed_by_server()
            assert 0.2 < time.monotonic() - start < 3
            time.sleep(0.4)  # a client in transmission may stay idle as long as it likes
            assert working.write(0, b"still here") == 0
            assert working.read(0, 10) == (0, b"still here")
            wait_until(lambda: st.server.connection_count == 1)
        finally:
            for c in (idle, silent, working):
                c.close()
    timed_out = [r for r in caplog.records if "within 0.3 s" in r.getMessage()]
    assert len(timed_out) == 2 and all("\n" not in r.getMessage() for r in timed_out)


def test_connections_beyond_the_caps_are_refused_and_others_keep_working(exports, caplog):
    caplog.set_level("INFO", logger="core.nbd.server")
    with NbdServerThread(DictProvider(exports), max_connections=3, max_connections_per_export=2) as st:
        clients = [RawClient(st.port) for _ in range(3)]
        try:
            a, b, c = clients
            a.connect("disk")
            b.connect("disk")
            c.greeting()
            rep, _ = c.info("disk")  # a third connection to the export: NBD_REP_ERR_POLICY, with the reason
            assert rep == P.REP_ERR_POLICY
            rep, _ = c.info("disk", opt=P.OPT_INFO)  # asking is still allowed
            assert rep == P.REP_ACK
            assert c.info("ro")[0] == P.REP_ACK  # another export is not capped
            assert c.read(0, 4) == (0, bytes(4))
            over = RawClient(st.port)  # a fourth connection in all: closed before the greeting
            clients.append(over)
            assert over.is_closed_by_server()
            assert a.write(0, b"a") == 0 and b.read(0, 1) == (0, b"a")  # existing clients keep working
            a.send_request(P.CMD_DISC)
            assert a.is_closed_by_server()
            wait_until(lambda: st.server.connection_count == 2)
            again = RawClient(st.port)  # room again
            clients.append(again)
            assert again.connect("disk")[0] == SIZE
        finally:
            for cl in clients:
                cl.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any("export 'disk'" in m and "limit 2" in m for m in messages), messages
    assert any("limit 3" in m for m in messages), messages


def test_export_name_option_over_the_cap_closes(exports):
    """NBD_OPT_EXPORT_NAME has no error reply: closing is the only refusal it allows."""
    with NbdServerThread(DictProvider(exports), max_connections_per_export=1) as st:
        first, second = RawClient(st.port), RawClient(st.port)
        try:
            first.connect("disk")
            second.greeting()
            second.send_option(P.OPT_EXPORT_NAME, b"disk")
            assert second.is_closed_by_server()
            assert first.write(0, b"ok") == 0
        finally:
            first.close()
            second.close()


@pytest.mark.parametrize("port", [-1, 65536, 99999])
def test_port_out_of_range_is_refused(exports, port):
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        NbdServer(DictProvider(exports), port=port)
    assert info.value.code == "invalidPort" and str(port) in info.value.message
