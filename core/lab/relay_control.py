"""Driving the running lab link relay from mirrorctl: a blocking client of its control API.

The control API is plain HTTP on 127.0.0.1 with a bearer token (see
:mod:`core.lab.relay_service`); one short request per command, so the standard
library's urllib is all it takes, with no event loop in the CLI.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from core.errors import MirrorError
from core.lab.processes import is_ours, read_json
from core.lab.relay_service import RELAY_FILE


class RelayControl:
    """The relay described by ``relay.json``; every call raises MirrorError on failure."""

    def __init__(self, info: dict, timeout: float = 5.0):
        self.info = info
        self.pid = info.get("pid")
        self.url = info["controlUrl"]
        self.timeout = timeout

    @classmethod
    def find(cls, home: Path) -> "RelayControl | None":
        """The lab's relay when it runs and answers; None otherwise (no relay.json, dead or stale)."""
        home = Path(home).resolve()
        info = read_json(home / RELAY_FILE)
        if not info or "controlUrl" not in info or not is_ours(info.get("pid"), "relay", str(home)):
            return None
        control = cls(info)
        try:
            control.link()
        except MirrorError:
            return None
        return control

    def link(self) -> dict:
        return self._call("GET", "/link")

    def set_link(self, **settings) -> dict:
        """``cut=True|False``, ``bandwidth=bytes/s|None``, ``latency=seconds``: only those given change."""
        return self._call("POST", "/link", settings)

    def set_routes(self, routes: dict[str, str]) -> dict:
        return self._call("POST", "/routes", {"routes": routes})

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.info['token']}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                doc = json.loads(e.read() or b"{}")
            except ValueError:
                doc = {}
            raise MirrorError(doc.get("errorMessage") or f"the lab link relay answered HTTP {e.code}",
                              code=doc.get("retcode") or "relayError") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", e)
            raise MirrorError(f"the lab link relay at {self.url} does not answer ({reason}); "
                              "restart the lab with 'mirrorctl lab up'", code="relayUnreachable") from None
