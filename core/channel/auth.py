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

from core.channel import frames
from core.channel.frames import ChannelError, FrameType
from core.errors import CommunicationError

PBKDF2_ITERATIONS = 100_000
SALT_BYTES = 16
NONCE_BYTES = 32
AUTH_FAILED = "arvmRemoteAuthenticationFailed"


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
    ftype, _, payload = await frames.read_frame(reader, peer)
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
    ftype, _, payload = await frames.read_frame(reader, peer)
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
        ftype, _, payload = await frames.read_frame(reader, peer)
        if ftype != FrameType.HELLO:
            raise ChannelError(f"{peer} sent {FrameType(ftype).name} instead of hello.")
        obj = frames.parse_json(payload, peer)
        client_name = str(obj.get("name") or "?")
        peer = f"array '{client_name}' ({peer})"
        cnonce = _hex(obj, "nonce", peer, NONCE_BYTES)
        snonce = new_nonce()
        writer.write(frames.json_frame(FrameType.CHALLENGE, {
            "name": local_name, "salt": salt.hex(), "nonce": snonce.hex()}))
        ftype, _, payload = await frames.read_frame(reader, peer)
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
