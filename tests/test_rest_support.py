"""Helpers shared by the REST tests: the real app on loopback HTTPS, and a blocking client of it.

No tests here. The server is the lab's SiteA array daemon (its REST app over HTTPS with
the array's own certificate); the client verifies that certificate (never
``verify=False``) and logs in with basic auth, as any Web Services script does.
"""
from __future__ import annotations

import base64
import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.lab import LAB_PASSWORDS
from test_replication_support import wait_for  # noqa: F401  (the REST tests' shared helper)

PASSWORD = LAB_PASSWORDS["SiteA"]
API = "/devmgr/v2/storage-systems/1"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def error(self) -> dict:
        """An error body, checked for the Web Services shape and for the one-line rule."""
        data = self.json()
        assert set(data) == {"errorMessage", "localizedMessage", "retcode", "codeType"}, data
        assert "\n" not in data["errorMessage"] and "Traceback" not in data["errorMessage"]
        return data


class Rest:
    """Blocking HTTPS calls to the app; paths without a leading ``/`` are under the storage system."""

    def __init__(self, port: int, cafile: Path, runner=None, password: str = PASSWORD):
        self.port = port
        self.cafile = cafile
        self.runner = runner
        self.password = password
        self.tls = ssl.create_default_context(cafile=str(cafile))

    def url(self, path: str) -> str:
        return path if path.startswith("/") else f"{API}/{path}" if path else API

    def connect(self, timeout: float = 30) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("localhost", self.port, context=self.tls, timeout=timeout)

    def request(self, method: str, path: str, body=None, *, raw: bytes | None = None, headers: dict | None = None,
                auth: str | None = "default") -> Reply:
        hdrs = dict(headers or {})
        if auth == "default":
            auth = basic("admin", self.password)
        if auth:
            hdrs["Authorization"] = auth
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn = self.connect()
        try:
            conn.request(method, self.url(path), body=data, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw) -> Reply:
        return self.request("POST", path, body, **kw)

    def delete(self, path: str, **kw) -> Reply:
        return self.request("DELETE", path, **kw)

    def ok(self, method: str, path: str, body=None, status: int | None = None, **kw):
        """The JSON of a call that must succeed (2xx, or exactly ``status``)."""
        r = self.request(method, path, body, **kw)
        assert (r.status == status) if status else 200 <= r.status < 300, (r.status, r.body[:500])
        return r.json() if r.body else None


def rest_of(client, array: str) -> Rest:
    """The lab array's daemon: its REST API over HTTPS on its loopback port, its own certificate."""
    daemon = client.engine.daemon(array)
    return Rest(int(daemon.rest_url.rpartition(":")[2]), Path(daemon.cert), daemon._runner,
                password=LAB_PASSWORDS[array])


@pytest.fixture
def rest(client) -> Rest:
    """SiteA's array daemon in the lab, over HTTPS."""
    return rest_of(client, "SiteA")


def make_mirror(client, rest: Rest, group: str = "G", size: str = "4MiB") -> dict:
    """Volumes SiteA/v and SiteB/v_dr, a manual group and their pair made over REST, first sync committed."""
    client.create_volume("SiteA/v", size)
    client.create_volume("SiteB/v_dr", size)
    rest.ok("POST", "async-mirrors", {"name": group, "secondaryArrayId": "SiteB", "manualSync": True}, status=201)
    rest.ok("POST", f"async-mirrors/{group}/pairs", {"primaryVolumeRef": "v", "secondaryVolumeRef": "v_dr"},
            status=201)
    return rest.ok("POST", f"async-mirrors/{group}/sync?wait=true", {})
