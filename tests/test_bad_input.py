"""Bad input to mirrorctl: one line ``mirrorctl: error: <what, what to do> [code]``, exit 1, nothing lost.

Issue "Never stuck, never falsely healthy", section *Bad input*. The CLI cases run
against one lab brought up for the module (its daemons answer over REST, as for a
user); the engine-level rule (controllers) uses the in-process engine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli.main import main
from core.errors import MirrorError

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def run(capsys, home, *args, json_out=True):
    argv = ["--home", str(home)] + (["--json"] if json_out else []) + list(args)
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(result, retcode, *words):
    code, out, err = result
    assert code == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mirrorctl: error: ")
    assert lines[0].endswith(f"[{retcode}]"), lines[0]
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]


def mirrorctl(*args, **kw) -> subprocess.CompletedProcess:
    """mirrorctl as its own process (for pipes and memory use)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "core.cli.main", *args], env=env, timeout=120, **kw)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One running lab (SiteA, SiteB daemons) shared by the CLI cases of this module."""
    home = tmp_path_factory.mktemp("bad-input") / "lab"
    assert main(["--home", str(home), "lab", "init"]) == 0
    try:
        assert main(["--home", str(home), "lab", "up"]) == 0
        yield home
    finally:
        main(["--home", str(home), "lab", "down"])


def capacity(capsys, home, ref: str) -> int:
    code, out, err = run(capsys, home, "volume", "show", ref)
    assert code == 0, err
    return json.loads(out)["capacity"]


# -- volume read / write -----------------------------------------------------------------------------

def test_write_beyond_the_end_is_refused_and_writes_nothing(capsys, lab, tmp_path):
    cap = capacity(capsys, lab, "SiteA/logs")
    src = tmp_path / "data"
    src.write_bytes(b"\xab" * 8192)
    assert_one_line_error(run(capsys, lab, "volume", "write", "SiteA/logs", "--offset", str(cap - 4096),
                              "--file", str(src)), "invalidRange", "beyond the end", "4096")
    code, out, _ = run(capsys, lab, "volume", "read", "SiteA/logs", "--offset", str(cap - 4096),
                       "--length", "4096", "--file", str(tmp_path / "tail"))
    assert code == 0
    assert (tmp_path / "tail").read_bytes() == bytes(4096)  # nothing of the refused write landed


def test_piped_write_beyond_the_end_is_refused(lab, tmp_path):
    result = mirrorctl("--home", str(lab), "volume", "write", "SiteA/logs", "--offset", "2GiB",
                       input=b"x" * 100, capture_output=True)
    assert result.returncode == 1
    assert result.stderr.decode().strip().endswith("[invalidRange]")
    assert len(result.stderr.decode().strip().splitlines()) == 1


def test_read_beyond_the_end_is_refused_and_leaves_the_file_alone(capsys, lab, tmp_path):
    cap = capacity(capsys, lab, "SiteA/logs")
    out = tmp_path / "precious"
    out.write_bytes(b"keep me")
    assert_one_line_error(run(capsys, lab, "volume", "read", "SiteA/logs", "--offset", str(cap - 10),
                              "--length", "20", "--file", str(out)), "invalidRange", "beyond the end")
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize("command", ["write", "read"])
def test_file_that_is_a_directory(capsys, lab, tmp_path, command):
    extra = ["--length", "10"] if command == "read" else []
    assert_one_line_error(run(capsys, lab, "volume", command, "SiteA/logs", "--offset", "0", *extra,
                              "--file", str(tmp_path)), "fileIsDirectory", str(tmp_path))


def test_write_from_a_missing_file(capsys, lab, tmp_path):
    missing = tmp_path / "nope.bin"
    assert_one_line_error(run(capsys, lab, "volume", "write", "SiteA/logs", "--offset", "0", "--file",
                              str(missing)), "fileNotFound", str(missing))


def test_read_into_a_missing_directory(capsys, lab, tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "out.bin"
    assert_one_line_error(run(capsys, lab, "volume", "read", "SiteA/logs", "--offset", "0", "--length", "10",
                              "--file", str(target)), "fileNotFound", str(target.parent))


def test_write_and_read_stream_in_chunks(capsys, lab, tmp_path):
    """Several chunks each way, an odd length, bytes identical, from a file and from stdin."""
    data = os.urandom(9 * MiB + 12345)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    code, out, err = run(capsys, lab, "volume", "write", "SiteA/logs", "--offset", "1MiB", "--file", str(src))
    assert code == 0, err
    assert json.loads(out)["bytesWritten"] == len(data)
    code, out, err = run(capsys, lab, "volume", "read", "SiteA/logs", "--offset", "1MiB", "--length",
                         str(len(data)), "--file", str(tmp_path / "out.bin"))
    assert code == 0, err
    assert json.loads(out)["bytesRead"] == len(data)
    assert (tmp_path / "out.bin").read_bytes() == data
    piped = mirrorctl("--home", str(lab), "volume", "write", "SiteA/logs", "--offset", "0",
                      input=data[:5 * MiB + 7], capture_output=True)
    assert piped.returncode == 0, piped.stderr
    back = mirrorctl("--home", str(lab), "volume", "read", "SiteA/logs", "--offset", "0", "--length",
                     str(5 * MiB + 7), capture_output=True)
    assert back.returncode == 0 and back.stdout == data[:5 * MiB + 7]


def _max_rss_mib(*args) -> float:
    code = ("import resource, sys; from core.cli.main import main; rc = main(sys.argv[1:]); "
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    line = [x for x in result.stderr.decode().splitlines() if x.startswith("MAXRSS")][0]
    return int(line.split()[1]) / 1024


@pytest.mark.slow
def test_large_write_and_read_do_not_hold_the_data_in_memory(lab, tmp_path):
    big = tmp_path / "big.img"
    with open(big, "wb") as f:  # sparse: costs no disk, reads as 256 MiB of zeros
        f.truncate(256 * MiB)
    small = tmp_path / "small.img"
    small.write_bytes(b"s" * 4096)
    home = ["--home", str(lab)]
    baseline = _max_rss_mib(*home, "volume", "write", "SiteA/db", "--offset", "0", "--file", str(small))
    written = _max_rss_mib(*home, "volume", "write", "SiteA/db", "--offset", "0", "--file", str(big))
    read = _max_rss_mib(*home, "volume", "read", "SiteA/db", "--offset", "0", "--length", "256MiB",
                        "--file", str(tmp_path / "back.img"))
    print(f"max RSS: baseline {baseline:.0f} MiB, 256 MiB write {written:.0f} MiB, read {read:.0f} MiB")
    assert written < baseline + 64, (baseline, written)
    assert read < baseline + 64, (baseline, read)
    assert (tmp_path / "back.img").stat().st_size == 256 * MiB


# -- numbers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "0", "101", "lots"])
def test_reserved_percent_out_of_range_on_candidates(capsys, lab, value):
    assert_one_line_error(run(capsys, lab, "candidates", "SiteA/db", "--remote", "SiteB",
                              f"--reserved-percent={value}"),
                          "arvmInvalidRepositoryCapacity", "--reserved-percent", value)


@pytest.mark.parametrize("option", ["--reserved-percent", "--secondary-reserved-percent"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_reserved_percent_out_of_range_on_pair_add(capsys, lab, option, value):
    assert_one_line_error(run(capsys, lab, "pair", "add", "--group", "gx", "--primary", "SiteA/db",
                              "--secondary", "SiteB/db_dr", f"{option}={value}"),
                          "arvmInvalidRepositoryCapacity", option, value)


@pytest.mark.parametrize("value", ["999999999999999999999", "-1", "0", "ten"])
def test_events_limit_out_of_range(capsys, lab, value):
    assert_one_line_error(run(capsys, lab, "events", f"--limit={value}"), "invalidLimit", "--limit", value)


def test_events_limit_in_range_still_works(capsys, lab):
    code, out, err = run(capsys, lab, "events", "--limit", "3")
    assert code == 0, err
    assert len(json.loads(out)) <= 3


def test_unknown_controller_refused_over_rest(capsys, lab):
    """The daemon refuses a controller the array does not have, naming it, and logs nothing."""
    before = json.loads(run(capsys, lab, "events", "--limit", "10000")[1])
    code, out, err = run(capsys, lab, "lab", "controller", "reset", "SiteA/Z")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.strip().endswith("[controllerNotFound]"), err
    after = json.loads(run(capsys, lab, "events", "--limit", "10000")[1])
    assert after == before


def test_unknown_controller_refused_by_the_engine(client):
    before = client.events("SiteA", 10000)
    for action in (client.controller_reset, client.controller_restore):
        with pytest.raises(MirrorError) as info:
            action("SiteA", "Z")
        assert info.value.code == "controllerNotFound"
        assert "controllers are A, B" in info.value.message
    assert client.events("SiteA", 10000) == before
    assert "SiteA/Z" not in client.lab_faults()["offline_controllers"]
    client.controller_reset("SiteA", "B")  # a real one still works
    assert any(e.code == "controllerOffline" for e in client.events("SiteA", 10000))


# -- output that goes nowhere ------------------------------------------------------------------------

def _closed_stdout(*args) -> subprocess.CompletedProcess:
    """Run mirrorctl with a stdout pipe whose reader is already gone (``| head -0``)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", "core.cli.main", *args], env=env, stdout=w,
                              stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(w)


