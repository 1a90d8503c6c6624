"""Array passwords and the channel's challenge-response (SPEC §3).

An array stores only ``pbkdf2_hmac('sha256', password, salt, 100_000)`` and the
salt. The client, who knows the remote array's password (the administrator typed
it when adding the remote), derives the same key from the salt the server sends.
Both sides then prove knowledge of the key with HMAC-SHA256 over fresh nonces
from both ends and both array names, so neither the password nor the hash ever
crosses the wire, a recorded exchange cannot be replayed, and the server proves
itself back (mutual authentication: a client never sends data to an impostor).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from core.channel import frames
from core.channel.frames import ChannelError, FrameType
from core.errors import CommunicationError

PBKDF2_ITERATIONS = 100_000
SALT_BYTES = 16
NONCE_BYTES = 32
AUTH_FAILED = "arvmRemoteAuthenticationFailed"
LOGIN_THROTTLED = "arvmChannelLoginThrottled"


def new_salt() -> bytes:
    """A fresh random salt for an array's password."""
    return secrets.token_bytes(SALT_BYTES)


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def password_hash(password: str, salt: bytes) -> bytes:
    """What an array stores instead of its password (also the channel key)."""
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)


def verify_password(password: str, salt: bytes, stored_hash: bytes) -> bool:
    """True when ``password`` is the one ``stored_hash`` was made from (constant time)."""
    return hmac.compare_digest(password_hash(password, salt), stored_hash)


def _transcript(server_nonce: bytes, client_nonce: bytes, client_name: str,
                server_name: str) -> bytes:
    # Names are length-prefixed so ("ab","c") and ("a","bc") cannot collide.
    c, s = client_name.encode(), server_name.encode()
    return (server_nonce + client_nonce + len(c).to_bytes(2, "big") + c
            + len(s).to_bytes(2, "big") + s)


def client_proof(key: bytes, server_nonce: bytes, client_nonce: bytes,
                 client_name: str, server_name: str) -> bytes:
    """The client's answer: HMAC(key, "client" | nonces | names)."""
    msg = b"client" + _transcript(server_nonce, client_nonce, client_name, server_name)
    return hmac.new(key, msg, hashlib.sha256).digest()


def server_proof(key: bytes, server_nonce: bytes, client_nonce: bytes,
                 client_name: str, server_name: str) -> bytes:
    """The server's proof back. A different label from the client's, so a client
    proof can never be reflected as a server proof."""
    msg = b"server" + _transcript(server_nonce, client_nonce, client_name, server_name)
    return hmac.new(key, msg, hashlib.sha256).digest()


def check(expected: bytes, received: bytes) -> bool:
    return hmac.compare_digest(expected, received)


def wrong_password_seen_by_client(remote_name: str) -> CommunicationError:
    return CommunicationError(
        f"Remote array '{remote_name}' refused the mirroring channel: the password "
        f"stored for '{remote_name}' is wrong. Re-enter the password of array "
        f"'{remote_name}' in its remote array settings.", code=AUTH_FAILED)


def wrong_password_seen_by_server(local_name: str, client_name: str) -> CommunicationError:
    return CommunicationError(
        f"Array '{client_name}' tried to open a mirroring channel to '{local_name}' "
        f"with a wrong password. On '{client_name}', re-enter the password of array "
        f"'{local_name}'.", code=AUTH_FAILED)


def impostor_seen_by_client(remote_name: str) -> CommunicationError:
    return CommunicationError(
        f"The array answering as '{remote_name}' could not prove it knows the "
        f"password of '{remote_name}': it may be another array on that address, or "
        f"its password was changed. Re-enter the password of array '{remote_name}' "
        f"and check its channel addresses.", code=AUTH_FAILED)


def login_throttled(local_name: str, address: str) -> CommunicationError:
    return CommunicationError(
        f"Array '{local_name}' refused a mirroring channel login from {address}: logins from "
        f"there failed repeatedly and the next one is already waiting. Check the password "
        f"stored for '{local_name}' on the array at {address}.", code=LOGIN_THROTTLED)


