"""Blob store errors, as subclasses of the core errors so that faces map them unchanged."""

from __future__ import annotations

from otahub.domain.errors import InvalidRequest, LimitExceeded, NotFound, OtahubError


class BlobError(OtahubError):
    """A blob store backend failed (I/O, the S3 service)."""


class BlobNotFound(NotFound):
    """No blob is stored under that key."""


class BlobTooLarge(LimitExceeded):
    """An upload went over its size limit; nothing was stored."""


class InvalidBlobKey(InvalidRequest):
    """A key is not a safe relative path."""
