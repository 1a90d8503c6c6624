"""NBD wire constants and the error mapping (fixed newstyle, simple replies).

Values follow the NBD protocol document (NetworkBlockDevice/nbd doc/proto.md).
Only what the server speaks is listed; everything is network byte order.
"""
from __future__ import annotations

import errno
import struct

# --- handshake -------------------------------------------------------------
NBDMAGIC = 0x4E42444D41474943  # "NBDMAGIC"
IHAVEOPT = 0x49484156454F5054  # "IHAVEOPT"
OPT_REPLY_MAGIC = 0x0003E889045565A9

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1
CLIENT_FLAG_FIXED_NEWSTYLE = 1 << 0
CLIENT_FLAG_NO_ZEROES = 1 << 1
KNOWN_CLIENT_FLAGS = CLIENT_FLAG_FIXED_NEWSTYLE | CLIENT_FLAG_NO_ZEROES

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_ERR_UNSUP = (1 << 31) + 1
REP_ERR_POLICY = (1 << 31) + 2
REP_ERR_INVALID = (1 << 31) + 3
REP_ERR_UNKNOWN = (1 << 31) + 6
REP_ERR_TOO_BIG = (1 << 31) + 9

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

# --- transmission flags (per export) ---------------------------------------
TFLAG_HAS_FLAGS = 1 << 0
TFLAG_READ_ONLY = 1 << 1
TFLAG_SEND_FLUSH = 1 << 2
TFLAG_SEND_FUA = 1 << 3
TFLAG_SEND_TRIM = 1 << 5
TFLAG_SEND_WRITE_ZEROES = 1 << 6
TFLAG_CAN_MULTI_CONN = 1 << 8

BASE_TRANSMISSION_FLAGS = (
    TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA | TFLAG_SEND_TRIM
    | TFLAG_SEND_WRITE_ZEROES | TFLAG_CAN_MULTI_CONN
)

# --- requests and replies --------------------------------------------------
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_WRITE_ZEROES = 6

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1

# Flags each command may carry; anything else is refused with EINVAL (spec:
# "a flag not explicitly documented as applicable to the given request").
ALLOWED_CMD_FLAGS = {
    CMD_READ: 0,
    CMD_WRITE: CMD_FLAG_FUA,
    CMD_DISC: 0,
    CMD_FLUSH: 0,
    CMD_TRIM: CMD_FLAG_FUA,
    CMD_WRITE_ZEROES: CMD_FLAG_FUA | CMD_FLAG_NO_HOLE,
}

# Largest payload we accept (read or write): the de-facto limit every client
# assumes when the server sends no NBD_INFO_BLOCK_SIZE.
MAX_PAYLOAD = 32 * 1024 * 1024
MAX_OPTION_LENGTH = 64 * 1024  # names are <= 4096 bytes; options are tiny
MAX_NAME_LENGTH = 4096
PREFERRED_BLOCK = 4096

# --- error values (the only ones the protocol defines) ---------------------
NBD_EPERM = 1
NBD_EIO = 5
NBD_ENOMEM = 12
NBD_EINVAL = 22
NBD_ENOSPC = 28
NBD_EOVERFLOW = 75
NBD_ENOTSUP = 95
NBD_ESHUTDOWN = 108

_ERRNO_TO_NBD = {
    errno.EPERM: NBD_EPERM,
    errno.EACCES: NBD_EPERM,
    errno.EROFS: NBD_EPERM,
    errno.EIO: NBD_EIO,
    errno.ENOMEM: NBD_ENOMEM,
    errno.EINVAL: NBD_EINVAL,
    errno.ENOSPC: NBD_ENOSPC,
    errno.EDQUOT: NBD_ENOSPC,  # spec: map EDQUOT and EFBIG to ENOSPC
    errno.EFBIG: NBD_ENOSPC,
    errno.EOVERFLOW: NBD_EOVERFLOW,
    errno.EOPNOTSUPP: NBD_ENOTSUP,
    errno.ESHUTDOWN: NBD_ESHUTDOWN,
}


def error_code(exc: BaseException) -> int:
    """Map an exception raised by a backend to an NBD error value.

    PermissionError -> EPERM, ValueError -> EINVAL, OSError -> its errno when the
    protocol defines one (EIO otherwise), anything else -> EIO.
    """
    if isinstance(exc, PermissionError):
        return NBD_EPERM
    if isinstance(exc, ValueError):
        return NBD_EINVAL
    if isinstance(exc, OSError) and exc.errno is not None:
        return _ERRNO_TO_NBD.get(exc.errno, NBD_EIO)
    return NBD_EIO


# --- packed layouts --------------------------------------------------------
GREETING = struct.Struct(">QQH")            # NBDMAGIC, IHAVEOPT, handshake flags
CLIENT_FLAGS = struct.Struct(">I")
OPTION_HEADER = struct.Struct(">QII")       # IHAVEOPT, option, length
OPTION_REPLY = struct.Struct(">QIII")       # magic, option, reply type, length
REQUEST = struct.Struct(">IHHQQI")          # magic, flags, type, cookie, offset, length
SIMPLE_REPLY = struct.Struct(">IIQ")        # magic, error, cookie
EXPORT_NAME_REPLY = struct.Struct(">QH")    # size, transmission flags
INFO_EXPORT_BODY = struct.Struct(">HQH")    # NBD_INFO_EXPORT, size, flags
INFO_BLOCK_SIZE_BODY = struct.Struct(">HIII")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