# -- slowing down password guessing ---------------------------------------------
@dataclass
class _Address:
    failures: int = 0
    in_flight: int = 0
    last_failure: float = 0.0


class LoginThrottle:
    """Slows password guessing on the channel, per remote address (50 guesses took one second).

    Each failed handshake from an address counts. Up to ``free_failures`` handshakes
    (failed or running) are answered at once, so a peer whose password was just
    mistyped is not punished; after that the address gets one handshake at a time,
    answered ``first_delay * 2**k`` seconds (at most ``max_delay``) after its last
    failure, and a parallel attempt meanwhile is refused at once (``admit`` returns
    None). A good login forgets the address. At most ``max_addresses`` addresses are
    kept (the least recently seen go first), each forgotten ``forget_after`` seconds
    after its last failure: neither many addresses nor an old typo cost forever.
    ``max_delay`` stays under a client's 10 s connect timeout, so a peer whose
    password was corrected (or another array behind the same address) still gets in.
    """

    def __init__(self, free_failures: int = 3, first_delay: float = 0.25, max_delay: float = 5.0,
                 max_addresses: int = 1024, forget_after: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):
        self.free_failures = free_failures
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.max_addresses = max_addresses
        self.forget_after = forget_after
        self._clock = clock
        self._addresses: OrderedDict[str, _Address] = OrderedDict()

    def __len__(self) -> int:
        return len(self._addresses)

    def admit(self, address: str) -> float | None:
        """Seconds to wait before answering a new handshake from ``address``; None: refuse it now.

        Every admitted handshake must be ended with :meth:`finish`.
        """
        now = self._clock()
        entry = self._addresses.get(address)
        if entry is not None and not entry.in_flight and now - entry.last_failure > self.forget_after:
            entry = None
        if entry is None:
            entry = self._addresses[address] = _Address()
            while len(self._addresses) > self.max_addresses:
                self._addresses.popitem(last=False)
        self._addresses.move_to_end(address)
        if entry.failures + entry.in_flight < self.free_failures:
            entry.in_flight += 1
            return 0.0
        if entry.in_flight:
            return None
        entry.in_flight = 1
        backoff = min(self.max_delay, self.first_delay * 2 ** max(0, entry.failures - self.free_failures))
        return max(0.0, entry.last_failure + backoff - now)

    def finish(self, address: str, ok: bool | None) -> None:
        """The handshake ended: logged in (True), refused (False), or no verdict (None: closed, timed out)."""
        entry = self._addresses.get(address)
        if entry is None:
            return
        entry.in_flight = max(0, entry.in_flight - 1)
        if ok:
            entry.failures = 0
        elif ok is False:
            entry.failures += 1
            entry.last_failure = self._clock()
        if not entry.failures and not entry.in_flight:
            del self._addresses[address]


# -- the handshake over the wire ------------------------------------------------
#   client -> HELLO {name, remote, nonce}
#   server -> CHALLENGE {name, salt, nonce}
#   client -> AUTH {proof}
#   server -> WELCOME {proof}   or ERROR {code, message} and closes


def _error_from_frame(payload: bytes, peer: str, remote_name: str) -> CommunicationError:
    obj = frames.parse_json(payload, peer)
    code = str(obj.get("code") or CommunicationError.code)
    if code == AUTH_FAILED:
        return wrong_password_seen_by_client(remote_name)
    if code == "arvmChannelVersionMismatch":
        return ChannelError(str(obj.get("message")), code=code)
    return CommunicationError(f"Remote array '{remote_name}' refused the mirroring "
                              f"channel: {obj.get('message')}", code=code)


def _hex(obj: dict, key: str, peer: str, size: int | None = None) -> bytes:
    try:
        value = bytes.fromhex(obj[key])
    except (KeyError, TypeError, ValueError):
        value = None
    if value is None or (size is not None and len(value) != size):
        raise ChannelError(f"{peer} sent a malformed handshake ({key}).",
                           code="arvmChannelProtocolError")
    return value


