"""Errors with stable codes.

Every refusal in the domain raises a :class:`MirrorError` whose ``code`` is stable
(SANtricity return-code names where one exists, so automation written against the
real product recognises them) and whose message tells the user what to change.
"""
from __future__ import annotations


class MirrorError(Exception):
    """A refused operation: ``code`` is stable, ``message`` says what to do."""

    code = "error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict:
        return {"retcode": self.code, "errorMessage": self.message}


class NotFound(MirrorError):
    code = "notFound"


class InvalidInput(MirrorError):
    code = "invalidInput"


class DataDirLocked(MirrorError):
    code = "dataDirectoryLocked"


class CommunicationError(MirrorError):
    """The remote array cannot be reached over the mirroring channel."""

    code = "arvmRemoteArrayUnreachable"


class HostWriteRefused(MirrorError, PermissionError):
    """A host tried to write a volume it may only read (secondary role, failed...)."""

    code = "arvmVolumeNotWritable"


class VolumeFailed(MirrorError, OSError):
    code = "volumeFailed"


class ReservedCapacityFull(MirrorError):
    code = "arvmRepositoryFull"
