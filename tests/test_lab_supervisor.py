"""lab up / down / status / link as a user runs them: real processes, real sockets, nothing left behind."""
from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from core.array import StorageArray
from core.cli.main import build_parser, main
from core.lab import LAB_PASSWORDS, array_dirs, init_lab
from core.lab.processes import mirrorctl_command, process_alive, start_detached
from core.lab.relay_control import RelayControl
from core.lab.relay_service import RELAY_FILE, RELAY_LOG, RELAY_PID


def run(capsys, home, *args, json_out=True):
    code = main(["--home", str(home)] + (["--json"] if json_out else []) + list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, (json.loads(out) if json_out and code == 0 and out.strip() else out), err


def ok(capsys, home, *args):
    code, out, err = run(capsys, home, *args)
    assert code == 0, err
    return out


def one_line_error(capsys, home, *args) -> str:
    code, out, err = run(capsys, home, *args)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mirrorctl: error: "), err
    return lines[0]


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def through(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def closed(sock: socket.socket) -> bool:
    """True when the other end of ``sock`` is gone (EOF or reset)."""
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except (ConnectionError, OSError):
        return True


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "lab"
    init_lab(home)
    yield home
    if array_dirs(home):
        main(["--home", str(home), "lab", "down"])  # the finaliser: no process outlives a test


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except ConnectionError:
            pass  # the relay reset the path: that is the point


@pytest.fixture
def echo():
    """A stand-in for an array's channel: a TCP echo server on 127.0.0.1."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def relay(home, echo):
    """The relay process as 'lab up' starts it, routing both lab arrays to the echo server."""
    home = home.resolve()
    cmd = mirrorctl_command("--home", str(home), "lab", "relay", "--route", f"SiteA={echo}", "--route", f"SiteB={echo}")
    proc = start_detached(cmd, home / RELAY_LOG, home / RELAY_PID)
    wait_until(lambda: RelayControl.find(home) is not None or proc.poll() is not None)
    assert proc.poll() is None, (home / RELAY_LOG).read_text()
    yield RelayControl.find(home)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# -- without array daemons --------------------------------------------------------
def test_lab_link_drives_the_running_relay(capsys, home, relay):
    info = json.loads((home / RELAY_FILE).read_text())
    assert oct((home / RELAY_FILE).stat().st_mode & 0o777) == "0o600"
    assert info["pid"] == relay.pid and info["token"] and info["controlUrl"].startswith("http://127.0.0.1:")
    to_b = info["routes"]["SiteB"]["listen"]

    sock = through(to_b)
    sock.sendall(b"ping")
    assert sock.recv(4) == b"ping"
    cut = ok(capsys, home, "lab", "link", "cut")
    assert cut["linkCut"] is True and cut["connectionsClosed"] == 1 and cut["relayPid"] == relay.pid
    assert closed(sock)
    sock.close()
    try:  # a new connection is accepted, then closed at once (even before connect() returns)
        with through(to_b) as again:
            again.sendall(b"x")
            assert closed(again)
    except ConnectionError:
        pass

    shaped = ok(capsys, home, "lab", "link", "set", "--bandwidth", "20MiB", "--latency", "30ms")
    assert shaped["linkBandwidth"] == 20 << 20 and shaped["linkLatency"] == pytest.approx(0.03)
    assert "[invalidBandwidth]" in one_line_error(capsys, home, "lab", "link", "set", "--bandwidth", "0")
    assert ok(capsys, home, "lab", "link", "restore")["linkCut"] is False
    with through(to_b) as sock:
        start = time.monotonic()
        sock.sendall(b"pong")
        assert sock.recv(4) == b"pong"
        assert time.monotonic() - start >= 0.06  # 30 ms each way

    status = ok(capsys, home, "lab", "status")
    link = status["link"]
    assert link["running"] and link["relayPid"] == relay.pid and link["cut"] is False
    assert link["bandwidth"] == 20 << 20 and link["latency"] == pytest.approx(0.03)
    assert set(link["routes"]) == {"SiteA", "SiteB"} and link["routes"]["SiteB"]["listen"] == to_b
    assert status["up"] is False  # no array daemon runs
    assert [a["running"] for a in status["arrays"]] == [False, False]

    down = ok(capsys, home, "lab", "down")
    assert down["stopped"] == ["link relay"] and down["killed"] == []
    assert not process_alive(relay.pid)
    assert not (home / RELAY_FILE).exists() and not (home / RELAY_PID).exists()


def test_relay_control_api_needs_its_token_and_validates(home, relay):
    req = urllib.request.Request(relay.url + "/link")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 401 and json.loads(e.value.read())["retcode"] == "notAuthorized"
    for body, code in (({"bandwidth": 0}, "invalidBandwidth"), ({"latency": -1}, "invalidLatency"),
                       ({"cut": "yes"}, "invalidRequest"), ({"speed": 1}, "invalidRequest")):
        with pytest.raises(Exception) as err:
            relay.set_link(**body)
        assert getattr(err.value, "code", None) == code
    assert relay.link()["cut"] is False and relay.link()["bandwidth"] is None  # nothing half-applied
    moved = relay.set_routes({"SiteB": "127.0.0.1:9"})
    assert moved["routes"]["SiteB"]["target"] == "127.0.0.1:9"
    assert json.loads((home / RELAY_FILE).read_text())["routes"]["SiteB"]["target"] == "127.0.0.1:9"


def test_link_faults_need_the_lab_up(capsys, home):
    """A cut link is a cut connection of the relay: with no relay there is nothing to cut, and it says so."""
    line = one_line_error(capsys, home, "lab", "link", "set", "--latency", "30ms")
    assert line == "mirrorctl: error: the lab is not up; start it with 'mirrorctl lab up' [labNotUp]"
    assert "[invalidBandwidth]" in one_line_error(capsys, home, "lab", "link", "set", "--bandwidth", "0")
    assert "[invalidLatency]" in one_line_error(capsys, home, "lab", "link", "set", "--latency", "30")
    for args in (("cut",), ("restore",), ("set", "--bandwidth", "8MiB"), ("show",)):
        assert one_line_error(capsys, home, "lab", "link", *args).endswith("[labNotUp]")
    assert not (home / "lab.json").exists()
    status = ok(capsys, home, "lab", "status")
    assert status["up"] is False and status["link"]["running"] is False
    assert "no relay running (start it with 'mirrorctl lab up')" in run(capsys, home, "lab", "status", json_out=False)[1]
    from core.lab.supervisor import require_lab_up
    from core.lab import LabNotUp

    with pytest.raises(LabNotUp):
        require_lab_up(home)


def test_stale_files_are_cleaned_and_strangers_never_signalled(capsys, home):
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        site_a, site_b = array_dirs(home)
        (site_a / "daemon.json").write_text(json.dumps({"name": "SiteA", "pid": dead.pid,
                                                        "restUrl": "https://127.0.0.1:1",
                                                        "certificateSha256": "00" * 32}))
        (site_a / "daemon.pid").write_text(f"{dead.pid}\n")
        (site_b / "daemon.pid").write_text(f"{stranger.pid}\n")  # a reused pid
        (home / RELAY_FILE).write_text(json.dumps({"pid": stranger.pid, "controlUrl": "http://127.0.0.1:1",
                                                   "token": "t"}))
        status = ok(capsys, home, "lab", "status")
        assert [a["running"] for a in status["arrays"]] == [False, False] and not status["link"]["running"]
        down = ok(capsys, home, "lab", "down")
        assert down["stopped"] == [] and down["killed"] == []
        assert stranger.poll() is None  # never signalled
        assert not (site_a / "daemon.json").exists() and not (site_a / "daemon.pid").exists()
        assert (site_b / "daemon.pid").exists()  # its pid lives: not ours to judge, not removed
    finally:
        stranger.kill()
        stranger.wait()


def test_lab_passwords(capsys, tmp_path):
    plain = tmp_path / "plain"
    assert ok(capsys, plain, "lab", "init") == {"home": str(plain), "created": True}
    assert not (plain / "passwords.json").exists()
    assert [a["password"] for a in ok(capsys, plain, "lab", "status")["arrays"]] == \
        [LAB_PASSWORDS["SiteA"], LAB_PASSWORDS["SiteB"]]

    custom = tmp_path / "custom"
    made = ok(capsys, custom, "lab", "init", "--password", "Drill-2024!")
    assert made == {"home": str(custom), "created": True, "passwordSet": ["SiteA", "SiteB"]}
    assert oct((custom / "passwords.json").stat().st_mode & 0o777) == "0o600"
    assert [a["password"] for a in ok(capsys, custom, "lab", "status")["arrays"]] == ["Drill-2024!"] * 2
    changed = ok(capsys, custom, "lab", "init", "--password", "Other-Pass")
    assert changed["created"] is False and changed["passwordSet"] == ["SiteA", "SiteB"]
    for d in array_dirs(custom):
        array = StorageArray.open(d)
        try:
            assert array.check_password("Other-Pass") and not array.check_password("Drill-2024!")
        finally:
            array.close()
    assert "[invalidPassword]" in one_line_error(capsys, custom, "lab", "init", "--password", "")
    assert "[labExists]" in one_line_error(capsys, custom, "lab", "init")  # without --password: as before


# -- with the array daemons --------------------------------------------------------
def _daemon_available() -> bool:
    try:
        build_parser().parse_args(["array", "serve", "--data-dir", "x"])
        import core.daemon.array_daemon  # noqa: F401
    except (SystemExit, ImportError):
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _daemon_available(), reason="'mirrorctl array serve' is not there yet")
def test_lab_up_cut_partial_restart_and_down(capsys, home):
    up = ok(capsys, home, "lab", "up")
    assert set(up["started"]) == {"SiteA", "SiteB", "link relay"} and up["up"] is True
    arrays = {a["name"]: a for a in up["arrays"]}
    pids = [a["pid"] for a in arrays.values()] + [up["link"]["relayPid"]]
    assert all(process_alive(p) for p in pids)

    status = ok(capsys, home, "lab", "status")
    for a in status["arrays"]:
        assert a["running"] and a["restUrl"].startswith("https://127.0.0.1:")
        assert len(a["certificateSha256"]) == 64 and a["password"] == LAB_PASSWORDS[a["name"]]
        assert a["channelAddress"] and a["nbdAddress"]
        assert status["link"]["routes"][a["name"]]["target"] == a["channelAddress"]
    assert ok(capsys, home, "lab", "up")["started"] == []  # everything runs: nothing to start

    # Each array reaches the other through the relay.
    from core.client import BlockingArrayClient

    with BlockingArrayClient.for_daemon(arrays["SiteA"], LAB_PASSWORDS["SiteA"]) as client:
        remotes = client.get("remote-arrays")
    remotes = remotes if isinstance(remotes, list) else next(v for v in remotes.values() if isinstance(v, list))
    assert [r["addresses"] for r in remotes if r["name"] == "SiteB"] == \
        [[status["link"]["routes"]["SiteB"]["listen"]]]

    def sees_siteb() -> bool:
        with BlockingArrayClient.for_daemon(arrays["SiteA"], LAB_PASSWORDS["SiteA"]) as client:
            return all(r["reachable"] for r in client.get("remote-arrays") if r["name"] == "SiteB")

    wait_until(sees_siteb, 15)
    sock = through(status["link"]["routes"]["SiteB"]["listen"])
    time.sleep(0.2)
    cut = ok(capsys, home, "lab", "link", "cut")
    assert cut["connectionsClosed"] >= 1  # our socket, and the arrays' own channel sessions
    assert closed(sock)
    sock.close()
    wait_until(lambda: not sees_siteb(), 15)  # the array itself sees the link down
    ok(capsys, home, "lab", "link", "restore")
    wait_until(sees_siteb, 15)

    # A daemon that died is restarted alone, and the relay follows it to its new port.
    os.kill(arrays["SiteB"]["pid"], signal.SIGKILL)
    wait_until(lambda: not process_alive(arrays["SiteB"]["pid"]))
    again = ok(capsys, home, "lab", "up")
    assert again["started"] == ["SiteB"]
    new_b = next(a for a in again["arrays"] if a["name"] == "SiteB")
    assert again["link"]["routes"]["SiteB"]["target"] == new_b["channelAddress"]
    pids.append(new_b["pid"])

    # A new lab password: refused while the daemons hold their arrays, taken at the next 'lab up'.
    line = one_line_error(capsys, home, "lab", "init", "--password", "New-Pass-1")
    assert "[dataDirectoryLocked]" in line and "lab down" in line
    ok(capsys, home, "lab", "down")
    ok(capsys, home, "lab", "init", "--password", "New-Pass-1")
    renewed = ok(capsys, home, "lab", "up")
    assert [a["password"] for a in renewed["arrays"]] == ["New-Pass-1"] * 2
    pids += [a["pid"] for a in renewed["arrays"]] + [renewed["link"]["relayPid"]]
    with BlockingArrayClient.for_daemon(renewed["arrays"][1], "New-Pass-1") as client:
        assert [r["name"] for r in client.get("remote-arrays")] == ["SiteA"]

    down = ok(capsys, home, "lab", "down")
    assert set(down["stopped"]) == {"SiteA", "SiteB", "link relay"} and down["killed"] == []
    assert not any(process_alive(p) for p in pids)
    for d in array_dirs(home):
        assert not (d / "daemon.json").exists() and not (d / "daemon.pid").exists()
    assert ok(capsys, home, "lab", "status")["up"] is False


@pytest.mark.slow
@pytest.mark.skipif(not _daemon_available(), reason="'mirrorctl array serve' is not there yet")
def test_lab_up_that_fails_says_why_and_leaves_nothing_running(capsys, home):
    site_a, site_b = array_dirs(home)
    held = StorageArray.open(site_b, "pytest holding SiteB")  # SiteB's daemon cannot take its data directory
    try:
        code, out, err = run(capsys, home, "lab", "up")
    finally:
        held.close()
    assert code == 1
    first = err.strip().splitlines()[0]
    assert first.startswith("mirrorctl: error: array SiteB did not start") and str(site_b / "daemon.log") in first
    assert "pytest holding SiteB" in err and "[arrayStartFailed]" in err  # the log's own words
    for d in (site_a, site_b):
        pid = int((d / "daemon.pid").read_text()) if (d / "daemon.pid").exists() else None
        assert not process_alive(pid)
    status = ok(capsys, home, "lab", "status")
    assert not any(a["running"] for a in status["arrays"]) and not status["link"]["running"]


def test_lab_up_takes_free_ports_when_an_old_one_was_taken_meanwhile(capsys, home, monkeypatch):
    """A restarted array keeps its ports when it can; one taken between the check and the bind costs a retry, not the lab."""
    first = ok(capsys, home, "lab", "up")
    old_rest = next(a for a in first["arrays"] if a["name"] == "SiteA")["restUrl"]
    ok(capsys, home, "lab", "down")
    taken = socket.socket()
    taken.bind(("127.0.0.1", int(old_rest.rpartition(":")[2])))
    taken.listen()
    try:
        import core.lab.supervisor as supervisor

        monkeypatch.setattr(supervisor, "_port_free", lambda port: True)  # free when looked at, taken at the bind
        status = ok(capsys, home, "lab", "up")
        site_a = next(a for a in status["arrays"] if a["name"] == "SiteA")
        assert status["up"] and site_a["restUrl"] != old_rest
        assert "[portInUse]" in (array_dirs(home)[0] / "daemon.log").read_text()  # why it moved, in its log
    finally:
        taken.close()