async def client_handshake(reader, writer, local_name: str, remote_name: str,
                           password: str, peer: str) -> None:
    """Prove to the server that we know its password, and check its proof back."""
    cnonce = new_nonce()
    writer.write(frames.json_frame(FrameType.HELLO, {
        "name": local_name, "remote": remote_name, "nonce": cnonce.hex()}))
    ftype, _, payload = await frames.read_frame(reader, peer, frames.PRE_AUTH_MAX_PAYLOAD)
    if ftype == FrameType.ERROR:
        raise _error_from_frame(payload, peer, remote_name)
    if ftype != FrameType.CHALLENGE:
        raise ChannelError(f"{peer} sent {FrameType(ftype).name} instead of a challenge.")
    obj = frames.parse_json(payload, peer)
    server_name = obj.get("name")
    if server_name != remote_name:
        raise CommunicationError(
            f"The array at {peer} is '{server_name}', not '{remote_name}'. Check the "
            f"channel addresses of remote array '{remote_name}'.",
            code="arvmRemoteArrayMismatch")
    salt = _hex(obj, "salt", peer)
    snonce = _hex(obj, "nonce", peer, NONCE_BYTES)
    # PBKDF2 takes ~0.1 s on purpose: keep it off the event loop.
    key = await asyncio.get_running_loop().run_in_executor(None, password_hash, password, salt)
    writer.write(frames.json_frame(FrameType.AUTH, {
        "proof": client_proof(key, snonce, cnonce, local_name, remote_name).hex()}))
    ftype, _, payload = await frames.read_frame(reader, peer, frames.PRE_AUTH_MAX_PAYLOAD)
    if ftype == FrameType.ERROR:
        raise _error_from_frame(payload, peer, remote_name)
    if ftype != FrameType.WELCOME:
        raise ChannelError(f"{peer} sent {FrameType(ftype).name} instead of a welcome.")
    proof = _hex(frames.parse_json(payload, peer), "proof", peer)
    if not check(server_proof(key, snonce, cnonce, local_name, remote_name), proof):
        raise impostor_seen_by_client(remote_name)


async def server_handshake(reader, writer, local_name: str, salt: bytes,
                           stored_hash: bytes, peer: str) -> str:
    """Challenge a connecting array; returns its name once it proved the password.

    Raises the refusal (also sent to the client as an ERROR frame).
    """
    try:
        ftype, _, payload = await frames.read_frame(reader, peer, frames.PRE_AUTH_MAX_PAYLOAD)
        if ftype != FrameType.HELLO:
            raise ChannelError(f"{peer} sent {FrameType(ftype).name} instead of hello.")
        obj = frames.parse_json(payload, peer)
        client_name = str(obj.get("name") or "?")
        peer = f"array '{client_name}' ({peer})"
        cnonce = _hex(obj, "nonce", peer, NONCE_BYTES)
        snonce = new_nonce()
        writer.write(frames.json_frame(FrameType.CHALLENGE, {
            "name": local_name, "salt": salt.hex(), "nonce": snonce.hex()}))
        ftype, _, payload = await frames.read_frame(reader, peer, frames.PRE_AUTH_MAX_PAYLOAD)
        if ftype != FrameType.AUTH:
            raise ChannelError(f"{peer} sent {FrameType(ftype).name} instead of auth.")
        proof = _hex(frames.parse_json(payload, peer), "proof", peer)
        if not check(client_proof(stored_hash, snonce, cnonce, client_name, local_name), proof):
            raise wrong_password_seen_by_server(local_name, client_name)
    except CommunicationError as exc:
        try:
            writer.write(frames.json_frame(FrameType.ERROR, {"code": exc.code, "message": exc.message}))
        except Exception:  # the client may already be gone; the refusal stands
            pass
        raise
    writer.write(frames.json_frame(FrameType.WELCOME, {
        "proof": server_proof(stored_hash, snonce, cnonce, client_name, local_name).hex()}))
    return client_name
