"""Malformed mirroring-channel frames, before and after login, at both arrays' channel ports.

Each case connects to an array daemon's channel port (TLS, as the arrays speak it)
from its own loopback address (127.0.0.x, so the login throttle of one case does
not slow the next nor the real arrays), logs in first when the case is about an
authenticated session (with the array's password, as a made-up array), sends its
bytes and reads the answer. A case survives when the answer is the expected kind
(refused: an ERROR frame or the connection closed; answered: a RESPONSE with an
error; quiet: anything but a crash), the daemon still answers REST, and its log
shows no traceback. After every 25 cases and at the end the real mirror must still
sync, verify identical, and hold every acknowledged write.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import ssl
import struct
import time
from dataclasses import dataclass

from core.channel import auth
from core.channel import frames as F
from core.channel.frames import FrameType as T
from core.lab.passwords import lab_passwords

from adversary.lab import PRIMARY, SECONDARY, Lab
from adversary.model import WriteLog
from adversary.outcome import Outcome

ANSWER_TIMEOUT = 2.0
CHECK_EVERY = 25


def hdr(ftype: int, length: int, crc: int = 0, major: int = F.PROTOCOL_MAJOR, magic: bytes = F.MAGIC,
        flags: int = 0) -> bytes:
    return F.HEADER.pack(magic, major, F.PROTOCOL_MINOR, ftype, flags, length, crc)


def raw(ftype: int, payload: bytes, flags: int = 0) -> bytes:
    return F.raw_frame(ftype, payload, flags)


def js(ftype: int, obj) -> bytes:
    return raw(ftype, json.dumps(obj).encode())


def hello(**over) -> bytes:
    return js(T.HELLO, {"name": "Mallory", "remote": "?", "nonce": os.urandom(32).hex(), **over})


def region(meta: bytes, body: bytes = b"", flags: int = 0) -> bytes:
    return raw(T.REGION, meta + body, flags)


def regions(tlen: int, vlen: int, count: int, rest: bytes) -> bytes:
    return raw(T.REGIONS, F.REGIONS.pack(tlen, vlen, count) + rest)


@dataclass(frozen=True)
class Case:
    name: str
    stage: str    # pre: before login; post: on a logged-in session
    data: bytes
    expect: str   # refused | answered | quiet
    tls: bool = True


def cases() -> list[Case]:
    """Every malformed message, named; 81 of them."""
    big = F.PRE_AUTH_MAX_PAYLOAD + 1
    pre = [
        Case("an HTTP request", "pre", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "refused"),
        Case("16 random bytes", "pre", os.urandom(16), "refused"),
        Case("1000 random bytes", "pre", os.urandom(1000), "refused"),
        Case("100 KiB of random bytes", "pre", os.urandom(100 << 10), "refused"),
        Case("plain TCP to the TLS port", "pre", hello(), "quiet", tls=False),
        Case("bad magic", "pre", hdr(T.HELLO, 0, magic=b"XXXX"), "refused"),
        Case("major version 0", "pre", hdr(T.HELLO, 0, major=0), "refused"),
        Case("major version 2", "pre", hdr(T.HELLO, 0, major=2), "refused"),
        Case("major version 255", "pre", hdr(T.HELLO, 0, major=255), "refused"),
        Case("frame type 0", "pre", hdr(0, 0), "refused"),
        Case("frame type 99", "pre", hdr(99, 0), "refused"),
        Case("frame type 255", "pre", hdr(255, 0), "refused"),
        Case("64 KiB + 1 before login", "pre", hdr(T.HELLO, big), "refused"),
        Case("1 MiB before login", "pre", hdr(T.HELLO, 1 << 20), "refused"),
        Case("4 GiB - 1 before login", "pre", hdr(T.HELLO, 0xFFFFFFFF), "refused"),
        Case("64 KiB + 1 sent in full", "pre", hdr(T.HELLO, big) + b" " * big, "refused"),
        Case("hello with a bad CRC", "pre", hdr(T.HELLO, 2, crc=1) + b"{}", "refused"),
        Case("hello not JSON", "pre", raw(T.HELLO, b"\xff\xfe not json"), "refused"),
        Case("hello a JSON list", "pre", js(T.HELLO, [1, 2]), "refused"),
        Case("hello a JSON string", "pre", js(T.HELLO, "hi"), "refused"),
        Case("hello empty", "pre", raw(T.HELLO, b""), "refused"),
        Case("hello without a nonce", "pre", js(T.HELLO, {"name": "Mallory"}), "refused"),
        Case("hello nonce not hex", "pre", hello(nonce="zz" * 32), "refused"),
        Case("hello nonce 31 bytes", "pre", hello(nonce="00" * 31), "refused"),
        Case("hello nonce a number", "pre", hello(nonce=12345), "refused"),
        Case("hello name 60 KB", "pre", hello(name="M" * 60000), "quiet"),
        Case("hello name a dict", "pre", hello(name={"a": 1}), "quiet"),
        Case("auth first", "pre", js(T.AUTH, {"proof": "00" * 32}), "refused"),
        Case("region first", "pre", region(F.REGION.pack(0, 4, 1, 1) + b"tv", b"abcd"), "refused"),
        Case("request first", "pre", js(T.REQUEST, {"id": 1, "method": "array.describe"}), "refused"),
        Case("welcome first", "pre", js(T.WELCOME, {"proof": "00"}), "refused"),
        Case("challenge first", "pre", js(T.CHALLENGE, {"name": "x"}), "refused"),
        Case("ping first", "pre", raw(T.PING, struct.pack("!Q", 1)), "refused"),
        Case("error first", "pre", js(T.ERROR, {"code": "x", "message": "y"}), "refused"),
        Case("close first", "pre", raw(T.CLOSE, b""), "refused"),
        Case("8 bytes of a header", "pre", hdr(T.HELLO, 10)[:8], "quiet"),
        Case("a header without its payload", "pre", hdr(T.HELLO, 100), "quiet"),
        Case("hello then hello", "pre", hello() + hello(), "refused"),
        Case("hello then auth not hex", "pre", hello() + js(T.AUTH, {"proof": "nothex"}), "refused"),
        Case("hello then a wrong proof", "pre", hello() + js(T.AUTH, {"proof": os.urandom(32).hex()}), "refused"),
        Case("hello then auth not JSON", "pre", hello() + raw(T.AUTH, b"[[["), "refused"),
        Case("hello then garbage", "pre", hello() + os.urandom(64), "refused"),
    ]
    meta = F.REGION.pack(0, 4, 2, 2) + b"tx" + b"vv"
    post = [
        Case("bad magic after login", "post", hdr(T.PING, 8, magic=b"HTTP"), "refused"),
        Case("major 2 after login", "post", hdr(T.PING, 0, major=2), "refused"),
        Case("type 200 after login", "post", hdr(200, 0), "refused"),
        Case("4 GiB - 1 after login", "post", hdr(T.REQUEST, 0xFFFFFFFF), "refused"),
        Case("request with a bad CRC", "post", hdr(T.REQUEST, 2, crc=7) + b"{}", "refused"),
        Case("request not JSON", "post", raw(T.REQUEST, b"\x00\x01"), "refused"),
        Case("request a JSON list", "post", js(T.REQUEST, [1]), "refused"),
        Case("request params a list", "post", js(T.REQUEST, {"id": 1, "method": "array.describe", "params": [1]}),
             "answered"),
        Case("request unknown method", "post", js(T.REQUEST, {"id": 2, "method": "format.everything"}), "answered"),
        Case("request without an id", "post", js(T.REQUEST, {"method": "nope"}), "answered"),
        Case("request id 2**80", "post", js(T.REQUEST, {"id": 2 ** 80, "method": "nope"}), "answered"),
        Case("request method null", "post", js(T.REQUEST, {"id": 3, "method": None}), "answered"),
        Case("commit with no parameters", "post", js(T.REQUEST, {"id": 4, "method": "transfer.commit"}), "answered"),
        Case("commit with wrong types", "post", js(T.REQUEST, {"id": 5, "method": "transfer.commit", "params": {
            "group": 5, "transfer": [], "volumes": "x", "recovery_point": 1}}), "answered"),
        Case("begin with junk", "post", js(T.REQUEST, {"id": 6, "method": "transfer.begin", "params": {
            "group": "ADV", "transfer": None, "volumes": {"a": 1}}}), "answered"),
        Case("digest of a huge range", "post", js(T.REQUEST, {"id": 7, "method": "volume.digest", "params": {
            "volume": "../../etc/passwd", "size": -1, "exclude": "x"}}), "answered"),
        Case("region shorter than its header", "post", raw(T.REGION, b"\x00" * 5), "refused"),
        Case("region names longer than the frame", "post", region(F.REGION.pack(0, 4, 60000, 60000)), "refused"),
        Case("region names not UTF-8", "post", region(F.REGION.pack(0, 4, 2, 2) + b"\xff\xfe\xff\xfe", b"abcd"),
             "refused"),
        Case("zero region with a body", "post", region(meta, b"abcd", F.Flag.ZERO), "refused"),
        Case("zstd region that is not zstd", "post", region(meta, b"garbage!", F.Flag.ZSTD), "refused"),
        Case("region shorter than announced", "post", region(F.REGION.pack(0, 400, 2, 2) + b"txvv", b"ab"), "refused"),
        Case("region with a bad CRC", "post", hdr(T.REGION, len(meta) + 4, crc=9) + meta + b"abcd", "refused"),
        Case("region of no transfer", "post", region(meta, b"abcd"), "quiet"),
        Case("region at offset 2**63", "post", region(F.REGION.pack(1 << 63, 4, 2, 2) + b"txvv", b"abcd"), "quiet"),
        Case("regions shorter than their header", "post", raw(T.REGIONS, b"\x00\x01"), "refused"),
        Case("regions with bad header lengths", "post", regions(50000, 50000, 3, b""), "refused"),
        Case("regions whose bodies do not add up", "post",
             regions(2, 2, 1, b"txvv" + F.SEGMENT.pack(0, 4, 0, 99) + b"abcd"), "refused"),
        Case("regions with 65535 segments", "post", regions(2, 2, 65535, b"txvv"), "refused"),
        Case("regions zstd garbage", "post",
             regions(2, 2, 1, b"txvv" + F.SEGMENT.pack(0, 4, F.Flag.ZSTD, 4) + b"abcd"), "refused"),
        Case("pong of 3 bytes", "post", raw(T.PONG, b"abc"), "refused"),
        Case("ping of 0 bytes", "post", raw(T.PING, b""), "quiet"),
        Case("discard with a bad CRC", "post", hdr(T.DISCARD, 4, crc=3) + b"abcd", "refused"),
        Case("response not JSON", "post", raw(T.RESPONSE, b"nope"), "refused"),
        Case("response to no request", "post", js(T.RESPONSE, {"id": 999, "result": {}}), "quiet"),
        Case("region-failed not JSON", "post", raw(T.REGION_FAILED, b"nope"), "refused"),
        Case("error not JSON", "post", raw(T.ERROR, b"nope"), "refused"),
        Case("hello after login", "post", hello(), "refused"),
        Case("auth after login", "post", js(T.AUTH, {"proof": "00"}), "refused"),
    ]
    return pre + post


def _client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # as the arrays: the login proves who is who
    return ctx


async def _attempt(case: Case, address: str, server_name: str, password: str, source: str) -> str:
    """Send the case; returns the reaction: ``error <code>``, ``response error <code>``, ``closed``, ``silent``."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        host, int(port), ssl=_client_tls() if case.tls else None, local_addr=(source, 0)), 10)
    try:
        if case.stage == "post":
            await asyncio.wait_for(auth.client_handshake(reader, writer, "Mallory", server_name, password,
                                                         f"{server_name} at {address}"), 10)
        writer.write(case.data)
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()
        try:
            while True:
                ftype, _, payload = await asyncio.wait_for(F.read_frame(reader, "server"), ANSWER_TIMEOUT)
                if ftype in (T.ERROR, T.RESPONSE, T.REGION_FAILED):
                    msg = json.loads(payload)
                    err = msg.get("error", msg) if ftype == T.RESPONSE else msg
                    kind = {T.ERROR: "error", T.RESPONSE: "response", T.REGION_FAILED: "region-failed"}[ftype]
                    return f"{kind} {err.get('code') if isinstance(err, dict) and 'code' in err else 'ok'}"
        except TimeoutError:  # before OSError: TimeoutError is one
            return "silent"
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            return "closed"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _acceptable(case: Case, reaction: str) -> bool:
    if case.expect == "refused":
        return reaction == "closed" or reaction.startswith("error ")
    if case.expect == "answered":
        return reaction.startswith("response ") and not reaction.endswith(" ok")
    return True


