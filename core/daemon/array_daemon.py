"""One storage array as a service: ``mirrorctl array serve`` (SPEC §1, §3).

A storage array is a separate system that stays up. The daemon opens exactly one
array's data directory (holding its lock for as long as it runs) and serves, on the
addresses it is given: the REST API (HTTPS, the array's own self-signed certificate or
the administrator's), the mirroring channel (TLS between daemons, the array passwords'
challenge-response on top), and NBD for hosts. Remote arrays are reached only over the
channel, at the addresses of the array's remote-array entries.

Once everything listens it writes ``DATA_DIR/daemon.json`` (what clients and the lab
supervisor need: pid, addresses, certificate fingerprint); a clean stop removes it.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import signal
import ssl
from datetime import datetime, timezone
from pathlib import Path

from core.datapath.extents import create_atomically
from core.engine import Engine
from core.errors import MirrorError, NotFound
from core.store.database import read_array_name
from core.replication.channels import advertised_host
from core.rest import tls
from core.rest.app import start_rest, stop_rest

log = logging.getLogger(__name__)
DAEMON_FILE = "daemon.json"


def array_name(data_dir: Path) -> str:
    """The array's name, read without opening (and locking) its database; a damaged one is one line."""
    db = Path(data_dir) / "config.db"
    if not db.exists():
        raise NotFound(f"{data_dir} holds no storage array (no config.db); create one with 'mirrorctl lab init' "
                       "or give the array's data directory", code="arrayNotFound")
    return read_array_name(db)


def peer_context() -> ssl.SSLContext:
    """TLS for dialing a remote array's channel.

    The remote's identity is proven by the channel's challenge-response on the array
    passwords (core/channel/auth.py), which TLS cannot replace; TLS adds
    confidentiality of the data and configuration crossing the link.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # not create_default_context: no CA store to load
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ArrayDaemon:
    """Builds and owns one array's engine, REST API and listeners; ``run()`` serves until stopped."""

    def __init__(self, data_dir: Path, listen: str = "127.0.0.1", rest_port: int = 8443, channel_port: int = 0,
                 nbd_port: int | None = 0, cert: Path | None = None, key: Path | None = None,
                 channel_tls: bool = True):
        self.data_dir = Path(data_dir).resolve()
        self.listen = listen
        self.rest_port = rest_port
        self.channel_port = channel_port
        self.nbd_port = nbd_port
        self.cert, self.key = cert, key
        self.channel_tls = channel_tls
        self.name = array_name(self.data_dir)
        self.engine: Engine | None = None
        self.rest_url = ""
        self._runner = None
        self._stop = asyncio.Event()

    @property
    def info_path(self) -> Path:
        return self.data_dir / DAEMON_FILE

    async def start(self) -> dict:
        if (self.cert is None) != (self.key is None):
            raise MirrorError("give both --cert and --key, or neither (a self-signed certificate is made)",
                              code="invalidCertificate")
        if self.cert is None:
            self.cert, self.key = tls.ensure_certificate(self.data_dir, self.name)
        server_ctx = tls.server_context(self.cert, self.key)
        channel_ctx = tls.server_context(self.cert, self.key) if self.channel_tls else None
        self.engine = Engine(self.data_dir, purpose=f"array daemon (pid {os.getpid()})", nbd_port=self.nbd_port,
                             listen=self.listen, channel_port=self.channel_port,
                             channel_ssl=channel_ctx, peer_ssl=peer_context() if self.channel_tls else None)
        try:
            await self.engine.start()
            self._runner, port = await start_rest(self.engine, self.name, self.listen, self.rest_port, server_ctx)
        except BaseException as e:
            await self.engine.stop()
            if isinstance(e, OSError) and e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
                raise MirrorError(f"array {self.name} cannot listen: {e.strerror or e}; stop what uses that port "
                                  "or choose another (--rest-port, --channel-port, --nbd-port; 0 picks a free one)",
                                  code="portInUse" if e.errno == errno.EADDRINUSE else "cannotListen") from None
            raise
        host = advertised_host(self.listen)
        self.rest_url = f"https://{host}:{port}"
        info = self.describe()
        create_atomically(self.info_path, json.dumps(info, indent=2).encode(), durable=False)
        log.info("array %s serving: REST %s, channel %s, NBD %s", self.name, info["restUrl"],
                 info["channelAddress"], info["nbdAddress"] or "off")
        return info

    def describe(self) -> dict:
        array = self.engine.get_array(self.name)
        nbd = self.engine.nbd.servers.get(self.name)
        return {"name": self.name, "wwn": array.row.wwn, "pid": os.getpid(), "restUrl": self.rest_url,
                "channelAddress": array.channel_address,
                "nbdAddress": f"{advertised_host(self.listen)}:{nbd.port}" if nbd is not None else "",
                "certificateSha256": tls.fingerprint_sha256(Path(self.cert).read_bytes()),
                "certFile": str(self.cert), "channelTls": self.channel_tls,
                "startedAt": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    async def stop(self) -> None:
        """Stop serving: REST first (no new commands), then the engine (syncs, sessions, files, lock)."""
        try:
            if self._runner is not None:
                await stop_rest(self._runner)
                self._runner = None
        finally:
            if self.engine is not None:
                await self.engine.stop()
                self.engine = None
            self.info_path.unlink(missing_ok=True)
        log.info("array %s stopped", self.name)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()