@pytest.mark.parametrize("args", [["--json", "status"], ["status"], ["--json", "events"],
                                  ["volume", "read", "SiteA/logs", "--offset", "0", "--length", "1MiB"]])
def test_closed_pipe_is_quiet(lab, args):
    result = _closed_stdout("--home", str(lab), *args)
    assert result.stderr == b"", result.stderr.decode()
    assert result.returncode in (0, 141)


def test_closed_pipe_without_a_lab_is_quiet(tmp_path):
    result = _closed_stdout("--home", str(tmp_path / "lab"), "--json", "lab", "init")
    assert result.stderr == b"", result.stderr.decode()
    assert result.returncode in (0, 141)


def test_head_of_status(lab):
    shell = f"{sys.executable} -m core.cli.main --home {lab} --json status | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.decode().strip() == "{"
    assert result.stderr == b"", result.stderr.decode()


# -- ports -------------------------------------------------------------------------------------------

def test_nbd_port_out_of_range_refused(tmp_path):
    home = tmp_path / "lab"
    assert mirrorctl("--home", str(home), "lab", "init", capture_output=True).returncode == 0
    result = mirrorctl("array", "serve", "--data-dir", str(home / "arrays" / "SiteA"), "--nbd-port", "99999",
                       capture_output=True)
    err = result.stderr.decode().strip()
    assert result.returncode == 1, err
    assert len(err.splitlines()) == 1 and err.startswith("mirrorctl: error: ")
    assert err.endswith("[invalidPort]") and "99999" in err
