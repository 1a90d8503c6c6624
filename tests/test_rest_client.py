"""The REST client against a tiny HTTPS array stand-in: pinning, trust, auth, error mapping, unreachable arrays."""
from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import socket
import ssl
import threading

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.client import ArrayClient, BlockingArrayClient
from core.errors import CommunicationError, MirrorError, NotFound

PASSWORD = "s3cret-SiteA"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, as an array daemon makes one: (cert file, key file, sha256)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SiteA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    d = tmp_path_factory.mktemp("cert")
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    sha = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return d / "cert.pem", d / "key.pem", sha


def _app() -> web.Application:
    async def about(request):
        return web.json_response({"version": "test", "runningAsProxy": False, "systemId": "1",
                                  "arrayName": "SiteA", "worldWideName": "600a0980" + "0" * 24})

    @web.middleware
    async def basic_auth(request, handler):
        if request.path.startswith("/devmgr/v2/"):
            import base64

            expected = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.json_response({"errorMessage": "Authentication failed", "localizedMessage": "",
                                          "retcode": "authenticationFailed", "codeType": "systemerror"}, status=401)
        return await handler(request)

    async def groups(request):
        return web.json_response([{"label": "g1", "query": dict(request.query)}])

    async def group(request):
        return web.json_response({"errorMessage": f"no mirror consistency group '{request.match_info['name']}'",
                                  "localizedMessage": "", "retcode": "arvmGroupNotFound", "codeType": "symbol"},
                                 status=404)

    async def create(request):
        body = await request.json()
        if not body.get("name"):
            return web.json_response({"errorMessage": "a group needs a name", "localizedMessage": "",
                                      "retcode": "invalidLabel", "codeType": "symbol"}, status=422)
        return web.json_response({"label": body["name"]}, status=201)

    async def delete(request):
        return web.Response(status=204)

    stored: dict[str, bytes] = {}

    async def blocks(request):
        if request.method == "PUT":
            stored[request.match_info["name"]] = await request.read()
            return web.Response(status=204)
        return web.Response(body=stored.get(request.match_info["name"], b""),
                            content_type="application/octet-stream")

    async def teapot(request):
        return web.Response(status=500, text="internal trouble\nmore")

    app = web.Application(middlewares=[basic_auth])
    root = "/devmgr/v2/storage-systems/1/"
    app.router.add_get("/devmgr/utils/about", about)
    app.router.add_get(root + "async-mirrors", groups)
    app.router.add_get(root + "async-mirrors/{name}", group)
    app.router.add_post(root + "async-mirrors", create)
    app.router.add_delete(root + "async-mirrors/{name}", delete)
    app.router.add_route("*", root + "volumes/{name}/blocks", blocks)
    app.router.add_get(root + "broken", teapot)
    return app


class Server:
    """The stand-in served over HTTPS on 127.0.0.1 in the running loop."""

    def __init__(self, certificate):
        self.cert, self.key, self.sha = certificate

    async def __aenter__(self):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        self.runner = web.AppRunner(_app())
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        self.url = "https://127.0.0.1:%d" % site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


def test_pinned_fingerprint_calls_and_error_mapping(certificate):
    async def scenario():
        async with Server(certificate) as srv:
            colons = ":".join(srv.sha[i:i + 2] for i in range(0, 64, 2)).upper()
            async with ArrayClient(srv.url, PASSWORD, fingerprint=colons) as client:
                assert (await client.about())["arrayName"] == "SiteA"
                assert await client.get("async-mirrors", verbose=True) == [{"label": "g1",
                                                                            "query": {"verbose": "true"}}]
                assert await client.post("async-mirrors", {"name": "g2"}) == {"label": "g2"}
                assert await client.delete("async-mirrors/g2") is None
                await client.put_bytes("volumes/db/blocks", b"\x00\x01data")
                assert await client.get_bytes("volumes/db/blocks") == b"\x00\x01data"
                with pytest.raises(NotFound) as e:
                    await client.get("async-mirrors/nope")
                assert e.value.code == "arvmGroupNotFound" and "nope" in e.value.message
                with pytest.raises(MirrorError) as e:
                    await client.post("async-mirrors", {})
                assert e.value.code == "invalidLabel" and e.value.message == "a group needs a name"
                with pytest.raises(MirrorError) as e:
                    await client.get("broken")
                assert e.value.code == "http500" and "internal trouble" in e.value.message
                assert "\n" not in e.value.message

    asyncio.run(scenario())


def test_wrong_fingerprint_is_refused_naming_both(certificate):
    async def scenario():
        async with Server(certificate) as srv:
            wrong = "ab" * 32
            async with ArrayClient(srv.url, PASSWORD, fingerprint=wrong) as client:
                with pytest.raises(MirrorError) as e:
                    await client.about()
            assert e.value.code == "certificateMismatch"
            assert wrong in e.value.message and srv.sha in e.value.message

    asyncio.run(scenario())


def test_certificate_file_is_trusted_and_a_stranger_is_not(certificate, tmp_path):
    async def scenario():
        async with Server(certificate) as srv:
            async with ArrayClient(srv.url, PASSWORD, cafile=str(srv.cert)) as client:
                assert (await client.get("async-mirrors"))[0]["label"] == "g1"
            async with ArrayClient(srv.url, PASSWORD) as client:  # system CAs only
                with pytest.raises(MirrorError) as e:
                    await client.about()
            assert e.value.code == "certificateUntrusted"

    asyncio.run(scenario())


def test_wrong_password_is_a_clear_error(certificate):
    async def scenario():
        async with Server(certificate) as srv:
            async with ArrayClient(srv.url, "guess", fingerprint=srv.sha) as client:
                assert (await client.about())["arrayName"] == "SiteA"  # about needs no password
                with pytest.raises(MirrorError) as e:
                    await client.get("async-mirrors")
            assert e.value.code == "authenticationFailed" and e.value.http_status == 401
            assert "refused the password" in e.value.message and srv.url in e.value.message

    asyncio.run(scenario())


def test_unreachable_array_is_one_line_naming_the_url():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"https://127.0.0.1:{port}"

    async def scenario():
        async with ArrayClient(url, PASSWORD, fingerprint="00" * 32, timeout=5) as client:
            with pytest.raises(CommunicationError) as e:
                await client.about()
        return e.value

    err = asyncio.run(scenario())
    assert err.code == "arrayUnreachable" and url in err.message and "\n" not in err.message
    with pytest.raises(MirrorError, match="SHA-256"):
        ArrayClient(url, PASSWORD, fingerprint="not-hex")


def test_blocking_client_keeps_one_session(certificate):
    ready = threading.Event()
    state: dict = {}

    def serve():
        async def main():
            async with Server(certificate) as srv:
                state["url"], state["stop"] = srv.url, asyncio.Event()
                state["loop"] = asyncio.get_running_loop()
                ready.set()
                await state["stop"].wait()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        with BlockingArrayClient(state["url"], PASSWORD, fingerprint=certificate[2]) as client:
            assert client.about()["arrayName"] == "SiteA"
            assert client.post("async-mirrors", {"name": "g3"}) == {"label": "g3"}
            with pytest.raises(NotFound):
                client.get("async-mirrors/nope")
        with pytest.raises(MirrorError, match="closed"):
            client.about()
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
