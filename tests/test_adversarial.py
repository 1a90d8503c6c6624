"""The adversarial run (scripts/adversarial.py), small: kill -9, link cuts, malformed frames, bad input.

Issue "Never stuck, never falsely healthy", section *Check*. One lab for the module,
started with ``mirrorctl lab up`` as a user does; each sub-run reports tried /
survived / lost and must lose nothing and survive every try. The oracle that decides
"lost" is tested first, without a lab, on images made by hand.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from adversary import cli_inputs, frames, kill9, linkcuts  # noqa: E402
from adversary.lab import Lab  # noqa: E402
from adversary.model import BLOCK, WriteLog, block_data  # noqa: E402

MiB = 1 << 20


# -- the oracle -------------------------------------------------------------------------------------

def _write(log: WriteLog, images: dict[str, bytearray], volume: str, block: int, ack: bool = True):
    w = log.begin(volume, block)
    images[volume][block * BLOCK:(block + 1) * BLOCK] = w.data
    if ack:
        log.ack(w)
    return w


def test_oracle_finds_the_instant_a_mix_and_a_lost_write():
    log = WriteLog({"a": 4 * BLOCK, "b": 4 * BLOCK})
    live = {"a": bytearray(4 * BLOCK), "b": bytearray(4 * BLOCK)}
    assert log.admissible({k: bytes(v) for k, v in live.items()}) == (0, (1 << 62) - 1)
    _write(log, live, "a", 0)
    _write(log, live, "b", 1)
    at_2 = {k: bytes(v) for k, v in live.items()}           # a recovery point after write 2
    _write(log, live, "a", 0)                                  # write 3 rewrites a's block 0
    _write(log, live, "b", 1)                                  # write 4 rewrites b's block 1
    at_4 = {k: bytes(v) for k, v in live.items()}
    assert log.admissible(at_2) == (2, 2)
    assert log.admissible(at_4)[0] == 4
    # a: after write 3, b: before write 4 -- that is write 3 exactly, a real instant
    assert log.admissible({"a": at_4["a"], "b": at_2["b"]}) == (3, 3)
    # a: before write 3, b: after write 4 -- no instant: a mix of two recovery points
    assert log.admissible({"a": at_2["a"], "b": at_4["b"]}) is None
    # a block nobody wrote
    junk = bytearray(at_4["a"])
    junk[2 * BLOCK:2 * BLOCK + 4] = b"junk"
    assert log.admissible({"a": bytes(junk), "b": at_4["b"]}) is None
    # write 4 acknowledged but missing: the image is at most write 3
    span = log.admissible({"a": at_4["a"], "b": at_2["b"]})
    assert not span[0] <= log.acked <= span[1]
    assert log.blocks_missing({"a": at_4["a"], "b": at_2["b"]}, log.acked) == [
        "b@65536: holds write 2, expected 4"]


@pytest.mark.parametrize("landed", ["landed", "not landed", "torn"])
def test_oracle_settles_the_write_in_flight_at_a_crash(landed):
    log = WriteLog({"a": 2 * BLOCK})
    live = {"a": bytearray(2 * BLOCK)}
    _write(log, live, "a", 1)
    before = bytes(live["a"])
    w = _write(log, live, "a", 1, ack=False)
    if landed == "not landed":
        live["a"][:] = before
    elif landed == "torn":
        live["a"][BLOCK:BLOCK + 4096] = before[BLOCK:BLOCK + 4096]
    assert log.settle_inflight({"a": bytes(live["a"])}) == landed
    span = log.admissible({"a": bytes(live["a"])})
    assert span is not None and span[0] <= log.acked <= span[1]
    assert log.acked == (1 if landed == "not landed" else w.index)
    assert block_data(1, 5) == block_data(1, 5) != block_data(1, 6)


# -- against a lab ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """SiteA and SiteB daemons, group ADV mirroring two 8 MiB volumes, the link shaped to 24 MiB/s."""
    lab = Lab(tmp_path_factory.mktemp("adversarial") / "lab", capacity=8 * MiB, log=lambda *a: None)
    lab.init()
    try:
        lab.up()
        wlog = lab.setup_group()
        lab.set_link("set", "--bandwidth", "24MiB")
        yield lab, wlog
    finally:
        lab.down()


def _clean(outcome):
    assert outcome.lost == 0, outcome.failures
    assert outcome.survived == outcome.tried, outcome.failures


@pytest.mark.slow
def test_kill_9_mid_write_transfer_and_commit(lab):
    lab, wlog = lab
    outcome = kill9.run(lab, wlog, 4, random.Random(4), delta_blocks=48)
    assert outcome.tried == 4
    _clean(outcome)
    assert {s.split(" ")[0] for s in outcome.notes["seen"]} >= {"staged", "commit"}  # the points were reached


@pytest.mark.slow
def test_link_cuts_under_host_load(lab):
    lab, wlog = lab
    outcome = linkcuts.run(lab, wlog, 6, random.Random(6))
    assert outcome.tried == 6
    _clean(outcome)
    assert outcome.notes["hostWrites"] > 100 and outcome.notes["syncsCommitted"] >= 6


@pytest.mark.slow
def test_malformed_channel_frames(lab):
    lab, wlog = lab
    outcome = frames.run(lab, wlog, 20, random.Random(20))
    assert outcome.tried == 20
    _clean(outcome)
    assert outcome.notes["reactions"].get("error", 0) >= 10  # refused with a reason, not just dropped


@pytest.mark.slow
def test_bad_cli_input(lab):
    lab, _ = lab
    outcome = cli_inputs.run(lab, 20, in_process=True, skip_known=True)
    assert outcome.tried == 20 and outcome.notes["kinds"]["usage"] >= 1
    _clean(outcome)


@pytest.mark.slow
@pytest.mark.parametrize("argv", sorted(cli_inputs.FOUND_BY_THE_RUN))
def test_bad_cli_input_the_run_found(lab, argv):
    lab, _ = lab
    outcome = cli_inputs.run(lab, 1, in_process=False, only=[list(argv)])
    assert outcome.tried == 1
    _clean(outcome)
