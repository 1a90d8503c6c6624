"""Host I/O over NBD: an asyncio server for the engine's volume exports.

Usage::

    provider = DictProvider({"vol1": FileBackend("vol1", "/path/vol1.img")})
    server = NbdServer(provider, host="127.0.0.1", port=0)
    await server.start()
    server.uri("vol1")   # "nbd://127.0.0.1:PORT/vol1"
    await server.stop()
"""
from .backend import DictProvider, ExportBackend, ExportProvider, FileBackend
from .server import NbdServer
from .thread import NbdServerThread

__all__ = ["DictProvider", "ExportBackend", "ExportProvider", "FileBackend", "NbdServer", "NbdServerThread"]