def run(lab: Lab, wlog: WriteLog, count: int, rng: random.Random, log=print) -> Outcome:
    out = Outcome("frames")
    t0 = time.monotonic()
    table = cases()
    chosen = [table[round(i * len(table) / count) % len(table)] if count < len(table) else table[i % len(table)]
              for i in range(count)]
    passwords = lab_passwords(lab.home)
    tracebacks = lab.daemon_tracebacks()
    reactions: dict[str, int] = {}
    for i, case in enumerate(chosen):
        out.tried += 1
        target = (SECONDARY, PRIMARY)[i % 2]
        address = lab.daemon(target)["channelAddress"]
        source = f"127.0.{1 + (i // 250) % 250}.{2 + i % 250}"
        try:
            reaction = asyncio.run(_attempt(case, address, target, passwords[target], source))
        except Exception as e:  # the connection or the login itself failed: the daemon may be down
            reaction = f"harness could not send: {type(e).__name__}: {e}"
        reactions[reaction.split(" ")[0]] = reactions.get(reaction.split(" ")[0], 0) + 1
        now = lab.daemon_tracebacks()
        alive = lab.alive(target)
        ok = alive and now == tracebacks and _acceptable(case, reaction)
        tracebacks = now
        if ok:
            out.survived += 1
        else:
            out.fail(f"{case.name} ({case.stage}, {target}): {reaction}"
                     f"{'' if alive else '; the daemon is down'}{'' if now == tracebacks else '; a traceback'}")
        log(f"  {case.stage:<4} {case.name} -> {target}: {reaction}{'' if ok else ' FAILED'}")
        if (i + 1) % CHECK_EVERY == 0 or i + 1 == len(chosen):
            _mirror_still_works(lab, wlog, out)
    out.notes["distinctCases"] = len(set(chosen))
    out.notes["reactions"] = reactions
    out.seconds = time.monotonic() - t0
    return out


def _mirror_still_works(lab: Lab, wlog: WriteLog, out: Outcome) -> None:
    """Host writes, a sync, verify, and every acknowledged write on the secondary."""
    from adversary.lab import HostWriter

    writer = HostWriter(lab, wlog, random.Random(wlog.issued), 32 << 20, limit=16)
    writer.start()
    writer.join(60)
    lab.sync_committed()
    images = lab.secondary_images()
    span = wlog.admissible(images)
    if span is None or not span[0] <= wlog.acked <= span[1]:
        out.lost += 1
        out.fail(f"after malformed frames the secondary lacks acknowledged writes: "
                 f"{wlog.blocks_missing(images, wlog.acked)[:3]}")
    code, report = lab.verify()
    if code != 0:
        out.fail(f"after malformed frames mirrorctl verify exited {code}: {report}")
