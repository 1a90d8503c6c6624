"""The option phase of an NBD handshake (fixed newstyle): each option's replies, and the export chosen.

The connection (``core.nbd.server``) parses the option headers out of its buffer and hands
each option here; :meth:`Negotiation.option` appends the replies to the connection's
output and says what happens next: go on negotiating, close the connection, or start
transmission on the export the client chose. Nothing here reads or writes a socket.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import protocol as P
from .backend import ExportBackend

if TYPE_CHECKING:
    from .server import NbdServer

log = logging.getLogger("core.nbd.server")

CLOSE = object()  # the option ends the connection (after its replies are sent)
_ZEROES_124 = bytes(124)


def transmission_flags(backend: ExportBackend) -> int:
    flags = P.BASE_TRANSMISSION_FLAGS
    if backend.read_only:
        flags |= P.TFLAG_READ_ONLY
    return flags


class Negotiation:
    """One connection's options, from the client's flags to the export it chose."""

    def __init__(self, server: "NbdServer", peer: str, out: list[bytes], no_zeroes: bool):
        self._server, self._peer, self._out, self._no_zeroes = server, peer, out, no_zeroes

    def option(self, opt: int, data: bytes) -> ExportBackend | object | None:
        """Answer one option: None to go on, :data:`CLOSE`, or the export to transmit on."""
        if opt == P.OPT_EXPORT_NAME:
            backend = self._lookup_name(data)
            if backend is None or self.export_full(backend):
                return CLOSE  # the only answer this old option allows
            self._out.append(P.EXPORT_NAME_REPLY.pack(backend.size, transmission_flags(backend)))
            if not self._no_zeroes:
                self._out.append(_ZEROES_124)
            return backend
        if opt in (P.OPT_GO, P.OPT_INFO):
            return self._info(opt, data)
        if opt == P.OPT_LIST:
            if data:
                return self._reply(opt, P.REP_ERR_INVALID, b"NBD_OPT_LIST takes no data")
            for name in self._server.provider.names():
                raw = name.encode("utf-8")
                self._reply(opt, P.REP_SERVER, P.U32.pack(len(raw)) + raw)
            return self._reply(opt, P.REP_ACK)
        if opt == P.OPT_ABORT:
            self._reply(opt, P.REP_ACK)
            return CLOSE
        return self._reply(opt, P.REP_ERR_UNSUP)  # STRUCTURED_REPLY, STARTTLS, meta contexts...

    def export_full(self, backend: ExportBackend) -> bool:
        server = self._server
        open_ = server.connections_to(backend.name)
        if open_ < server.max_connections_per_export:
            return False
        log.warning("NBD: refused %s export '%s': %d connections to it (limit %d)",
                    self._peer, backend.name, open_, server.max_connections_per_export)
        return True

    def _reply(self, opt: int, rep: int, data: bytes = b"") -> None:
        self._out.append(P.OPTION_REPLY.pack(P.OPT_REPLY_MAGIC, opt, rep, len(data)))
        if data:
            self._out.append(data)

    def _lookup_name(self, raw: bytes) -> ExportBackend | None:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return self._server.export(name)

    def _info(self, opt: int, data: bytes) -> ExportBackend | None:
        if len(data) < 6:
            return self._reply(opt, P.REP_ERR_INVALID, b"option too short")
        (namelen,) = P.U32.unpack_from(data, 0)
        if namelen > P.MAX_NAME_LENGTH or 4 + namelen + 2 > len(data):
            return self._reply(opt, P.REP_ERR_INVALID, b"bad export name length")
        (nreq,) = P.U16.unpack_from(data, 4 + namelen)
        if len(data) != 4 + namelen + 2 + 2 * nreq:
            return self._reply(opt, P.REP_ERR_INVALID, b"bad information request count")
        requests = {P.U16.unpack_from(data, 6 + namelen + 2 * i)[0] for i in range(nreq)}
        backend = self._lookup_name(data[4:4 + namelen])
        if backend is None:
            return self._reply(opt, P.REP_ERR_UNKNOWN, b"no such export")
        if opt == P.OPT_GO and self.export_full(backend):
            limit = self._server.max_connections_per_export
            return self._reply(opt, P.REP_ERR_POLICY,
                               f"too many connections to export {backend.name} (limit {limit}); "
                               "close one and retry".encode("utf-8"))
        self._reply(opt, P.REP_INFO, P.INFO_EXPORT_BODY.pack(P.INFO_EXPORT, backend.size, transmission_flags(backend)))
        if P.INFO_NAME in requests:
            self._reply(opt, P.REP_INFO, P.U16.pack(P.INFO_NAME) + backend.name.encode("utf-8"))
        if P.INFO_BLOCK_SIZE in requests:
            self._reply(opt, P.REP_INFO, P.INFO_BLOCK_SIZE_BODY.pack(
                P.INFO_BLOCK_SIZE, 1, P.PREFERRED_BLOCK, P.MAX_PAYLOAD))
        self._reply(opt, P.REP_ACK)
        return backend if opt == P.OPT_GO else None
